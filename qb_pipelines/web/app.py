"""The admin web app: Accounting Integrations, the OAuth callback, the Setup Wizard and Settings.

Starlette + Jinja2, served by uvicorn (``qb-pipelines web --host --port`` calls :func:`serve`).
Pages and words follow the seed's "Connecting QuickBooks Online" article (``shared/seeds/004``):

* ``GET /integrations``: one QuickBooks Online card per tenant in one of the seed's states (not
  connected, connected, session expired, connection error), the red "Connection Failed" banner
  after a failed authorization, toasts after a disconnect or reconnect.
* ``POST /integrations/{tenant}/connect`` (``action`` connect, reconnect or switch) sends the admin
  to Intuit; ``GET /oauth/callback`` comes back, checks ``state`` against the session and finishes
  the connection (``qb_pipelines.sync.connections``).
* ``POST /integrations/{tenant}/disconnect``: at once, no confirmation dialog (as the seed says).
* ``GET/POST /integrations/{tenant}/setup`` (Setup Wizard, first connection) and
  ``GET/POST /integrations/{tenant}/settings`` (Settings, with "Integration Status" and the
  "Switch QuickBooks Account" dialog): the default income account and tax code lists are read
  live from the connected company.

* ``POST /webhooks/quickbooks``: Intuit's change notifications, verified and stored in the webhook
  inbox (:mod:`qb_pipelines.web.webhooks`); outside the session and CSRF machinery below.

Every POST carries the session's CSRF token and needs the admin role (:mod:`qb_pipelines.web.auth`).
A failed live call moves the card to "session expired" or "connection error" instead of a 500.
Tokens and the client secret are never rendered nor logged.
"""

from __future__ import annotations

import functools
import hmac
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qb_pipelines.config import SettingsError
from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.store.connections import ConnectionState
from qb_pipelines.sync import connections as flows
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.web import auth
from qb_pipelines.web.config import WebSettings
from qb_pipelines.web.forms import SettingsForm, settings_form_from_store
from qb_pipelines.web.webhooks import intake_middleware

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

_SESSION_OAUTH = "oauth_pending"
_SESSION_FLASH = "flash"
#: Keys an admin may type in "Add tenant" (the CLI and the app may use any key the store accepts).
_TENANT_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
#: Keys accepted in URLs: whatever a tenant created elsewhere may carry, minus path separators.
_TENANT_KEY_IN_URL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,99}$")

STATE_LABELS = {
    "not_connected": "Not connected",
    "disconnected": "Not connected",
    "connected": "Connected",
    "session_expired": "Session expired",
    "connection_error": "Connection error",
}
ENVIRONMENT_LABELS = {"production": "Production", "sandbox": "Sandbox (test)", "emulator": "Emulator (test)"}

CONNECTION_FAILED = "Connection Failed"
DISCONNECTED_TOAST = "Integration disconnected successfully."
RECONNECTED_TOAST = "QuickBooks Online reconnected."


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _page_client(runtime: Runtime) -> Callable[..., QBOClient]:
    """QBO clients for pages: fewer retries than a sync, an admin is waiting for the page."""
    return functools.partial(runtime.client, max_retries=2)


# ------------------------------------------------------------------------------------------------
# rendering helpers
# ------------------------------------------------------------------------------------------------
def _flash(request: Request, *, banner: dict[str, str] | None = None, toast: str | None = None,
           toast_kind: str = "") -> None:
    """Queue a banner or a toast for the next page (kept in the signed session)."""
    flash = request.session.get(_SESSION_FLASH) or {}
    if banner is not None:
        flash["banner"] = banner
    if toast:
        flash.setdefault("toasts", []).append({"text": toast, "kind": toast_kind})
    request.session[_SESSION_FLASH] = flash


def _failed(request: Request, reason: str) -> None:
    _flash(request, banner={"kind": "error", "title": CONNECTION_FAILED, "text": reason})


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> Response:
    """Render a page with the signed-in user, the CSRF token and any queued banner or toasts."""
    context.setdefault("user", getattr(request.state, "user", None))
    context["csrf_token"] = auth.csrf_token(request)
    context["flash"] = request.session.pop(_SESSION_FLASH, None)
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def _redirect(url: str) -> RedirectResponse:
    # 303: the browser follows a POST's answer with a GET.
    return RedirectResponse(url, status_code=303)


def _state_value(view: Any) -> str:
    return str(getattr(view.state, "value", view.state))


