"""The token store: grants, access and refresh tokens (hashes only), and bearer authentication of v3 calls.

Minting, rotating within the grace period, looking up, expiring and revoking; ``bearer`` is the check
the v3 API makes on every request. May touch: the ``oauth_grants`` and ``oauth_tokens`` tables.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from typing import Any

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.oauth.common import (
    ACCESS_TOKEN_LIFETIME_S,
    ACCOUNTING_SCOPE,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_USER_EMAIL,
    JWE_HEADER,
    MAX_BEARER_LEN,
    MIN_BEARER_LEN,
    REFRESH_HARD_CAP_S,
    REFRESH_ROLLING_S,
    Bearer,
    OAuthRoom,
    b64url,
    new_token_id,
    sha256_hex,
)


class Grants(OAuthRoom):
    """Grants and their tokens: mint, look up, expire, revoke, authenticate."""

    def _refresh_value(self, grant_id: str, generation: int, epoch: str) -> str:
        """The refresh token of ``grant_id`` at ``generation``: Intuit's ``RT1-<n>-H0-<epoch><random>``.

        The random part is an HMAC under the emulator's secret, so the value can be produced again
        (grace-period reuse) while only its hash is stored.
        """
        mac = hmac.new(self._secret, f"rt:{grant_id}:{generation}".encode(), hashlib.sha256).digest()
        tail = base64.b32encode(mac).decode().lower().rstrip("=")[:24]
        return f"RT1-{generation % 100}-H0-{epoch}{tail}"

    def _mint_access(self, c: Any, grant_id: str, generation: int, now: float) -> str:
        wall_expiry = int(self.emu.clock.timestamp()) + ACCESS_TOKEN_LIFETIME_S
        token_id = new_token_id(wall_expiry)
        token = f"{JWE_HEADER}..{b64url(secrets.token_bytes(16))}.{b64url(secrets.token_bytes(600))}." + b64url(
            secrets.token_bytes(16)
        )
        c.execute(
            "INSERT INTO oauth_tokens(token_hash, grant_id, kind, generation, token_id, issued_at, expires_at) "
            "VALUES (?, ?, 'access', ?, ?, ?, ?)",
            (sha256_hex(token), grant_id, generation, token_id, now, now + ACCESS_TOKEN_LIFETIME_S),
        )
        return token

    def _mint_refresh(self, c: Any, grant_id: str, generation: int, now: float) -> str:
        epoch = str(int(self.emu.clock.timestamp()) + REFRESH_ROLLING_S)
        token = self._refresh_value(grant_id, generation, epoch)
        c.execute(
            "INSERT INTO oauth_tokens(token_hash, grant_id, kind, generation, token_id, issued_at) "
            "VALUES (?, ?, 'refresh', ?, ?, ?)",
            (sha256_hex(token), grant_id, generation, epoch, now),
        )
        return token

    def _token_response(self, grant: dict, access: str, refresh: str, now: float, include_hard: bool) -> dict:
        """The token endpoint's success body for ``grant`` (lifetimes as seen at ``now``)."""
        rolling = max(0, int(grant["refresh_expires_at"] - now))
        body: dict[str, Any] = {
            "token_type": "bearer",
            "expires_in": ACCESS_TOKEN_LIFETIME_S,
            "refresh_token": refresh,
            "x_refresh_token_expires_in": rolling,
            "access_token": access,
        }
        if include_hard:
            body["x_refresh_token_hard_expires_in"] = max(0, int(grant["hard_expires_at"] - now))
        if "openid" in grant["scope"].split():
            body["id_token"] = self._id_token(grant)
        return body

    def _new_grant(self, client_id: str, realm: str, email: str, scope: str, auth_time: float) -> tuple[dict, str, str]:
        now = self.emu.clock.lifetime_now()
        grant = {
            "grant_id": uuid.uuid4().hex,
            "client_id": client_id,
            "realm": realm,
            "email": email,
            "scope": scope,
            "auth_time": auth_time,
            "created_at": now,
            "hard_expires_at": now + REFRESH_HARD_CAP_S,
            "refresh_expires_at": now + min(REFRESH_ROLLING_S, REFRESH_HARD_CAP_S),
            "generation": 1,
            "revoked_at": None,
        }
        with self.emu.db.tx() as c:
            c.execute(
                "INSERT INTO oauth_grants(grant_id, client_id, realm, email, scope, auth_time, created_at, "
                "hard_expires_at, refresh_expires_at, generation) VALUES (?,?,?,?,?,?,?,?,?,?)",
                tuple(
                    grant[k]
                    for k in (
                        "grant_id",
                        "client_id",
                        "realm",
                        "email",
                        "scope",
                        "auth_time",
                        "created_at",
                        "hard_expires_at",
                        "refresh_expires_at",
                        "generation",
                    )
                ),
            )
            access = self._mint_access(c, grant["grant_id"], 1, now)
            refresh = self._mint_refresh(c, grant["grant_id"], 1, now)
        return grant, access, refresh

    @staticmethod
    def _grant_row(c: Any, grant_id: str) -> dict | None:
        cur = c.execute("SELECT * FROM oauth_grants WHERE grant_id=?", (grant_id,))
        row = cur.fetchone()
        if not row:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def _lookup(self, token: str) -> tuple[dict, dict] | None:
        """(token row, grant row) for a raw token, or None when unknown."""
        with self.emu.db.read() as c:
            cur = c.execute("SELECT * FROM oauth_tokens WHERE token_hash=?", (sha256_hex(token),))
            row = cur.fetchone()
            if not row:
                return None
            tok = dict(zip([d[0] for d in cur.description], row, strict=True))
            grant = self._grant_row(c, tok["grant_id"])
        return (tok, grant) if grant else None

    def issue_tokens_for(self, realm: str, user_email: str | None = None) -> dict:
        """Tokens of a new grant for the default developer app, skipping the browser (control API).

        Args:
            realm: Company to connect.
            user_email: Connecting user; the demo user when omitted. The user is given access to the
                company if they lacked it (this path stands for an admin who connected it).

        Returns:
            ``access_token``, ``refresh_token``, ``client_id``, ``client_secret``, ``realmId``,
            ``expires_in``, ``x_refresh_token_expires_in`` (plus ``token_type`` and ``id_token``);
            the token endpoint accepts them with the returned client credentials.

        Raises:
            KeyError: the user does not exist.
        """
        email = user_email or DEFAULT_USER_EMAIL
        user = self._user(email)
        if user is None:
            raise KeyError(f"unknown user {email}")
        if str(realm) not in user["realmIds"]:
            self.grant_user_access(email, str(realm))
        scope = f"{ACCOUNTING_SCOPE} openid profile email phone address"
        grant, access, refresh = self._new_grant(
            DEFAULT_CLIENT_ID, str(realm), user["email"], scope, self.emu.clock.timestamp()
        )
        body = self._token_response(grant, access, refresh, grant["created_at"], include_hard=True)
        body.update({"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET, "realmId": str(realm)})
        return body

    def expire(self, realm: str, what: str = "all") -> dict:
        """Make the tokens of every grant on ``realm`` lapse now (``what``: access, refresh or all).

        Returns:
            ``{"access": n, "refresh": m}``: how many access tokens and grants were expired.
        """
        if what not in ("access", "refresh", "all"):
            raise ValueError("what must be 'access', 'refresh' or 'all'")
        now = self.emu.clock.lifetime_now()
        counts = {"access": 0, "refresh": 0}
        with self.emu.db.tx() as c:
            grants = [r[0] for r in c.execute("SELECT grant_id FROM oauth_grants WHERE realm=?", (str(realm),))]
            marks = ",".join("?" * len(grants))
            if grants and what in ("access", "all"):
                counts["access"] = c.execute(
                    f"UPDATE oauth_tokens SET expires_at=? WHERE kind='access' AND expires_at>? "
                    f"AND grant_id IN ({marks})",
                    (now - 1, now, *grants),
                ).rowcount
            if grants and what in ("refresh", "all"):
                counts["refresh"] = c.execute(
                    f"UPDATE oauth_grants SET refresh_expires_at=? WHERE grant_id IN ({marks})", (now - 1, *grants)
                ).rowcount
                c.execute(
                    f"UPDATE oauth_tokens SET grace_until=? WHERE kind='refresh' AND grace_until IS NOT NULL "
                    f"AND grant_id IN ({marks})",
                    (now - 1, *grants),
                )
        return counts

    def revoke_all(self, realm: str) -> int:
        """End every grant on ``realm``, as when the user disconnects the app inside QuickBooks.

        Returns:
            The number of grants ended.
        """
        with self.emu.db.tx() as c:
            return c.execute(
                "UPDATE oauth_grants SET revoked_at=? WHERE realm=? AND revoked_at IS NULL",
                (self.emu.clock.lifetime_now(), str(realm)),
            ).rowcount

    def authenticate(self, realm: str, authorization: str | None) -> str:
        """Check the ``Authorization`` header of a v3 request; the app key (client_id) it is made by.

        See :meth:`bearer`, which also says which token it was.
        """
        return self.bearer(realm, authorization).app_key

    def bearer(self, realm: str, authorization: str | None) -> Bearer:
        """Check the ``Authorization`` header of a v3 request for company ``realm``.

        Returns:
            Who calls (the app key, for per-app throttling) with which token (its internal id, the
            one a 401 may quote; never the bearer value).

        Raises:
            faults.AuthFailure: no, malformed, unknown, expired or revoked bearer token (HTTP 401).
            faults.QBOFault: 3100 ApplicationAuthorizationFailed (HTTP 403) when the token is valid
                but was granted for another company or without the accounting scope.
        """
        if not authorization:
            raise faults.AuthFailure("Authorization header missing")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise faults.AuthFailure("Authorization header is not a bearer token")
        if not MIN_BEARER_LEN <= len(token) <= MAX_BEARER_LEN:
            raise faults.AuthFailure("Malformed bearer token: too short or too long")
        found = self._lookup(token)
        if found is None or found[0]["kind"] != "access":
            raise faults.AuthFailure("Token invalid")
        tok, grant = found
        if grant["revoked_at"] is not None:
            raise faults.token_revoked(tok["token_id"])
        if self.emu.clock.lifetime_now() >= tok["expires_at"]:
            raise faults.token_expired(tok["token_id"])
        if grant["realm"] != str(realm) or ACCOUNTING_SCOPE not in grant["scope"].split():
            raise faults.app_authorization_failed()
        return Bearer(grant["client_id"], tok["token_id"])

    def _bearer_grant(self, authorization: str | None) -> dict:
        """The grant behind a valid bearer access token (userinfo), else :class:`faults.AuthFailure`."""
        scheme, _, token = (authorization or "").strip().partition(" ")
        found = self._lookup(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if found is None or found[0]["kind"] != "access":
            raise faults.AuthFailure("Token invalid")
        tok, grant = found
        if grant["revoked_at"] is not None:
            raise faults.token_revoked(tok["token_id"])
        if self.emu.clock.lifetime_now() >= tok["expires_at"]:
            raise faults.token_expired(tok["token_id"])
        return grant
