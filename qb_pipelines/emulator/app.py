"""The emulator's ASGI app: Intuit OAuth hosts, the v3 Accounting API and the control API.

Real QBO spreads these over several hosts (appcenter.intuit.com, oauth.platform.intuit.com,
quickbooks.api.intuit.com...); the emulator serves all of them from one base URL, and the
discovery document tells clients where each endpoint is.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qb_pipelines.emulator import api, control
from qb_pipelines.emulator.core import Emulator
from qb_pipelines.emulator.traffic import TrafficMiddleware


class IntuitTidMiddleware:
    """Every response carries ``intuit_tid`` (QBO sends it on success and error alike)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_tid(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(k.lower() == b"intuit_tid" for k, _ in headers):
                    headers.append((b"intuit_tid", Emulator.new_tid().encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_tid)


def create_app(emu: Emulator) -> Starlette:
    routes = [
        *emu.oauth.routes(),
        *api.routes(),
        *control.routes(),
        *emu.oauth.control_routes(),
        *emu.traffic.control_routes(),
        *emu.webhooks.control_routes(),
    ]
    app = Starlette(routes=routes, middleware=[Middleware(IntuitTidMiddleware), Middleware(TrafficMiddleware)])
    app.state.emu = emu
    return app