def _card(view: Any, reads: int) -> dict[str, Any]:
    state = _state_value(view)
    user_name = getattr(view, "user_name", None) or ""
    return {
        "tenant_key": view.tenant_key,
        "tenant_name": view.tenant_name or view.tenant_key,
        "state": state,
        "state_label": STATE_LABELS.get(state, state),
        "user_name": user_name,
        "user_email": view.user_email or "",
        "company_name": view.company_name or "",
        "realm_id": view.realm_id or "",
        "environment_label": ENVIRONMENT_LABELS.get(view.environment or "", view.environment or ""),
        "reads_this_month": reads,
        "configured": bool(view.configured),
        "mappings_need_review": bool(getattr(view, "mappings_need_review", False)),
        "last_error": view.last_error or "",
        "last_error_at": view.last_error_at.strftime("%Y-%m-%d %H:%M UTC") if view.last_error_at else "",
    }


def _reads(runtime: Runtime, realm_id: str | None) -> int:
    return runtime.usage.reads(realm_id) if realm_id else 0


def _view_or_404(runtime: Runtime, tenant_key: str) -> Any:
    if not _TENANT_KEY_IN_URL.match(tenant_key):
        return None
    return runtime.connections.get(tenant_key)


# ------------------------------------------------------------------------------------------------
# sign-in
# ------------------------------------------------------------------------------------------------
def _safe_next(value: str | None) -> str:
    # Only local paths: an attacker must not turn the sign-in page into an open redirect.
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/integrations"


async def signin_page(request: Request) -> Response:
    if auth.current_user(request) is not None:
        return _redirect("/integrations")
    return render(request, "signin.html", user=None, email="", error=None,
                  next=_safe_next(request.query_params.get("next")))


async def signin_submit(request: Request) -> Response:
    if not await auth.csrf_ok(request):
        return PlainTextResponse("403 Forbidden: the sign-in form expired. Reload the page and sign in.", 403)
    form = await request.form()
    email = str(form.get("email") or "").strip()
    password = str(form.get("password") or "")
    runtime = _runtime(request)
    user = await run_in_threadpool(runtime.users.authenticate, email, password) if email and password else None
    if user is None:
        log.info("sign-in refused for %s", email or "<empty>")
        return render(request, "signin.html", status_code=401, user=None, email=email,
                      error="Wrong email or password.", next=_safe_next(str(form.get("next") or "")))
    role = str(getattr(user.role, "value", user.role))
    auth.sign_in(request, str(user.email), role)
    log.info("%s signed in (%s)", user.email, role)
    return _redirect(_safe_next(str(form.get("next") or "")))


async def signout(request: Request) -> Response:
    if not await auth.csrf_ok(request):
        return PlainTextResponse("403 Forbidden: reload the page and try again.", 403)
    auth.sign_out(request)
    return _redirect("/signin")


async def home(request: Request) -> Response:
    return _redirect("/integrations")


# ------------------------------------------------------------------------------------------------
# Accounting Integrations
# ------------------------------------------------------------------------------------------------
@auth.login_required
async def integrations(request: Request) -> Response:
    runtime = _runtime(request)

    def cards() -> list[dict[str, Any]]:
        return [_card(v, _reads(runtime, v.realm_id)) for v in runtime.connections.list_views()]

    return render(request, "integrations.html", cards=await run_in_threadpool(cards),
                  tenant_error=request.query_params.get("tenant_error"))


@auth.admin_post
async def add_tenant(request: Request) -> Response:
    form = await request.form()
    key = str(form.get("key") or "").strip().lower()
    name = str(form.get("name") or "").strip()
    if not _TENANT_KEY.match(key) or not name:
        message = "Use a key of lower-case letters, digits, - or _ (up to 63), and a name."
        return _redirect("/integrations?" + urlencode({"tenant_error": message}))
    await run_in_threadpool(_runtime(request).tenants.ensure_tenant, key, name[:200])
    _flash(request, toast=f"Tenant {name} added.")
    return _redirect("/integrations")


@auth.admin_post
async def connect(request: Request) -> Response:
    runtime = _runtime(request)
    tenant_key = request.path_params["tenant"]
    form = await request.form()
    action = str(form.get("action") or flows.ConnectAction.CONNECT)
    if action not in {a.value for a in flows.ConnectAction}:
        return PlainTextResponse("400 Bad Request: unknown action", 400)
    if _view_or_404(runtime, tenant_key) is None:
        return PlainTextResponse("404 Not Found: no such tenant", 404)
    url, state = await run_in_threadpool(flows.begin_connect, runtime.connections, runtime.oauth(), tenant_key, action)
    # The state is bound to this browser's session: the callback must bring the same value back.
    request.session[_SESSION_OAUTH] = {"state": state, "tenant": tenant_key, "action": action}
    log.info("tenant %s: %s started by %s", tenant_key, action, request.state.user.email)
    return _redirect(url)


