"""Sign-in, sessions, CSRF and roles for the admin web app.

* **Sessions** are server-side (:mod:`qb_pipelines.store.web_sessions`): the browser's cookie,
  signed by Starlette's ``SessionMiddleware`` (itsdangerous), carries a random session id and no
  user. Every request resolves the id in the store, so a session ends for real: sign-out, a
  password change or the user's removal revokes it (a copied cookie replayed later opens
  nothing), and it expires after :attr:`SessionPolicy.idle` without a request or
  :attr:`SessionPolicy.lifetime` after sign-in, however active. Signing in always starts a new
  session id (no fixation). The cookie also carries transient page state (a queued banner, the
  pending OAuth ``state``), never anything that grants access.
* **CSRF**: every form posts a token in the ``csrf_token`` field, and every POST without the right
  one answers 403 before anything else happens. A signed-in session's token is derived from its
  session id (HMAC with the app's secret), so it dies with the session; an anonymous visitor's is
  random, in the cookie. The session cookie is also ``SameSite=Lax``, a second fence.
* **Roles**: ``admin`` connects, disconnects, switches and changes settings; ``viewer`` sees every
  page and nothing more (every state-changing route answers 403 for a viewer). The role is read
  from the user store on each request, so demoting a user takes effect at once.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

ADMIN = "admin"
VIEWER = "viewer"
ROLES = (ADMIN, VIEWER)

CSRF_FIELD = "csrf_token"
_SESSION_ID = "sid"
_SESSION_CSRF = "csrf"  # anonymous visitors only (the sign-in form)

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


@dataclass(frozen=True)
class SessionPolicy:
    """How long a session lasts, and the key its CSRF tokens are derived with.

    Attributes:
        lifetime: Absolute expiry, counted from sign-in.
        idle: Idle timeout, counted from the last request.
        csrf_key: Secret key of the derived CSRF tokens (from the session secret).
    """

    lifetime: timedelta
    idle: timedelta
    csrf_key: bytes

    @classmethod
    def from_settings(cls, settings: Any) -> SessionPolicy:
        """The policy of the web settings (``session_max_age_s``, ``session_idle_s``, ``session_secret``)."""
        key = hashlib.sha256(b"qb-pipelines csrf\x00" + str(settings.session_secret).encode()).digest()
        return cls(lifetime=timedelta(seconds=settings.session_max_age_s),
                   idle=timedelta(seconds=settings.session_idle_s), csrf_key=key)


def _policy(request: Request) -> SessionPolicy:
    return request.app.state.session_policy


def _sessions(request: Request) -> Any:
    return request.app.state.runtime.web_sessions


def csrf_token(request: Request) -> str:
    """The CSRF token of this session: derived from a signed-in session's id, else random in the cookie."""
    sid = request.session.get(_SESSION_ID)
    if isinstance(sid, str) and sid:
        return hmac.new(_policy(request).csrf_key, b"csrf:" + sid.encode(), hashlib.sha256).hexdigest()
    token = request.session.get(_SESSION_CSRF)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[_SESSION_CSRF] = token
    return str(token)


async def csrf_ok(request: Request) -> bool:
    """Whether the POSTed form carries the session's CSRF token (constant-time compare)."""
    if not request.session.get(_SESSION_ID) and not request.session.get(_SESSION_CSRF):
        return False
    expected = csrf_token(request)
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str) or not sent:
        sent = request.headers.get("x-csrf-token", "")
    return hmac.compare_digest(sent.encode(), expected.encode())


async def sign_in(request: Request, user_id: int) -> None:
    """Start a server-side session for the user: a new session id (and so a new CSRF token).

    A session the browser already had is ended first: nothing carries over from before sign-in.
    """
    store = _sessions(request)
    old = request.session.get(_SESSION_ID)
    if isinstance(old, str) and old:
        await run_in_threadpool(store.end, old)
    sid = await run_in_threadpool(store.start, user_id, _policy(request).lifetime)
    request.session.clear()
    request.session[_SESSION_ID] = sid
    request.state.user = None  # resolved again from the store on the next lookup


async def sign_out(request: Request) -> None:
    """End the session in the store (the cookie, even copied, opens nothing afterwards)."""
    sid = request.session.get(_SESSION_ID)
    if isinstance(sid, str) and sid:
        await run_in_threadpool(_sessions(request).end, sid)
    request.session.clear()


async def current_user(request: Request) -> CurrentUser | None:
    """The signed-in user of this request, resolved from the session store (role read now), or ``None``."""
    cached = getattr(request.state, "user", None)
    if isinstance(cached, CurrentUser):
        return cached
    sid = request.session.get(_SESSION_ID)
    if not isinstance(sid, str) or not sid:
        return None
    active = await run_in_threadpool(_sessions(request).resolve, sid, _policy(request).idle)
    if active is None:
        request.session.pop(_SESSION_ID, None)
        return None
    user = CurrentUser(email=active.email, role=active.role)
    request.state.user = user
    return user


def _forbidden(message: str) -> Response:
    return PlainTextResponse(f"403 Forbidden: {message}", status_code=403)


def login_required(handler: Handler) -> Handler:
    """Pages for any signed-in user; anonymous visitors go to the sign-in page."""

    @functools.wraps(handler)
    async def wrapper(request: Request) -> Response:
        user = await current_user(request)
        if user is None:
            return RedirectResponse(f"/signin?next={request.url.path}", status_code=303)
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
        user = await current_user(request)
        if user is None:
            return RedirectResponse("/signin", status_code=303)
        if not user.can_change:
            return _forbidden("your role (viewer) can see this page but not change anything. Ask an admin.")
        return await handler(request)

    return wrapper
