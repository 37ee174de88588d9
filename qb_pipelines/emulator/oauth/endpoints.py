"""Intuit's OAuth HTTP endpoints except the authorize pages: token, revoke, userinfo, discovery, JWKS.

Client authentication (HTTP Basic or form), the authorization_code and refresh_token grants (with
rotation and grace), RFC 7009 revoke. May touch: ``oauth_codes`` (one use), grants and tokens
through :class:`~qb_pipelines.emulator.oauth.grants.Grants`.
"""

from __future__ import annotations

import base64
import hmac
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.oauth.common import REFRESH_ROLLING_S, OAuthError, OAuthRoom, json_response, sha256_hex


class TokenEndpoints(OAuthRoom):
    """The token, revoke, userinfo, discovery and JWKS endpoints."""

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
        return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def _exchange_code(self, app: dict, form: dict[str, str], include_hard: bool) -> dict:
        code = form.get("code")
        if not code:
            raise OAuthError("invalid_request", "code is required")
        now = self.emu.clock.lifetime_now()
        with self.emu.db.tx() as c:
            row = c.execute(
                "SELECT client_id, redirect_uri, scope, email, realm, auth_time, expires_at, used "
                "FROM oauth_codes WHERE code_hash=?",
                (sha256_hex(code),),
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
            c.execute("UPDATE oauth_codes SET used=1 WHERE code_hash=?", (sha256_hex(code),))
        grant, access, refresh = self._new_grant(client_id, realm, email, scope, auth_time)
        return self._token_response(grant, access, refresh, now, include_hard)

    def _refresh(self, app: dict, form: dict[str, str], include_hard: bool) -> dict:
        token = form.get("refresh_token")
        if not token:
            raise OAuthError("invalid_request", "refresh_token is required")
        now = self.emu.clock.lifetime_now()
        with self.emu.db.tx() as c:
            cur = c.execute("SELECT * FROM oauth_tokens WHERE token_hash=? AND kind='refresh'", (sha256_hex(token),))
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
            return json_response(
                {"error": "invalid_token", "error_description": err.detail},
                401,
                {"WWW-Authenticate": 'Bearer realm="Intuit", error="invalid_token"'},
            )
        scopes = set(grant["scope"].split())
        if "openid" not in scopes:
            return json_response(
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
        return json_response(body)

    async def discovery_endpoint(self, request: Request) -> Response:
        return json_response(self.discovery())

    async def jwks_endpoint(self, request: Request) -> Response:
        return json_response(self.jwks())