@auth.login_required
async def oauth_callback(request: Request) -> Response:
    runtime = _runtime(request)
    params = request.query_params
    pending = request.session.pop(_SESSION_OAUTH, None)
    state = params.get("state") or ""
    if not isinstance(pending, dict) or not state or not hmac.compare_digest(state, str(pending.get("state", ""))):
        log.warning("OAuth callback refused: state does not match this session")
        _failed(request, "The QuickBooks sign-in could not be verified (it was started elsewhere or expired). "
                         "Click Connect to try again.")
        return _redirect("/integrations")
    if not request.state.user.can_change:
        return PlainTextResponse("403 Forbidden: only admins connect QuickBooks.", 403)
    tenant_key = str(pending["tenant"])
    action = str(pending.get("action") or flows.ConnectAction.CONNECT)
    error = params.get("error")
    if error:
        log.info("tenant %s: authorization ended with %s", tenant_key, error)
        if error == "access_denied":
            reason = ("The authorization was cancelled in QuickBooks. Check your QuickBooks credentials, "
                      "select a company and click Connect to try again.")
        else:
            reason = f"QuickBooks answered '{error[:60]}'. Check your QuickBooks credentials and try again."
        _failed(request, reason)
        return _redirect("/integrations")
    try:
        result = await run_in_threadpool(
            flows.complete_connect,
            runtime.connections,
            runtime.oauth(),
            _page_client(runtime),
            tenant_key,
            params.get("code") or "",
            params.get("realmId") or "",
            action=action,
            environment_name=runtime.settings.environment_name,
        )
    except flows.ConnectFlowError as exc:
        _failed(request, exc.reason)
        return _redirect("/integrations")
    if result.kind == "first" or not result.configured:
        _flash(request, toast=f"Connected to {result.company_name}. Complete the Setup Wizard before syncing.")
        return _redirect(f"/integrations/{tenant_key}/setup")
    if result.kind == "switch":
        note = f"Switched to {result.company_name}. Your configuration is preserved, but mappings may need review: " \
               "the new company has different customers, vendors and items."
        if result.previous_revoked is False:
            note += " The previous company could not be revoked at Intuit; remove the app there under Apps."
        _flash(request, banner={"kind": "warning", "title": "QuickBooks account switched", "text": note})
        return _redirect(f"/integrations/{tenant_key}/settings")
    _flash(request, toast=RECONNECTED_TOAST)
    return _redirect("/integrations")


@auth.admin_post
async def disconnect(request: Request) -> Response:
    runtime = _runtime(request)
    tenant_key = request.path_params["tenant"]
    if _view_or_404(runtime, tenant_key) is None:
        return PlainTextResponse("404 Not Found: no such tenant", 404)
    result = await run_in_threadpool(flows.disconnect, runtime.connections, runtime.oauth(), tenant_key)
    _flash(request, toast=DISCONNECTED_TOAST)
    if result.revoke_error:
        _flash(request, banner={"kind": "warning", "title": "Disconnected here only", "text": result.revoke_error})
    return _redirect("/integrations")


# ------------------------------------------------------------------------------------------------
# Setup Wizard and Settings
# ------------------------------------------------------------------------------------------------
async def _live_lists(request: Request, view: Any) -> tuple[list[flows.Choice], list[flows.Choice]] | Response:
    """Read the company's income accounts and tax codes now; on failure flip the card and go back."""
    runtime = _runtime(request)

    def read() -> tuple[list[flows.Choice], list[flows.Choice]]:
        client = runtime.client_for(view.tenant_key, max_retries=2)
        return flows.live_lists(client)

    try:
        return await run_in_threadpool(read)
    except flows.LIVE_CALL_ERRORS as exc:
        message = await run_in_threadpool(flows.record_live_failure, runtime.connections, view.tenant_key, exc)
        log.warning("tenant %s: live call failed (%s)", view.tenant_key, type(exc).__name__)
        _flash(request, banner={"kind": "error", "title": view.tenant_name or view.tenant_key, "text": message})
        return _redirect("/integrations")


