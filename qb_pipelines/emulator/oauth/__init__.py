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

The rooms: :mod:`.server` (:class:`OAuthServer`, its tables and public routes), :mod:`.directory`
(apps, users), :mod:`.keys` (signing key, JWKS, discovery), :mod:`.grants` (token store, bearer
checks), :mod:`.endpoints` (token, revoke, userinfo), :mod:`.authorize` (the pages), :mod:`.control`
(control API), :mod:`.common` (lifetimes, defaults, scopes, errors).
"""

from qb_pipelines.emulator.oauth.common import (
    ACCESS_TOKEN_LIFETIME_S,
    ACCOUNTING_SCOPE,
    AUTH_CODE_LIFETIME_S,
    AUTHORIZE_FLOW_MAX_AGE_S,
    DEFAULT_APP_NAME,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_REDIRECT_URIS,
    DEFAULT_USER_EMAIL,
    DEFAULT_USER_PASSWORD,
    KNOWN_SCOPES,
    REFRESH_GRACE_S,
    REFRESH_HARD_CAP_S,
    REFRESH_ROLLING_S,
    SCOPE_WORDING,
    Bearer,
    OAuthError,
    new_token_id,
)
from qb_pipelines.emulator.oauth.server import SCHEMA, OAuthServer

__all__ = [
    "ACCESS_TOKEN_LIFETIME_S",
    "ACCOUNTING_SCOPE",
    "AUTHORIZE_FLOW_MAX_AGE_S",
    "AUTH_CODE_LIFETIME_S",
    "DEFAULT_APP_NAME",
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_REDIRECT_URIS",
    "DEFAULT_USER_EMAIL",
    "DEFAULT_USER_PASSWORD",
    "KNOWN_SCOPES",
    "REFRESH_GRACE_S",
    "REFRESH_HARD_CAP_S",
    "REFRESH_ROLLING_S",
    "SCHEMA",
    "SCOPE_WORDING",
    "Bearer",
    "OAuthError",
    "OAuthServer",
    "new_token_id",
]
