"""Sign-in and sign-out of the admin web app.

``GET /signin`` shows the form; ``POST /signin`` checks the e-mail and password against the user
store (:mod:`qb_pipelines.store.users`) and starts a session; ``POST /signout`` ends it.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from qb_pipelines.web import auth
from qb_pipelines.web.pages import redirect, render, runtime_of

log = logging.getLogger(__name__)

WRONG_CREDENTIALS = "Wrong email or password."


def safe_next(value: str | None) -> str:
    """Where to go after signing in: local paths only, so the page is never an open redirect."""
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/integrations"


async def signin_page(request: Request) -> Response:
    if auth.current_user(request) is not None:
        return redirect("/integrations")
    return render(request, "signin.html", user=None, email="", error=None,
                  next=safe_next(request.query_params.get("next")))


async def signin_submit(request: Request) -> Response:
    if not await auth.csrf_ok(request):
        return PlainTextResponse("403 Forbidden: the sign-in form expired. Reload the page and sign in.", 403)
    form = await request.form()
    email = str(form.get("email") or "").strip()
    password = str(form.get("password") or "")
    runtime = runtime_of(request)
    user = await run_in_threadpool(runtime.users.authenticate, email, password) if email and password else None
    if user is None:
        log.info("sign-in refused for %s", email or "<empty>")
        return render(request, "signin.html", status_code=401, user=None, email=email,
                      error=WRONG_CREDENTIALS, next=safe_next(str(form.get("next") or "")))
    role = str(getattr(user.role, "value", user.role))
    auth.sign_in(request, str(user.email), role)
    log.info("%s signed in (%s)", user.email, role)
    return redirect(safe_next(str(form.get("next") or "")))


async def signout(request: Request) -> Response:
    if not await auth.csrf_ok(request):
        return PlainTextResponse("403 Forbidden: reload the page and try again.", 403)
    auth.sign_out(request)
    return redirect("/signin")


routes = [
    Route("/signin", signin_page, methods=["GET"]),
    Route("/signin", signin_submit, methods=["POST"]),
    Route("/signout", signout, methods=["POST"]),
]
