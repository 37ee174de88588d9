"""What every room of the admin web app shares: templates, the runtime, banners, toasts, redirects.

A room (:mod:`~qb_pipelines.web.signin`, :mod:`~qb_pipelines.web.integrations`,
:mod:`~qb_pipelines.web.settings_pages`...) is a module with a ``routes`` list; it renders
through :func:`render`, which hands every template the signed-in user, the session's CSRF token
and whatever banner or toasts the previous request queued with :func:`flash`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.templating import Jinja2Templates

from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.redact import redact
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.web import auth

HERE = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(HERE / "templates"))

_SESSION_FLASH = "flash"
#: Keys accepted in URLs: whatever a tenant created elsewhere may carry, minus path separators.
TENANT_KEY_IN_URL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@:-]{0,99}$")

CONNECTION_FAILED = "Connection Failed"


def runtime_of(request: Request) -> Runtime:
    """The integration's runtime the app was created with."""
    return request.app.state.runtime


def read_budget_of(request: Request) -> int:
    """The monthly read budget per company the app was configured with (``QB_READ_BUDGET``)."""
    return int(request.app.state.settings.read_budget)


def page_client(runtime: Runtime) -> Callable[..., QBOClient]:
    """QBO clients for pages: fewer retries than a sync, an admin is waiting for the page."""
    return functools.partial(runtime.client, max_retries=2)


def flash(request: Request, *, banner: dict[str, str] | None = None, toast: str | None = None,
          toast_kind: str = "") -> None:
    """Queue a banner or a toast for the next page (kept in the signed session cookie)."""
    queued = request.session.get(_SESSION_FLASH) or {}
    if banner is not None:  # error banners quote QuickBooks' messages: never a token in them
        queued["banner"] = {k: redact(v) if isinstance(v, str) else v for k, v in banner.items()}
    if toast:
        queued.setdefault("toasts", []).append({"text": redact(toast), "kind": toast_kind})
    request.session[_SESSION_FLASH] = queued


def failed(request: Request, reason: str) -> None:
    """Queue the seed's red "Connection Failed" banner with ``reason``."""
    flash(request, banner={"kind": "error", "title": CONNECTION_FAILED, "text": reason})


def render(request: Request, name: str, status_code: int = 200, headers: dict[str, str] | None = None,
           **context: Any) -> Response:
    """Render a page with the signed-in user, the CSRF token and any queued banner or toasts."""
    context.setdefault("user", getattr(request.state, "user", None))
    context["csrf_token"] = auth.csrf_token(request)
    context["flash"] = request.session.pop(_SESSION_FLASH, None)
    return templates.TemplateResponse(request, name, context, status_code=status_code, headers=headers)


def redirect(url: str) -> RedirectResponse:
    """A 303: the browser follows a POST's answer with a GET."""
    return RedirectResponse(url, status_code=303)


def not_found(what: str = "no such tenant") -> Response:
    return PlainTextResponse(f"404 Not Found: {what}", 404)


def state_value(view: Any) -> str:
    """A connection view's state as its plain string value."""
    return str(getattr(view.state, "value", view.state))


def view_or_none(runtime: Runtime, tenant_key: str) -> Any:
    """The tenant's connection view, or ``None`` for an unknown (or malformed) key."""
    if not TENANT_KEY_IN_URL.match(tenant_key):
        return None
    return runtime.connections.get(tenant_key)
