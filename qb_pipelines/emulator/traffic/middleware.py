"""Dropped connections: the ASGI middleware that turns :class:`DropConnection` into a broken response.

May touch: the ASGI send channel and uvicorn's error logger (a filter hides the deliberate drops).
"""

from __future__ import annotations

import contextvars
import logging
from typing import TYPE_CHECKING

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    pass


class DropConnection(Exception):
    """Raised to make :class:`TrafficMiddleware` break the connection without a full response."""


# --- dropped connections ------------------------------------------------------------------

# Set while the middleware deliberately leaves a response incomplete, so uvicorn's log line
# about it ("returned without completing response") is not reported as an application error.
_dropping: contextvars.ContextVar[bool] = contextvars.ContextVar("qbo_emulator_dropping", default=False)


class _DeliberateDropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_dropping.get() and "without completing response" in str(record.msg))


_drop_filter = _DeliberateDropFilter()


class TrafficMiddleware:
    """ASGI middleware that turns a :class:`DropConnection` raised by a route into a broken connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        logger = logging.getLogger("uvicorn.error")
        if _drop_filter not in logger.filters:
            logger.addFilter(_drop_filter)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except DropConnection:
            _dropping.set(True)
            if not started:
                # Promise more bytes than we send, then return: the server must close the socket.
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"application/json;charset=UTF-8"), (b"content-length", b"4096")],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"', "more_body": True})


#: The name the task brief used; same class.
DropConnectionMiddleware = TrafficMiddleware
