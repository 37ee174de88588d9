"""Intuit OAuth 2.0 and OpenID Connect, as the emulator serves them (reference §10, §11 item 13).

What a client sees is what Intuit serves, on one base URL instead of four hosts:

* discovery documents (``/.well-known/openid-configuration``, ``/.well-known/openid_configuration/``,
  ``/.well-known/openid_sandbox_configuration/``) pointing at the endpoints below;
* the authorize page ``GET /connect/oauth2`` (appcenter.intuit.com): sign in, choose a company when the
  user has several, consent with Connect or Cancel, then a redirect to the app's registered
  ``redirect_uri`` with ``code``, ``state`` and ``realmId`` (or ``error=access_denied``);
* the token endpoint ``POST /oauth2/v1/tokens/bearer`` (authorization_code and refresh_token grants,
  client credentials as HTTP Basic or in the form body);
* revoke ``POST /v2/oauth2/tokens/revoke``, userinfo ``GET /v1/openid_connect/userinfo``, JWKS
  ``GET /op/v1/jwks`` (id_tokens are RS256 JWTs signed with a key the emulator keeps in its database).

Lifetimes follow Intuit: access tokens 3600 s; refresh tokens on a 100-day rolling window
(``x_refresh_token_expires_in`` 8726400 s, reset by every use) under a 5-year hard cap from the original
grant (``x_refresh_token_hard_expires_in``, sent when the request carries
``x-include-refresh-token-hard-expires-in: true``); authorization codes single-use, 5 minutes. Every
lifetime is measured on ``emu.clock.lifetime_now()``, so a scaled clock or ``advance()`` expires them.

Choices where Intuit's behaviour is not documented (reference §12):

* **Rotation**: the refresh token rotates on *every* refresh (Intuit rotates about every 24 h). That is
  stricter, so a client that forgets to persist the newest refresh token fails here first.
* **Grace**: a superseded refresh token keeps working for ``refresh_grace_s`` (24 h emulated). Using it
  again does not fork the grant: the answer carries the grant's *current* refresh token (the same value
  again, no new rotation) and a fresh access token. After the grace period: ``invalid_grant``.
* **Code reuse** answers ``invalid_grant`` and leaves the tokens issued from the first exchange alone.
* **Revoke** of a refresh or access token ends the whole grant (every token of that connection).
* Access tokens already issued stay valid until their own expiry when the refresh token rotates.
* 401 details: ``Token expired: <id>``, ``Token revoked: <id>``, ``Token invalid``,
  ``Malformed bearer token: too short or too long``. ``<id>`` is the token's internal id
  ``AB0<expiry epoch><random>``, the shape seen in a captured Intuit 401.
* id_token times (``iat``, ``exp``, ``auth_time``) are emulator wall time (``clock.timestamp()``), like
  every other date the emulator writes; a verifier running on real time needs leeway after
  ``advance()``.

Tokens are stored as SHA-256 hashes only. Refresh token values are derived from a per-emulator secret
(HMAC of grant and generation) so the current one can be handed out again during the grace period
without ever being stored.

Well-known defaults (created on first start, kept in a data file): the developer app
``emulator-client-id`` / ``emulator-client-secret`` and the user ``demo@example.com`` / ``demo``, who can
access every company of the emulator.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import secrets
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from itsdangerous import BadSignature, URLSafeTimedSerializer
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from qb_pipelines.emulator import faults

# --- lifetimes (emulated seconds) ---------------------------------------------------------------
ACCESS_TOKEN_LIFETIME_S = 3600
#: Rolling inactivity window of a refresh token: the fresh value Intuit sends (101 days).
REFRESH_ROLLING_S = 8_726_400
#: Hard cap from the original grant: 5 years (5 x 365 days).
REFRESH_HARD_CAP_S = 5 * 365 * 86_400
AUTH_CODE_LIFETIME_S = 300
REFRESH_GRACE_S = 86_400
#: How long a half-filled authorize page stays usable (real seconds; it is a browser session).
AUTHORIZE_FLOW_MAX_AGE_S = 1800

# --- well-known defaults ------------------------------------------------------------------------
DEFAULT_CLIENT_ID = "emulator-client-id"
DEFAULT_CLIENT_SECRET = "emulator-client-secret"
DEFAULT_APP_NAME = "Emulator Demo App"
DEFAULT_REDIRECT_URIS = (
    # Intuit registers its OAuth Playground for every development app.
    "https://developer.intuit.com/v2/OAuth2Playground/RedirectUrl",
    "http://localhost:3000/callback",
    "http://127.0.0.1:3000/callback",
)
DEFAULT_USER_EMAIL = "demo@example.com"
DEFAULT_USER_PASSWORD = "demo"

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
KNOWN_SCOPES = frozenset(
    {
        ACCOUNTING_SCOPE,
        "com.intuit.quickbooks.payment",
        "openid",
        "profile",
        "email",
        "phone",
        "address",
        "intuit_name",
        "com.intuit.quickbooks.payroll",
        "com.intuit.quickbooks.payroll.timetracking",
        "com.intuit.quickbooks.payroll.benefits",
        "com.intuit.quickbooks.payroll.payslip.read",
        "payroll.compensation.read",
        "project-management.project",
        "app-foundations.custom-field-definitions",
        "app-foundations.custom-field-definitions.read",
        "app-foundations.custom-dimensions.read",
        "time-tracking.time-entry",
        "indirect-tax.tax-calculation.quickbooks",
    }
)
#: What the consent page tells the user each scope allows.
SCOPE_WORDING = {
    ACCOUNTING_SCOPE: "Access and edit your QuickBooks accounting data",
    "com.intuit.quickbooks.payment": "Process payments",
    "openid": "Verify your identity",
    "profile": "See your name",
    "email": "See your email address",
    "phone": "See your phone number",
    "address": "See your address",
}

# The JWE protected header Intuit's access tokens start with: {"enc":"A128CBC-HS256","alg":"dir"}.
_JWE_HEADER = "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0"
# Bearer tokens outside these lengths are rejected before any lookup, as Intuit's gateway does.
_MIN_BEARER_LEN, _MAX_BEARER_LEN = 20, 4096

SCHEMA = """
CREATE TABLE IF NOT EXISTS oauth_apps (
    client_id TEXT PRIMARY KEY,
    client_secret TEXT NOT NULL,
    name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,          -- JSON list, matched exactly
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_users (
    email TEXT PRIMARY KEY COLLATE NOCASE,
    sub TEXT NOT NULL,
    password_salt TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    given_name TEXT NOT NULL,
    family_name TEXT NOT NULL,
    phone_number TEXT,
    address TEXT,                         -- JSON object or NULL
    access_all INTEGER NOT NULL DEFAULT 0, -- 1: can open every company (the demo user)
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS oauth_user_realms (
    email TEXT NOT NULL COLLATE NOCASE,
    realm TEXT NOT NULL,
    PRIMARY KEY (email, realm)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS oauth_codes (
    code_hash TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    email TEXT NOT NULL,
    realm TEXT NOT NULL,
    auth_time REAL NOT NULL,              -- emulator wall time of the sign-in
    expires_at REAL NOT NULL,             -- lifetime clock
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS oauth_grants (
    grant_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    realm TEXT NOT NULL,
    email TEXT NOT NULL,
    scope TEXT NOT NULL,
    auth_time REAL NOT NULL,              -- emulator wall time
    created_at REAL NOT NULL,             -- lifetime clock
    hard_expires_at REAL NOT NULL,        -- lifetime clock: created_at + 5 years
    refresh_expires_at REAL NOT NULL,     -- lifetime clock: rolling 100-day window
    generation INTEGER NOT NULL,          -- generation of the current refresh token
    revoked_at REAL
);
CREATE INDEX IF NOT EXISTS oauth_grants_realm ON oauth_grants (realm);
CREATE TABLE IF NOT EXISTS oauth_tokens (
    token_hash TEXT PRIMARY KEY,          -- sha256 of the token; raw tokens are never stored
    grant_id TEXT NOT NULL,
    kind TEXT NOT NULL,                   -- 'access' or 'refresh'
    generation INTEGER NOT NULL,
    token_id TEXT NOT NULL,               -- access: AB0<epoch><rand> (shown in 401s); refresh: epoch in the value
    issued_at REAL NOT NULL,              -- lifetime clock
    expires_at REAL,                      -- access tokens only (lifetime clock)
    grace_until REAL                      -- refresh tokens, once superseded (lifetime clock)
);
CREATE INDEX IF NOT EXISTS oauth_tokens_grant ON oauth_tokens (grant_id, kind);
"""

_TEMPLATES = Environment(
    loader=FileSystemLoader(str(Path(__file__).parent / "templates")),
    autoescape=select_autoescape(["html"]),
)


class OAuthError(Exception):
    """An OAuth error answer from the token or revoke endpoint: ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> Response:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if self.error == "invalid_client":
            headers["WWW-Authenticate"] = 'Basic realm="Intuit"'
        return _json({"error": self.error, "error_description": self.description}, self.status, headers)


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # Intuit's OAuth hosts answer application/json;charset=UTF-8
    return Response(orjson.dumps(body), status, headers, media_type="application/json;charset=UTF-8")


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Bearer:
    """An authenticated v3 request: the app that makes it and the access token's internal id."""

    app_key: str
    token_id: str


def new_token_id(expiry: int, rng: random.Random | None = None) -> str:
    """An access token's internal id, ``AB0<expiry epoch><37 letters and digits>`` (a captured 401's shape)."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    pick = rng.choice if rng is not None else secrets.choice
    return f"AB0{expiry}{''.join(pick(alphabet) for _ in range(37))}"


def _alnum(n: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _with_query(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` appended to whatever query it already carries."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _hash_password(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 10_000).hex()


class OAuthServer:
    """Intuit's OAuth 2.0 / OpenID Connect server for one emulator.

    State (apps, users, codes, grants, token hashes, the signing key) lives in ``emu.db`` in
    ``oauth_*`` tables and the ``kv`` table, so an emulator started on a data file keeps its
    connections, and tokens it issued stay valid, across restarts.
    """

    def __init__(self, emu: Any) -> None:
        self.emu = emu
        self.refresh_grace_s: float = REFRESH_GRACE_S
        self._key_lock = threading.Lock()
        self._signing: tuple[Any, str] | None = None
        # executescript commits any open transaction, so it runs under the lock but outside tx()
        with emu.db.read() as c:
            c.executescript(SCHEMA)
        secret = emu.db.kv_get("oauth_secret")
        if not secret:
            secret = secrets.token_hex(32)
            emu.db.kv_set("oauth_secret", secret)
        self._secret = bytes.fromhex(str(secret))
        self._flows = URLSafeTimedSerializer(self._secret.hex(), salt="qbo-emulator-authorize")
        self._ensure_defaults()

    # =============================================================================================
    # Apps and users
    # =============================================================================================
    def _ensure_defaults(self) -> None:
        with self.emu.db.read() as c:
            has_app = c.execute("SELECT 1 FROM oauth_apps WHERE client_id=?", (DEFAULT_CLIENT_ID,)).fetchone()
            has_user = c.execute("SELECT 1 FROM oauth_users WHERE email=?", (DEFAULT_USER_EMAIL,)).fetchone()
        if not has_app:
            self.register_app(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_APP_NAME, DEFAULT_REDIRECT_URIS)
        if not has_user:
            self.add_user(
                DEFAULT_USER_EMAIL,
                DEFAULT_USER_PASSWORD,
                given_name="Demo",
                family_name="User",
                phone_number="+1 6505550100",
                address={
                    "streetAddress": "2700 Coast Ave",
                    "locality": "Mountain View",
                    "region": "CA",
                    "postalCode": "94043",
                    "country": "US",
                },
                access_all=True,
            )

    def register_app(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        name: str | None = None,
        redirect_uris: Iterable[str] = (),
        replace: bool = False,
    ) -> dict:
        """Register (or update) a developer app, as on Intuit's developer portal.

        Args:
            client_id: Keys of the app; generated when omitted (``AB`` + 48 characters, Intuit's shape).
            client_secret: Generated when omitted; kept when updating an app without one.
            name: Shown on the consent page.
            redirect_uris: URIs the authorize page may redirect to (exact match). Added to the app's
                list unless ``replace`` is true.
            replace: Replace the redirect URI list instead of adding to it.

        Returns:
            The app: ``client_id``, ``client_secret``, ``name``, ``redirect_uris``.
        """
        uris = [str(u) for u in redirect_uris]
        with self.emu.db.tx() as c:
            row = (
                c.execute(
                    "SELECT client_secret, name, redirect_uris FROM oauth_apps WHERE client_id=?", (client_id,)
                ).fetchone()
                if client_id
                else None
            )
            if row:
                secret = client_secret or row[0]
                app_name = name or row[1]
                existing = [] if replace else orjson.loads(row[2])
                merged = existing + [u for u in uris if u not in existing]
                c.execute(
                    "UPDATE oauth_apps SET client_secret=?, name=?, redirect_uris=? WHERE client_id=?",
                    (secret, app_name, orjson.dumps(merged).decode(), client_id),
                )
            else:
                client_id = client_id or "AB" + _alnum(48)
                secret = client_secret or _alnum(40)
                app_name = name or "Developer App"
                merged = list(dict.fromkeys(uris))
                c.execute(
                    "INSERT INTO oauth_apps(client_id, client_secret, name, redirect_uris, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (client_id, secret, app_name, orjson.dumps(merged).decode(), self.emu.clock.timestamp()),
                )
        return {"client_id": client_id, "client_secret": secret, "name": app_name, "redirect_uris": merged}

    def apps(self) -> list[dict]:
        """Every registered developer app, with its secret (this is the emulator's control plane)."""
        with self.emu.db.read() as c:
            rows = c.execute("SELECT client_id, client_secret, name, redirect_uris FROM oauth_apps").fetchall()
        return [
            {"client_id": r[0], "client_secret": r[1], "name": r[2], "redirect_uris": orjson.loads(r[3])} for r in rows
        ]

    def _app(self, client_id: str | None) -> dict | None:
        if not client_id:
            return None
        with self.emu.db.read() as c:
            r = c.execute(
                "SELECT client_id, client_secret, name, redirect_uris FROM oauth_apps WHERE client_id=?", (client_id,)
            ).fetchone()
        if not r:
            return None
        return {"client_id": r[0], "client_secret": r[1], "name": r[2], "redirect_uris": orjson.loads(r[3])}

    def add_user(
        self,
        email: str,
        password: str,
        given_name: str = "",
        family_name: str = "",
        realms: Iterable[str] = (),
        phone_number: str | None = None,
        address: dict | None = None,
        access_all: bool = False,
    ) -> dict:
        """Create or update an Intuit user who can sign in on the authorize page.

        Args:
            email: Sign-in name (case-insensitive).
            password: Sign-in password.
            given_name: ``givenName`` in userinfo.
            family_name: ``familyName`` in userinfo.
            realms: Companies the user may connect (added to those already granted).
            phone_number: ``phoneNumber`` in userinfo.
            address: ``address`` object in userinfo (``streetAddress``, ``locality``, ...).
            access_all: The user may open every company of the emulator (the demo user).

        Returns:
            The user as :meth:`users` lists it.
        """
        salt = secrets.token_hex(8)
        with self.emu.db.tx() as c:
            row = c.execute("SELECT sub FROM oauth_users WHERE email=?", (email,)).fetchone()
            sub = row[0] if row else str(uuid.uuid4())
            c.execute(
                "INSERT OR REPLACE INTO oauth_users(email, sub, password_salt, password_hash, given_name, "
                "family_name, phone_number, address, access_all, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    email,
                    sub,
                    salt,
                    _hash_password(password, salt),
                    given_name,
                    family_name,
                    phone_number,
                    orjson.dumps(address).decode() if address else None,
                    int(access_all),
                    self.emu.clock.timestamp(),
                ),
            )
            for realm in realms:
                c.execute("INSERT OR IGNORE INTO oauth_user_realms(email, realm) VALUES (?, ?)", (email, str(realm)))
        return self._user(email)  # type: ignore[return-value]

    def grant_user_access(self, email: str | None, realm: str) -> None:
        """Let ``email`` (the demo user when None) connect company ``realm``; called on company creation."""
        email = email or DEFAULT_USER_EMAIL
        with self.emu.db.tx() as c:
            c.execute("INSERT OR IGNORE INTO oauth_user_realms(email, realm) VALUES (?, ?)", (email, str(realm)))

    def _user(self, email: str) -> dict | None:
        with self.emu.db.read() as c:
            r = c.execute(
                "SELECT email, sub, given_name, family_name, phone_number, address, access_all "
                "FROM oauth_users WHERE email=?",
                (email,),
            ).fetchone()
        if not r:
            return None
        return {
            "email": r[0],
            "sub": r[1],
            "givenName": r[2],
            "familyName": r[3],
            "phoneNumber": r[4],
            "address": orjson.loads(r[5]) if r[5] else None,
            "accessAll": bool(r[6]),
            "realmIds": self._realms_of(r[0], bool(r[6])),
        }

    def _realms_of(self, email: str, access_all: bool) -> list[str]:
        with self.emu.db.read() as c:
            if access_all:
                rows = c.execute(
                    "SELECT realm FROM companies UNION SELECT realm FROM oauth_user_realms WHERE email=?", (email,)
                ).fetchall()
            else:
                rows = c.execute("SELECT realm FROM oauth_user_realms WHERE email=?", (email,)).fetchall()
        return sorted(r[0] for r in rows)

    def users(self) -> list[dict]:
        """Every emulator user with the companies they can connect (passwords are not returned)."""
        with self.emu.db.read() as c:
            emails = [r[0] for r in c.execute("SELECT email FROM oauth_users ORDER BY email").fetchall()]
        return [u for u in (self._user(e) for e in emails) if u]

    def users_for(self, realm: str) -> list[dict]:
        """The users who can connect company ``realm``."""
        return [u for u in self.users() if str(realm) in u["realmIds"]]

    def _check_password(self, email: str, password: str) -> bool:
        with self.emu.db.read() as c:
            r = c.execute("SELECT password_salt, password_hash FROM oauth_users WHERE email=?", (email,)).fetchone()
        return bool(r) and hmac.compare_digest(_hash_password(password, r[0]), r[1])

    def _company_names(self, realms: list[str]) -> dict[str, str]:
        with self.emu.db.read() as c:
            rows = c.execute(
                f"SELECT realm, name FROM companies WHERE realm IN ({','.join('?' * len(realms))})", realms
            ).fetchall()
        names = dict(rows)
        return {r: names.get(r, f"Company {r}") for r in realms}

    def _company_exists(self, realm: str) -> bool:
        with self.emu.db.read() as c:
            return c.execute("SELECT 1 FROM companies WHERE realm=?", (realm,)).fetchone() is not None

    # =============================================================================================
    # Keys, tokens and grants
    # =============================================================================================
    def _signing_key(self) -> tuple[Any, str]:
        """The RSA key that signs id_tokens, created once and kept in the database."""
        with self._key_lock:
            if self._signing is None:
                stored = self.emu.db.kv_get("oauth_rsa_key")
                if stored:
                    key = serialization.load_pem_private_key(stored["pem"].encode(), password=None)  # type: ignore[index]
                    kid = stored["kid"]  # type: ignore[index]
                else:
                    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                    pem = key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    ).decode()
                    kid = "r4p5SbL2" + secrets.token_hex(8)
                    self.emu.db.kv_set("oauth_rsa_key", {"pem": pem, "kid": kid})
                self._signing = (key, kid)
            return self._signing

    def jwks(self) -> dict:
        """The JWK set clients verify id_tokens with."""
        key, kid = self._signing_key()
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {"keys": [{"kty": "RSA", "e": jwk["e"], "use": "sig", "kid": kid, "alg": "RS256", "n": jwk["n"]}]}

    def issuer(self) -> str:
        return f"{self.emu.base_url}/op/v1"

    def discovery(self) -> dict:
        """The OpenID discovery document (keys per reference §10.1, URLs on this emulator)."""
        base = self.emu.base_url
        return {
            "issuer": self.issuer(),
            "authorization_endpoint": f"{base}/connect/oauth2",
            "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
            "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
            "jwks_uri": f"{base}/op/v1/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "address", "phone"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
        }

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
        token = f"{_JWE_HEADER}..{_b64url(secrets.token_bytes(16))}.{_b64url(secrets.token_bytes(600))}." + _b64url(
            secrets.token_bytes(16)
        )
        c.execute(
            "INSERT INTO oauth_tokens(token_hash, grant_id, kind, generation, token_id, issued_at, expires_at) "
            "VALUES (?, ?, 'access', ?, ?, ?, ?)",
            (_sha256(token), grant_id, generation, token_id, now, now + ACCESS_TOKEN_LIFETIME_S),
        )
        return token

    def _mint_refresh(self, c: Any, grant_id: str, generation: int, now: float) -> str:
        epoch = str(int(self.emu.clock.timestamp()) + REFRESH_ROLLING_S)
        token = self._refresh_value(grant_id, generation, epoch)
        c.execute(
            "INSERT INTO oauth_tokens(token_hash, grant_id, kind, generation, token_id, issued_at) "
            "VALUES (?, ?, 'refresh', ?, ?, ?)",
            (_sha256(token), grant_id, generation, epoch, now),
        )
        return token

    def _id_token(self, grant: dict) -> str:
        key, kid = self._signing_key()
        user = self._user(grant["email"]) or {"sub": grant["email"]}
        iat = int(self.emu.clock.timestamp())
        claims = {
            "sub": user["sub"],
            "aud": [grant["client_id"]],
            "realmid": grant["realm"],
            "auth_time": int(grant["auth_time"]),
            "iss": self.issuer(),
            "exp": iat + ACCESS_TOKEN_LIFETIME_S,
            "iat": iat,
        }
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})

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
            cur = c.execute("SELECT * FROM oauth_tokens WHERE token_hash=?", (_sha256(token),))
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

    # =============================================================================================
    # Bearer authentication for the v3 API
    # =============================================================================================
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
        if not _MIN_BEARER_LEN <= len(token) <= _MAX_BEARER_LEN:
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

    # =============================================================================================
    # HTTP: token, revoke, userinfo, discovery, JWKS
    # =============================================================================================
    def _client_auth(self, request: Request, form: dict[str, str]) -> dict:
        """The app authenticating the request: HTTP Basic, else client_id/client_secret in the body."""
        client_id = client_secret = None
        header = request.headers.get("authorization", "")
        if header.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(header[6:].strip()).decode()
            except ValueError as exc:
                raise OAuthError("invalid_client", "Malformed Basic authorization header", 401) from exc
            client_id, _, client_secret = decoded.partition(":")
        elif form.get("client_id"):
            client_id, client_secret = form.get("client_id"), form.get("client_secret", "")
        if not client_id:
            raise OAuthError("invalid_client", "Client authentication missing", 401)
        app = self._app(client_id)
        if app is None or not hmac.compare_digest(str(client_secret).encode(), app["client_secret"].encode()):
            raise OAuthError("invalid_client", "Client authentication failed", 401)
        return app

    @staticmethod
    async def _form(request: Request) -> dict[str, str]:
        ctype = request.headers.get("content-type", "")
        if ctype.startswith("application/json"):
            try:
                data = orjson.loads(await request.body() or b"{}")
            except orjson.JSONDecodeError as exc:
                raise OAuthError("invalid_request", "Request body is not valid JSON") from exc
            return {k: str(v) for k, v in data.items()} if isinstance(data, dict) else {}
        form = await request.form()
        return {k: str(v) for k, v in form.items()}

    async def token_endpoint(self, request: Request) -> Response:
        try:
            form = await self._form(request)
            app = self._client_auth(request, form)
            include_hard = request.headers.get("x-include-refresh-token-hard-expires-in", "").lower() == "true"
            grant_type = form.get("grant_type")
            if not grant_type:
                raise OAuthError("invalid_request", "grant_type is required")
            if grant_type == "authorization_code":
                body = self._exchange_code(app, form, include_hard)
            elif grant_type == "refresh_token":
                body = self._refresh(app, form, include_hard)
            else:
                raise OAuthError("unsupported_grant_type", f"Grant type {grant_type} is not supported")
        except OAuthError as err:
            return err.response()
        return _json(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _exchange_code(self, app: dict, form: dict[str, str], include_hard: bool) -> dict:
        code = form.get("code")
        if not code:
            raise OAuthError("invalid_request", "code is required")
        now = self.emu.clock.lifetime_now()
        with self.emu.db.tx() as c:
            row = c.execute(
                "SELECT client_id, redirect_uri, scope, email, realm, auth_time, expires_at, used "
                "FROM oauth_codes WHERE code_hash=?",
                (_sha256(code),),
            ).fetchone()
            if row is None:
                raise OAuthError("invalid_grant", "Token invalid")
            client_id, redirect_uri, scope, email, realm, auth_time, expires_at, used = row
            if used:
                raise OAuthError("invalid_grant", "Token invalid: authorization code already used")
            if now >= expires_at:
                raise OAuthError("invalid_grant", "Token invalid: authorization code expired")
            if client_id != app["client_id"]:
                raise OAuthError("invalid_grant", "Incorrect Token type or clientID")
            if form.get("redirect_uri") != redirect_uri:
                raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request")
            c.execute("UPDATE oauth_codes SET used=1 WHERE code_hash=?", (_sha256(code),))
        grant, access, refresh = self._new_grant(client_id, realm, email, scope, auth_time)
        return self._token_response(grant, access, refresh, now, include_hard)

    def _refresh(self, app: dict, form: dict[str, str], include_hard: bool) -> dict:
        token = form.get("refresh_token")
        if not token:
            raise OAuthError("invalid_request", "refresh_token is required")
        now = self.emu.clock.lifetime_now()
        with self.emu.db.tx() as c:
            cur = c.execute("SELECT * FROM oauth_tokens WHERE token_hash=? AND kind='refresh'", (_sha256(token),))
            row = cur.fetchone()
            if row is None:
                raise OAuthError("invalid_grant", "Token invalid")
            tok = dict(zip([d[0] for d in cur.description], row, strict=True))
            grant = self._grant_row(c, tok["grant_id"])
            if grant is None or grant["revoked_at"] is not None:
                raise OAuthError("invalid_grant", "Token invalid: the app was disconnected")
            if grant["client_id"] != app["client_id"]:
                raise OAuthError("invalid_grant", "Incorrect Token type or clientID")
            if now >= grant["hard_expires_at"]:
                raise OAuthError("invalid_grant", "Token invalid: refresh token reached its maximum lifetime")
            if now >= grant["refresh_expires_at"]:
                raise OAuthError("invalid_grant", "Token invalid: refresh token expired")
            current = tok["generation"] == grant["generation"]
            if not current and (tok["grace_until"] is None or now >= tok["grace_until"]):
                raise OAuthError("invalid_grant", "Token invalid: refresh token was superseded")
            # every use of the refresh token restarts the 100-day window, never past the hard cap
            grant["refresh_expires_at"] = min(now + REFRESH_ROLLING_S, grant["hard_expires_at"])
            if current:
                generation = grant["generation"] + 1
                c.execute(
                    "UPDATE oauth_tokens SET grace_until=? WHERE token_hash=?",
                    (now + self.refresh_grace_s, tok["token_hash"]),
                )
                refresh = self._mint_refresh(c, grant["grant_id"], generation, now)
                grant["generation"] = generation
            else:
                # a retry with the superseded token: hand back the current one, do not fork the grant
                generation = grant["generation"]
                epoch = c.execute(
                    "SELECT token_id FROM oauth_tokens WHERE grant_id=? AND kind='refresh' AND generation=?",
                    (grant["grant_id"], generation),
                ).fetchone()[0]
                refresh = self._refresh_value(grant["grant_id"], generation, epoch)
            c.execute(
                "UPDATE oauth_grants SET refresh_expires_at=?, generation=? WHERE grant_id=?",
                (grant["refresh_expires_at"], generation, grant["grant_id"]),
            )
            access = self._mint_access(c, grant["grant_id"], generation, now)
        return self._token_response(grant, access, refresh, now, include_hard)

    async def revoke_endpoint(self, request: Request) -> Response:
        try:
            form = await self._form(request)
            app = self._client_auth(request, form)
            token = form.get("token")
            if not token:
                raise OAuthError("invalid_request", "token is required")
            found = self._lookup(token)
            if found is not None:
                _, grant = found
                if grant["client_id"] != app["client_id"]:
                    raise OAuthError("invalid_request", "Token was not issued to this client")
                with self.emu.db.tx() as c:
                    c.execute(
                        "UPDATE oauth_grants SET revoked_at=? WHERE grant_id=? AND revoked_at IS NULL",
                        (self.emu.clock.lifetime_now(), grant["grant_id"]),
                    )
        except OAuthError as err:
            return err.response()
        # RFC 7009: an unknown or already revoked token is not an error
        return Response(b"", 200)

    async def userinfo_endpoint(self, request: Request) -> Response:
        try:
            grant = self._bearer_grant(request.headers.get("authorization"))
        except faults.AuthFailure as err:
            return _json(
                {"error": "invalid_token", "error_description": err.detail},
                401,
                {"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"'},
            )
        scopes = set(grant["scope"].split())
        if "openid" not in scopes:
            return _json(
                {"error": "insufficient_scope", "error_description": "openid scope required"},
                403,
                {"WWW-Authenticate": 'Bearer realm="Intuit", error="insufficient_scope"'},
            )
        user = self._user(grant["email"]) or {}
        body: dict[str, Any] = {"sub": user.get("sub")}
        if "email" in scopes:
            body.update(email=user.get("email"), emailVerified=True)
        if "profile" in scopes:
            body.update(givenName=user.get("givenName"), familyName=user.get("familyName"))
        if "phone" in scopes and user.get("phoneNumber"):
            body.update(phoneNumber=user["phoneNumber"], phoneNumberVerified=False)
        if "address" in scopes and user.get("address"):
            body["address"] = user["address"]
        return _json(body)

    async def discovery_endpoint(self, request: Request) -> Response:
        return _json(self.discovery())

    async def jwks_endpoint(self, request: Request) -> Response:
        return _json(self.jwks())

    # =============================================================================================
    # HTTP: the authorize pages
    # =============================================================================================
    def _page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(_TEMPLATES.get_template(template).render(**context), status)

    def _error_page(self, code: str, message: str) -> HTMLResponse:
        return self._page("error.html", 400, error_code=code, error_message=message)

    def _flow_load(self, value: str | None) -> dict | None:
        if not value:
            return None
        try:
            data = self._flows.loads(value, max_age=AUTHORIZE_FLOW_MAX_AGE_S)
        except BadSignature:
            return None
        return data if isinstance(data, dict) else None

    def _expired_flow_page(self) -> HTMLResponse:
        return self._error_page(
            "session_expired", "This sign-in session has expired or is invalid. Go back to the app and try again."
        )

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        app = self._app(q.get("client_id"))
        if app is None:
            return self._error_page("invalid_client", "The client_id query parameter value is invalid.")
        redirect_uri = q.get("redirect_uri", "")
        if redirect_uri not in app["redirect_uris"]:
            # never redirect to a URI the app did not register: that would leak codes
            return self._error_page(
                "invalid_redirect_uri",
                "The redirect_uri query parameter value is invalid. Make sure it is listed in the Redirect URIs "
                "section on your app's keys tab and matches it exactly.",
            )
        state = q.get("state", "")
        if q.get("response_type") != "code":
            return RedirectResponse(
                _with_query(redirect_uri, {"error": "unsupported_response_type", "state": state}), 302
            )
        scopes = q.get("scope", "").split()
        if not scopes or any(s not in KNOWN_SCOPES for s in scopes):
            return RedirectResponse(_with_query(redirect_uri, {"error": "invalid_scope", "state": state}), 302)
        if not state:
            return RedirectResponse(
                _with_query(redirect_uri, {"error": "invalid_request", "error_description": "state is required"}), 302
            )
        flow = {"client_id": app["client_id"], "redirect_uri": redirect_uri, "scope": " ".join(scopes), "state": state}
        return self._page("signin.html", app=app, flow=self._flows.dumps(flow), email="", error=None)

    async def authorize_signin(self, request: Request) -> Response:
        form = await request.form()
        flow = self._flow_load(str(form.get("flow", "")))
        if flow is None:
            return self._expired_flow_page()
        app = self._app(flow["client_id"])
        email = str(form.get("email", "")).strip()
        if app is None:
            return self._expired_flow_page()
        if not self._check_password(email, str(form.get("password", ""))):
            return self._page(
                "signin.html",
                200,
                app=app,
                flow=self._flows.dumps(flow),
                email=email,
                error="The email or password you entered is incorrect.",
            )
        user = self._user(email)
        assert user is not None
        flow.update(email=user["email"], auth_time=self.emu.clock.timestamp())
        realms = user["realmIds"]
        if not realms:
            return self._error_page("no_company", "Your Intuit account does not have access to any QuickBooks company.")
        if len(realms) == 1:
            return self._consent_page(app, {**flow, "realm": realms[0]})
        names = self._company_names(realms)
        companies = sorted(({"realmId": r, "name": n} for r, n in names.items()), key=lambda x: x["name"])
        return self._page("choose_company.html", app=app, flow=self._flows.dumps(flow), companies=companies, user=user)

    def _consent_page(self, app: dict, flow: dict) -> HTMLResponse:
        wording = [SCOPE_WORDING.get(s, s) for s in flow["scope"].split()]
        return self._page(
            "consent.html",
            app=app,
            flow=self._flows.dumps(flow),
            company_name=self._company_names([flow["realm"]])[flow["realm"]],
            realm=flow["realm"],
            permissions=wording,
            email=flow["email"],
        )

    async def authorize_company(self, request: Request) -> Response:
        form = await request.form()
        flow = self._flow_load(str(form.get("flow", "")))
        app = self._app(flow["client_id"]) if flow and "email" in flow else None
        if flow is None or app is None:
            return self._expired_flow_page()
        user = self._user(flow["email"])
        realm = str(form.get("realmId", ""))
        if user is None or realm not in user["realmIds"]:
            names = self._company_names(user["realmIds"]) if user else {}
            companies = sorted(({"realmId": r, "name": n} for r, n in names.items()), key=lambda x: x["name"])
            return self._page(
                "choose_company.html",
                app=app,
                flow=self._flows.dumps(flow),
                companies=companies,
                user=user,
                error="Choose a company to connect.",
            )
        return self._consent_page(app, {**flow, "realm": realm})

    async def authorize_consent(self, request: Request) -> Response:
        form = await request.form()
        flow = self._flow_load(str(form.get("flow", "")))
        if flow is None or "realm" not in flow or "email" not in flow:
            return self._expired_flow_page()
        app = self._app(flow["client_id"])
        if app is None or flow["redirect_uri"] not in app["redirect_uris"]:
            return self._expired_flow_page()
        if form.get("action") != "connect":
            return RedirectResponse(
                _with_query(flow["redirect_uri"], {"error": "access_denied", "state": flow["state"]}), 302
            )
        user = self._user(flow["email"])
        if user is None or flow["realm"] not in user["realmIds"]:
            return self._error_page("access_denied", "You no longer have access to this company.")
        code = f"AB11{int(self.emu.clock.timestamp())}{_alnum(36)}"
        with self.emu.db.tx() as c:
            c.execute(
                "INSERT INTO oauth_codes(code_hash, client_id, redirect_uri, scope, email, realm, auth_time, "
                "expires_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    _sha256(code),
                    flow["client_id"],
                    flow["redirect_uri"],
                    flow["scope"],
                    flow["email"],
                    flow["realm"],
                    flow["auth_time"],
                    self.emu.clock.lifetime_now() + AUTH_CODE_LIFETIME_S,
                ),
            )
        return RedirectResponse(
            _with_query(flow["redirect_uri"], {"code": code, "state": flow["state"], "realmId": flow["realm"]}), 302
        )

    def routes(self) -> list[Route]:
        """Intuit's public OAuth/OpenID endpoints, at the same paths as on Intuit's hosts."""
        routes = [
            Route("/connect/oauth2", self.authorize, methods=["GET"]),
            Route("/connect/oauth2/signin", self.authorize_signin, methods=["POST"]),
            Route("/connect/oauth2/company", self.authorize_company, methods=["POST"]),
            Route("/connect/oauth2/consent", self.authorize_consent, methods=["POST"]),
            Route("/oauth2/v1/tokens/bearer", self.token_endpoint, methods=["POST"]),
            Route("/v2/oauth2/tokens/revoke", self.revoke_endpoint, methods=["POST"]),
            Route("/v1/openid_connect/userinfo", self.userinfo_endpoint, methods=["GET"]),
            Route("/op/v1/jwks", self.jwks_endpoint, methods=["GET"]),
            Route("/.well-known/openid-configuration", self.discovery_endpoint, methods=["GET"]),
        ]
        for path in ("/.well-known/openid_configuration", "/.well-known/openid_sandbox_configuration"):
            routes.append(Route(path + "/", self.discovery_endpoint, methods=["GET"]))
            routes.append(Route(path, self.discovery_endpoint, methods=["GET"]))
        return routes

    # =============================================================================================
    # HTTP: control API
    # =============================================================================================
    @staticmethod
    async def _json_body(request: Request) -> dict:
        raw = await request.body()
        if not raw:
            return {}
        data = orjson.loads(raw)
        if not isinstance(data, dict):
            raise ValueError("body must be a JSON object")
        return data

    async def _control_tokens(self, request: Request) -> Response:
        realm = request.path_params["realmId"]
        if not self._company_exists(realm):
            return _json({"error": "not_found", "message": f"No company with realmId {realm}"}, 404)
        try:
            body = await self._json_body(request)
            return _json(self.issue_tokens_for(realm, body.get("email") or body.get("user_email")))
        except (KeyError, ValueError) as err:
            return _json({"error": "bad_request", "message": str(err)}, 400)

    async def _control_apps(self, request: Request) -> Response:
        if request.method == "GET":
            return _json(self.apps())
        try:
            body = await self._json_body(request)
            uris = body.get("redirect_uris") or []
            if isinstance(uris, str):
                uris = [uris]
            app = self.register_app(
                body.get("client_id"), body.get("client_secret"), body.get("name"), uris, bool(body.get("replace"))
            )
        except ValueError as err:
            return _json({"error": "bad_request", "message": str(err)}, 400)
        return _json(app, 201)

    async def _control_users(self, request: Request) -> Response:
        if request.method == "GET":
            realm = request.query_params.get("realmId")
            return _json(self.users_for(realm) if realm else self.users())
        try:
            body = await self._json_body(request)
            if not body.get("email") or not body.get("password"):
                raise ValueError("email and password are required")
            user = self.add_user(
                body["email"],
                body["password"],
                given_name=body.get("givenName", ""),
                family_name=body.get("familyName", ""),
                realms=[str(r) for r in body.get("realmIds", [])],
                phone_number=body.get("phoneNumber"),
                address=body.get("address"),
                access_all=bool(body.get("accessAll", False)),
            )
        except ValueError as err:
            return _json({"error": "bad_request", "message": str(err)}, 400)
        return _json(user, 201)

    async def _control_expire(self, request: Request) -> Response:
        try:
            body = await self._json_body(request)
            if not body.get("realmId"):
                raise ValueError("realmId is required")
            counts = self.expire(str(body["realmId"]), body.get("what", "all"))
        except ValueError as err:
            return _json({"error": "bad_request", "message": str(err)}, 400)
        return _json({"realmId": str(body["realmId"]), "expired": counts})

    async def _control_revoke_all(self, request: Request) -> Response:
        try:
            body = await self._json_body(request)
            if not body.get("realmId"):
                raise ValueError("realmId is required")
        except ValueError as err:
            return _json({"error": "bad_request", "message": str(err)}, 400)
        return _json({"realmId": str(body["realmId"]), "revoked_grants": self.revoke_all(str(body["realmId"]))})

    def control_routes(self) -> list[Route]:
        """The emulator's OAuth control API under ``/_emulator/``."""
        return [
            Route("/_emulator/companies/{realmId}/tokens", self._control_tokens, methods=["POST"]),
            Route("/_emulator/apps", self._control_apps, methods=["GET", "POST"]),
            Route("/_emulator/users", self._control_users, methods=["GET", "POST"]),
            Route("/_emulator/oauth/expire", self._control_expire, methods=["POST"]),
            Route("/_emulator/oauth/revoke-all", self._control_revoke_all, methods=["POST"]),
        ]
