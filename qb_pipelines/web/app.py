"""The admin web app: the Starlette application, its middleware, and serving it.

The pages live in rooms, one module each, every one exporting a ``routes`` list:

* :mod:`~qb_pipelines.web.signin`: ``/signin``, ``/signout``, unlocking locked sign-ins;
* :mod:`~qb_pipelines.web.integrations`: Accounting Integrations (cards, Add tenant, Connect,
  Reconnect, Switch, the OAuth callback, Disconnect);
* :mod:`~qb_pipelines.web.settings_pages`: the Setup Wizard, Settings, "mappings reviewed";
* :mod:`~qb_pipelines.web.sync_errors`: the push dashboard (sync errors, review queue, held records).

:data:`ROOMS` lists them; a new room is a module with a ``routes`` list added there. Shared
helpers (templates, banners, redirects) are in :mod:`~qb_pipelines.web.pages`, the card in
:mod:`~qb_pipelines.web.cards`, sessions, CSRF and roles in :mod:`~qb_pipelines.web.auth`.

Two doors are for programs, not browsers, and are answered by middlewares outside the session
and CSRF machinery: ``POST /webhooks/quickbooks`` (Intuit's change notifications,
:mod:`qb_pipelines.web.webhooks`, authenticated by Intuit's signature) and ``/api/...`` (the
records API and the change feed, :mod:`qb_pipelines.web.api`, a room of its own served by its
own small app, authenticated by the tenant's API key).

Every POST carries the session's CSRF token and needs the admin role (:mod:`qb_pipelines.web.auth`).
A failed live call moves the card to "session expired" or "connection error" instead of a 500.
Tokens and the client secret are never rendered nor logged.
"""

from __future__ import annotations

import logging
from types import ModuleType
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qb_pipelines.config import SettingsError
from qb_pipelines.qbo.redact import install_redaction
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.web import integrations, settings_pages, signin, sync_errors
from qb_pipelines.web.api import api_middleware
from qb_pipelines.web.auth import SessionPolicy
from qb_pipelines.web.config import WebSettings
from qb_pipelines.web.pages import HERE, redirect
from qb_pipelines.web.webhooks import intake_middleware

log = logging.getLogger(__name__)

#: The rooms of the app, each a module with a ``routes`` list (see the module docstring).
ROOMS: tuple[ModuleType, ...] = (signin, integrations, settings_pages, sync_errors)


async def home(request: Request) -> Response:
    return redirect("/integrations")


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


def routes() -> list[BaseRoute]:
    """Every route of the app: the home page, health, each room's routes, the static files."""
    found: list[BaseRoute] = [Route("/", home), Route("/healthz", healthz)]
    for room in ROOMS:
        found.extend(room.routes)
    found.append(Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"))
    return found


# ------------------------------------------------------------------------------------------------
# the app
# ------------------------------------------------------------------------------------------------
class SecurityHeaders:
    """Headers every page carries: no framing, no sniffing, scripts and styles from this app only."""

    HEADERS = (
        (b"x-frame-options", b"DENY"),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"content-security-policy",
         b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"),
        (b"cache-control", b"no-store"),
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers.extend((k, v) for k, v in self.HEADERS if k not in names)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(settings: WebSettings, runtime: Runtime | None = None) -> Starlette:
    """The admin web app for ``settings`` (``runtime`` lets tests share the store with the app).

    Args:
        settings: Where the store is, the Intuit app, the session secret.
        runtime: The integration's runtime; built (and the store migrated) from ``settings`` when omitted.
    """
    if not settings.session_secret:
        raise SettingsError("QB_SESSION_SECRET is not set: it signs the admin session cookies.")
    install_redaction("qb_pipelines", "uvicorn", "uvicorn.error", "uvicorn.access", "starlette")
    runtime = runtime or Runtime(settings.app_settings())
    middleware = [
        Middleware(SecurityHeaders),
        # POST /webhooks/quickbooks (qb_pipelines.web.webhooks): answered before the session
        # middleware, because Intuit is not a browser (no cookie, no CSRF; the signature authenticates).
        intake_middleware(settings, runtime),
        # /api/... (qb_pipelines.web.api): the app's own program, authenticated by its API key.
        api_middleware(settings, runtime),
        Middleware(
            SessionMiddleware,
            secret_key=settings.session_secret,
            session_cookie="qbp_session",
            max_age=settings.session_max_age_s,
            same_site="lax",
            https_only=settings.https_only,
        ),
    ]
    app = Starlette(routes=routes(), middleware=middleware, exception_handlers={500: _server_error})
    app.state.runtime = runtime
    app.state.settings = settings
    app.state.session_policy = SessionPolicy.from_settings(settings)
    return app


async def _server_error(request: Request, exc: Exception) -> Response:
    # The page never shows a traceback (it could hold anything); the log has the type only.
    log.error("unhandled error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return PlainTextResponse("Something went wrong on our side. Go back to /integrations and try again.", 500)


# ------------------------------------------------------------------------------------------------
# serving
# ------------------------------------------------------------------------------------------------
_REDACTED_PARAMS = {"code", "state", "realmId", "token", "access_token", "refresh_token"}


def redact_url(path: str) -> str:
    """``path`` with the values of OAuth parameters (code, state...) replaced, for access logs."""
    parts = urlsplit(path)
    if not parts.query:
        return path
    query = [(k, "REDACTED" if k in _REDACTED_PARAMS else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    return urlunsplit(parts._replace(query=urlencode(query)))


class RedactAccessLog(logging.Filter):
    """uvicorn's access log prints full URLs: hide the callback's authorization code and state."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_url(args[2]), *args[3:])
        return True


def install_log_redaction() -> None:
    """Attach :class:`RedactAccessLog` to uvicorn's access logger (idempotent)."""
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactAccessLog) for f in access.filters):
        access.addFilter(RedactAccessLog())


def serve(host: str = "127.0.0.1", port: int = 8000, settings: WebSettings | None = None) -> None:
    """Run the admin web app in the foreground (``qb-pipelines web``).

    Args:
        host: Interface to listen on.
        port: Port to listen on.
        settings: Defaults to :meth:`WebSettings.from_env` (raises ``SettingsError`` naming a missing variable).
    """
    import uvicorn

    settings = settings or WebSettings.from_env()
    app = create_app(settings)
    config = uvicorn.Config(app, host=host, port=port, proxy_headers=True, log_level="info")
    # uvicorn configures its loggers when the Config is built: attach the redaction after that.
    install_log_redaction()
    install_redaction("qb_pipelines", "uvicorn", "uvicorn.error", "uvicorn.access")  # uvicorn's new handlers
    log.info("admin web app on http://%s:%d (QuickBooks environment: %s)", host, port, settings.environment_name)
    uvicorn.Server(config).run()