async def _settings_page(request: Request, mode: str) -> Response:
    runtime = _runtime(request)
    tenant_key = request.path_params["tenant"]
    view = await run_in_threadpool(_view_or_404, runtime, tenant_key)
    if view is None:
        return PlainTextResponse("404 Not Found: no such tenant", 404)
    if _state_value(view) != ConnectionState.CONNECTED.value:
        _flash(request, banner={"kind": "info", "title": "Not connected",
                                "text": "Connect (or reconnect) QuickBooks Online before changing its settings."})
        return _redirect("/integrations")
    lists = await _live_lists(request, view)
    if isinstance(lists, Response):
        return lists
    accounts, tax_codes = lists
    stored = await run_in_threadpool(runtime.tenant_settings.get, tenant_key)
    form = settings_form_from_store(stored, view)
    if request.method == "POST":
        posted = await request.form()
        form = SettingsForm.from_post(posted, accounts, tax_codes, environment=view.environment)
        if not form.errors:
            error = await run_in_threadpool(form.save, runtime.tenant_settings, tenant_key)
            if error is None:
                if mode == "setup":
                    _flash(request, toast="Setup complete. QuickBooks Online is ready to sync.")
                    return _redirect("/integrations")
                _flash(request, toast="Settings saved.")
                return _redirect(f"/integrations/{tenant_key}/settings")
        log.info("tenant %s: settings refused (%s)", tenant_key, ", ".join(sorted(form.errors)))
    card = _card(view, await run_in_threadpool(_reads, runtime, view.realm_id))
    return render(
        request,
        "settings.html",
        status_code=400 if request.method == "POST" else 200,
        mode=mode,
        card=card,
        form=form,
        accounts=accounts,
        tax_codes=tax_codes,
        show_switch=request.query_params.get("switch") == "1",
    )


@auth.login_required
async def setup_get(request: Request) -> Response:
    return await _settings_page(request, "setup")


@auth.admin_post
async def setup_post(request: Request) -> Response:
    return await _settings_page(request, "setup")


@auth.login_required
async def settings_get(request: Request) -> Response:
    return await _settings_page(request, "settings")


@auth.admin_post
async def settings_post(request: Request) -> Response:
    return await _settings_page(request, "settings")


@auth.admin_post
async def mappings_reviewed(request: Request) -> Response:
    tenant_key = request.path_params["tenant"]
    runtime = _runtime(request)
    if _view_or_404(runtime, tenant_key) is None:
        return PlainTextResponse("404 Not Found: no such tenant", 404)
    await run_in_threadpool(runtime.tenant_settings.acknowledge_mappings_review, tenant_key)
    _flash(request, toast="Mappings marked as reviewed.")
    return _redirect(f"/integrations/{tenant_key}/settings")


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


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
    runtime = runtime or Runtime(settings.app_settings())
    routes = [
        Route("/", home),
        Route("/healthz", healthz),
        Route("/signin", signin_page, methods=["GET"]),
        Route("/signin", signin_submit, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/integrations", integrations, methods=["GET"]),
        Route("/integrations/tenants", add_tenant, methods=["POST"]),
        Route("/integrations/{tenant}/connect", connect, methods=["POST"]),
        Route("/integrations/{tenant}/disconnect", disconnect, methods=["POST"]),
        Route("/integrations/{tenant}/setup", setup_get, methods=["GET"]),
        Route("/integrations/{tenant}/setup", setup_post, methods=["POST"]),
        Route("/integrations/{tenant}/settings", settings_get, methods=["GET"]),
        Route("/integrations/{tenant}/settings", settings_post, methods=["POST"]),
        Route("/integrations/{tenant}/mappings-reviewed", mappings_reviewed, methods=["POST"]),
        Route("/oauth/callback", oauth_callback, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        # POST /webhooks/quickbooks (qb_pipelines.web.webhooks): answered before the session
        # middleware, because Intuit is not a browser (no cookie, no CSRF; the signature authenticates).
        intake_middleware(settings, runtime),
        Middleware(
            SessionMiddleware,
            secret_key=settings.session_secret,
            session_cookie="qbp_session",
            max_age=settings.session_max_age_s,
            same_site="lax",
            https_only=settings.https_only,
        ),
    ]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={500: _server_error})
    app.state.runtime = runtime
    app.state.lookup_user = runtime.users.get
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
    log.info("admin web app on http://%s:%d (QuickBooks environment: %s)", host, port, settings.environment_name)
    uvicorn.Server(config).run()



