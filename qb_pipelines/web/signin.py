"""Sign-in and sign-out of the admin web app.

``GET /signin`` shows the form; ``POST /signin`` checks the e-mail and password against the user
store (:mod:`qb_pipelines.store.users`) and starts a server-side session; ``POST /signout`` ends it.

Every attempt first asks the sign-in throttle (:mod:`qb_pipelines.store.signin_throttle`): past 5
failures of an account (10 of a client address) attempts are slowed down, past 10 (20) locked for
15 minutes. A refused attempt answers 429 with ``Retry-After`` and the page says how long to
wait, without checking the password. The client address is the connection's, or the one a
trusted reverse proxy names in ``X-Forwarded-For`` (uvicorn's ``proxy_headers``, trusting
``FORWARDED_ALLOW_IPS``, 127.0.0.1 by default). Admins see the locked accounts and addresses on
Accounting Integrations and unlock them there (``POST /signin/unlock``), or with
``qb-pipelines users unlock``.
"""

from __future__ import annotations

import logging

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from qb_pipelines.store.signin_throttle import ACCOUNT, ADDRESS, Refusal
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.web import auth
from qb_pipelines.web.pages import flash, redirect, render, runtime_of

log = logging.getLogger(__name__)

WRONG_CREDENTIALS = "Wrong email or password."


def safe_next(value: str | None) -> str:
    """Where to go after signing in: local paths only, so the page is never an open redirect."""
    if value and value.startswith("/") and not value.startswith("//"):
        return value
    return "/integrations"


async def signin_page(request: Request) -> Response:
    if await auth.current_user(request) is not None:
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
    back = safe_next(str(form.get("next") or ""))
    if not email or not password:
        return render(request, "signin.html", status_code=401, user=None, email=email, error=WRONG_CREDENTIALS,
                      next=back)
    address = request.client.host if request.client else "unknown"
    verdict = await run_in_threadpool(runtime.signin_throttle.claim, email, address)
    if isinstance(verdict, Refusal):
        log.warning("sign-in for %s from %s refused: %s %s for %d s", email, address, verdict.scope,
                    "locked" if verdict.locked else "slowed down", verdict.retry_after_s)
        return render(request, "signin.html", status_code=429, headers={"Retry-After": str(verdict.retry_after_s)},
                      user=None, email=email, error=verdict.message, next=back)
    user = await run_in_threadpool(runtime.users.authenticate, email, password)
    if user is None:
        log.info("sign-in refused for %s from %s", email, address)
        return render(request, "signin.html", status_code=401, user=None, email=email, error=WRONG_CREDENTIALS,
                      next=back)
    await run_in_threadpool(runtime.signin_throttle.succeeded, verdict)
    await auth.sign_in(request, user.id)
    log.info("%s signed in (%s)", user.email, user.role)
    return redirect(back)


async def signout(request: Request) -> Response:
    if not await auth.csrf_ok(request):
        return PlainTextResponse("403 Forbidden: reload the page and try again.", 403)
    await auth.sign_out(request)
    return redirect("/signin")


def locked_signins(runtime: Runtime) -> list[dict[str, str]]:
    """The accounts and addresses locked now, for the admins' "Locked sign-ins" panel."""
    return [{"scope": scope, "key": key, "until": until.strftime("%Y-%m-%d %H:%M UTC")}
            for scope, key, until in runtime.signin_throttle.locked()]


@auth.admin_post
async def unlock(request: Request) -> Response:
    form = await request.form()
    scope, key = str(form.get("scope") or ""), str(form.get("key") or "").strip()
    if scope not in (ACCOUNT.scope, ADDRESS.scope) or not key:
        return PlainTextResponse("400 Bad Request: say which account or address to unlock", 400)
    runtime = runtime_of(request)
    if scope == ACCOUNT.scope:
        await run_in_threadpool(runtime.signin_throttle.unlock, key, None)
    else:
        await run_in_threadpool(runtime.signin_throttle.unlock, None, key)
    log.info("%s unlocked sign-ins of %s %s", request.state.user.email, scope, key)
    flash(request, toast=f"Sign-ins unlocked for {key}.")
    return redirect("/integrations")


routes = [
    Route("/signin", signin_page, methods=["GET"]),
    Route("/signin", signin_submit, methods=["POST"]),
    Route("/signout", signout, methods=["POST"]),
    Route("/signin/unlock", unlock, methods=["POST"]),
]
