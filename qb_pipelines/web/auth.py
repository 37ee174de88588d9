"""Sign-in, sessions, CSRF and roles for the admin web app.

* **Sessions** live in a signed cookie (Starlette's ``SessionMiddleware``, itsdangerous): the
  server keeps no session table, and a cookie altered by the browser is ignored.
* **CSRF**: every session carries one random token; every form posts it back in the ``csrf_token``
  field and every POST without the right token answers 403, before anything else happens. The
  session cookie is also ``SameSite=Lax``, a second fence.
* **Roles**: ``admin`` connects, disconnects, switches and changes settings; ``viewer`` sees every
  page and nothing more (every state-changing route answers 403 for a viewer). The role is read
  from the user store on each request, so demoting or deleting a user takes effect at once.
"""

from __future__ import annotations

import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

ADMIN = "admin"
VIEWER = "viewer"
ROLES = (ADMIN, VIEWER)

CSRF_FIELD = "csrf_token"
_SESSION_USER = "user"
_SESSION_CSRF = "csrf"

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in admin user as the pages need it (never the password hash)."""

    email: str
    role: str

    @property
    def can_change(self) -> bool:
        """Whether this user may change anything (connect, disconnect, switch, settings)."""
        return self.role == ADMIN


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use; templates put it in every form."""
    token = request.session.get(_SESSION_CSRF)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[_SESSION_CSRF] = token
    return token


async def csrf_ok(request: Request) -> bool:
    """Whether the POSTed form carries the session's CSRF token (constant-time compare)."""
    expected = request.session.get(_SESSION_CSRF)
    if not expected:
        return False
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not sent:
        sent = request.headers.get("x-csrf-token", "")
    return hmac.compare_digest(sent.encode(), str(expected).encode())


def sign_in(request: Request, email: str, role: str) -> None:
    """Start a signed-in session: a fresh session and a fresh CSRF token (no token carries over)."""
    request.session.clear()
    request.session[_SESSION_USER] = {"email": email, "role": role}
    request.session[_SESSION_CSRF] = secrets.token_urlsafe(32)


def sign_out(request: Request) -> None:
    """End the session."""
    request.session.clear()


def current_user(request: Request) -> CurrentUser | None:
    """The signed-in user, re-checked against the user store (role changes apply at once)."""
    data = request.session.get(_SESSION_USER)
    if not isinstance(data, dict) or not data.get("email"):
        return None
    lookup: Callable[[str], Any] | None = getattr(request.app.state, "lookup_user", None)
    if lookup is not None:
        user = lookup(str(data["email"]))
        if user is None:
            request.session.pop(_SESSION_USER, None)
            return None
        return CurrentUser(email=str(user.email), role=str(getattr(user.role, "value", user.role)))
    return CurrentUser(email=str(data["email"]), role=str(data.get("role") or VIEWER))


def _forbidden(message: str) -> Response:
    return PlainTextResponse(f"403 Forbidden: {message}", status_code=403)


def login_required(handler: Handler) -> Handler:
    """Pages for any signed-in user; anonymous visitors go to the sign-in page."""

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        user = current_user(request)
        if user is None:
            return RedirectResponse(f"/signin?next={request.url.path}", status_code=303)
        request.state.user = user
        return await handler(request)

    return wrapper


def admin_post(handler: Handler) -> Handler:
    """State-changing routes: signed in, a valid CSRF token, and the admin role; 403 otherwise.

    The CSRF check comes first, so a forged request learns nothing about the session.
    """

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        if not await csrf_ok(request):
            return _forbidden("the form's security token is missing or stale. Reload the page and try again.")
        user = current_user(request)
        if user is None:
            return RedirectResponse("/signin", status_code=303)
        if not user.can_change:
            return _forbidden("your role (viewer) can see this page but not change anything. Ask an admin.")
        request.state.user = user
        return await handler(request)

    return wrapper
