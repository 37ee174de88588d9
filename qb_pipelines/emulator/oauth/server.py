"""The OAuth server of one emulator: its tables, its state, and its public routes; the rooms put together.

Rooms: :mod:`.directory` (apps, users), :mod:`.keys` (signing key, JWKS, discovery, id_tokens),
:mod:`.grants` (token store, bearer checks), :mod:`.endpoints` (token, revoke, userinfo),
:mod:`.authorize` (the pages), :mod:`.control` (the control API), :mod:`.common` (vocabulary).
"""

from __future__ import annotations

import secrets
import threading
from typing import Any

from itsdangerous import URLSafeTimedSerializer
from starlette.routing import Route

from qb_pipelines.emulator.oauth.authorize import AuthorizePages
from qb_pipelines.emulator.oauth.common import REFRESH_GRACE_S
from qb_pipelines.emulator.oauth.control import ControlAPI
from qb_pipelines.emulator.oauth.directory import Directory
from qb_pipelines.emulator.oauth.endpoints import TokenEndpoints
from qb_pipelines.emulator.oauth.grants import Grants
from qb_pipelines.emulator.oauth.keys import Keys

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


class OAuthServer(AuthorizePages, TokenEndpoints, ControlAPI, Grants, Keys, Directory):
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
