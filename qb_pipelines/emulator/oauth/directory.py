"""Apps and users: the developer apps registered with the emulator and the Intuit users who sign in.

May touch: the ``oauth_apps``, ``oauth_users`` and ``oauth_user_realms`` tables, and reads ``companies``.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from collections.abc import Iterable

import orjson

from qb_pipelines.emulator.oauth.common import (
    DEFAULT_APP_NAME,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URIS,
    DEFAULT_USER_EMAIL,
    DEFAULT_USER_PASSWORD,
    OAuthRoom,
    alnum,
    hash_password,
)


class Directory(OAuthRoom):
    """Developer apps and users, with the companies each user may open."""

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
                client_id = client_id or "AB" + alnum(48)
                secret = client_secret or alnum(40)
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
                    hash_password(password, salt),
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
        return bool(r) and hmac.compare_digest(hash_password(password, r[0]), r[1])

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
