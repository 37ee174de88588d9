"""The emulator's OAuth control API under ``/_emulator/``: tokens without a browser, apps, users, expire, revoke-all.

Test and demo tooling drives the server through it (the emulator's one control client is
:mod:`qb_pipelines.qbo.emulator_control`). May touch only what the rooms it calls touch.
"""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qb_pipelines.emulator.oauth.common import OAuthRoom, json_response


class ControlAPI(OAuthRoom):
    """Control endpoints over the directory and the token store."""

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
            return json_response({"error": "not_found", "message": f"No company with realmId {realm}"}, 404)
        try:
            body = await self._json_body(request)
            return json_response(self.issue_tokens_for(realm, body.get("email") or body.get("user_email")))
        except (KeyError, ValueError) as err:
            return json_response({"error": "bad_request", "message": str(err)}, 400)

    async def _control_apps(self, request: Request) -> Response:
        if request.method == "GET":
            return json_response(self.apps())
        try:
            body = await self._json_body(request)
            uris = body.get("redirect_uris") or []
            if isinstance(uris, str):
                uris = [uris]
            app = self.register_app(
                body.get("client_id"), body.get("client_secret"), body.get("name"), uris, bool(body.get("replace"))
            )
        except ValueError as err:
            return json_response({"error": "bad_request", "message": str(err)}, 400)
        return json_response(app, 201)

    async def _control_users(self, request: Request) -> Response:
        if request.method == "GET":
            realm = request.query_params.get("realmId")
            return json_response(self.users_for(realm) if realm else self.users())
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
            return json_response({"error": "bad_request", "message": str(err)}, 400)
        return json_response(user, 201)

    async def _control_expire(self, request: Request) -> Response:
        try:
            body = await self._json_body(request)
            if not body.get("realmId"):
                raise ValueError("realmId is required")
            counts = self.expire(str(body["realmId"]), body.get("what", "all"))
        except ValueError as err:
            return json_response({"error": "bad_request", "message": str(err)}, 400)
        return json_response({"realmId": str(body["realmId"]), "expired": counts})

    async def _control_revoke_all(self, request: Request) -> Response:
        try:
            body = await self._json_body(request)
            if not body.get("realmId"):
                raise ValueError("realmId is required")
        except ValueError as err:
            return json_response({"error": "bad_request", "message": str(err)}, 400)
        return json_response({"realmId": str(body["realmId"]), "revoked_grants": self.revoke_all(str(body["realmId"]))})

    def control_routes(self) -> list[Route]:
        """The emulator's OAuth control API under ``/_emulator/``."""
        return [
            Route("/_emulator/companies/{realmId}/tokens", self._control_tokens, methods=["POST"]),
            Route("/_emulator/apps", self._control_apps, methods=["GET", "POST"]),
            Route("/_emulator/users", self._control_users, methods=["GET", "POST"]),
            Route("/_emulator/oauth/expire", self._control_expire, methods=["POST"]),
            Route("/_emulator/oauth/revoke-all", self._control_revoke_all, methods=["POST"]),
        ]
