"""Accounting Integrations: the cards, Add tenant, Connect / Reconnect / Switch, the OAuth callback, Disconnect.

Pages and words follow the seed's "Connecting QuickBooks Online" article (``shared/seeds/004``):

* ``GET /integrations``: one QuickBooks Online card per tenant in one of the seed's states (not
  connected, connected, session expired, connection error), the red "Connection Failed" banner
  after a failed authorization, toasts after a disconnect or reconnect.
* ``POST /integrations/{tenant}/connect`` (``action`` connect, reconnect or switch) sends the admin
  to Intuit; ``GET /oauth/callback`` comes back, checks ``state`` against the session and finishes
  the connection (:mod:`qb_pipelines.sync.connections`).
* ``POST /integrations/{tenant}/disconnect``: at once, no confirmation dialog (as the seed says).
* ``POST /integrations/{tenant}/companies`` (``QB_COMPANIES_PER_TENANT=several`` only): "Connect
  another company" creates the tenant's next company connection tenant (``<tenant>-2``...) and
  starts the same connect flow for it; that company then has its own card.
"""

from __future__ import annotations

import hmac
import logging
import re
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from qb_pipelines.sync import connections as flows
from qb_pipelines.web import auth
from qb_pipelines.web.cards import all_cards
from qb_pipelines.web.pages import (
    failed,
    flash,
    not_found,
    page_client,
    read_budget_of,
    redirect,
    render,
    runtime_of,
    view_or_none,
)
from qb_pipelines.web.signin import locked_signins

log = logging.getLogger(__name__)

_SESSION_OAUTH = "oauth_pending"
#: Keys an admin may type in "Add tenant" (the CLI and the app may use any key the store accepts).
_TENANT_KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")

DISCONNECTED_TOAST = "Integration disconnected successfully."
RECONNECTED_TOAST = "QuickBooks Online reconnected."

#: The button that starts each flow again, as the admin sees it: a card that is connected has no
#: Connect button (Switch lives behind the gear on Settings), an expired one shows Reconnect.
BUTTONS = {
    flows.ConnectAction.CONNECT.value: "Connect",
    flows.ConnectAction.RECONNECT.value: "Reconnect",
    flows.ConnectAction.SWITCH.value: "Switch QuickBooks Account",
}


def try_again(action: str) -> str:
    """How to start ``action`` again, e.g. "click Reconnect to try again"."""
    if action == flows.ConnectAction.SWITCH.value:
        return "open Settings and click Switch QuickBooks Account (the gear beside Connected Account) to try again"
    return f"click {BUTTONS.get(action, 'Connect')} to try again"


def _for_button(reason: str, action: str) -> str:
    # The connect flow's messages say "Click Connect"; say the button this flow really came from.
    if action == flows.ConnectAction.CONNECT.value:
        return reason
    return reason.replace("Click Connect", f"Click {BUTTONS.get(action, 'Connect')}")


def _failed_page(tenant_key: str, action: str) -> str:
    # A failed switch leaves the working connection: back to Settings, where the switch lives.
    if action == flows.ConnectAction.SWITCH.value:
        return f"/integrations/{tenant_key}/settings"
    return "/integrations"


@auth.login_required
async def integrations(request: Request) -> Response:
    runtime = runtime_of(request)
    cards = await run_in_threadpool(all_cards, runtime, read_budget_of(request))
    locks = await run_in_threadpool(locked_signins, runtime) if request.state.user.can_change else []
    return render(request, "integrations.html", cards=cards, locks=locks,
                  several_companies=runtime.settings.several_companies,
                  tenant_error=request.query_params.get("tenant_error"))


@auth.admin_post
async def add_tenant(request: Request) -> Response:
    form = await request.form()
    key = str(form.get("key") or "").strip().lower()
    name = str(form.get("name") or "").strip()
    if not _TENANT_KEY.match(key) or not name:
        message = "Use a key of lower-case letters, digits, - or _ (up to 63), and a name."
        return redirect("/integrations?" + urlencode({"tenant_error": message}))
    await run_in_threadpool(runtime_of(request).tenants.ensure_tenant, key, name[:200])
    flash(request, toast=f"Tenant {name} added.")
    return redirect("/integrations")


@auth.admin_post
async def connect(request: Request) -> Response:
    runtime = runtime_of(request)
    tenant_key = request.path_params["tenant"]
    form = await request.form()
    action = str(form.get("action") or flows.ConnectAction.CONNECT)
    if action not in {a.value for a in flows.ConnectAction}:
        return PlainTextResponse("400 Bad Request: unknown action", 400)
    if await run_in_threadpool(view_or_none, runtime, tenant_key) is None:
        return not_found()
    url, state = await run_in_threadpool(flows.begin_connect, runtime.connections, runtime.oauth(), tenant_key, action)
    # The state is bound to this browser's session: the callback must bring the same value back.
    request.session[_SESSION_OAUTH] = {"state": state, "tenant": tenant_key, "action": action}
    log.info("tenant %s: %s started by %s", tenant_key, action, request.state.user.email)
    return redirect(url)


@auth.login_required
async def oauth_callback(request: Request) -> Response:
    runtime = runtime_of(request)
    params = request.query_params
    pending = request.session.pop(_SESSION_OAUTH, None)
    state = params.get("state") or ""
    if not isinstance(pending, dict) or not state or not hmac.compare_digest(state, str(pending.get("state", ""))):
        log.warning("OAuth callback refused: state does not match this session")
        hint = try_again(str(pending.get("action") or "")) if isinstance(pending, dict) else try_again("connect")
        failed(request, "The QuickBooks sign-in could not be verified (it was started elsewhere or expired). "
                        f"{hint[0].upper()}{hint[1:]}.")
        return redirect("/integrations")
    if not request.state.user.can_change:
        return PlainTextResponse("403 Forbidden: only admins connect QuickBooks.", 403)
    tenant_key = str(pending["tenant"])
    action = str(pending.get("action") or flows.ConnectAction.CONNECT)
    error = params.get("error")
    if error:
        log.info("tenant %s: authorization ended with %s", tenant_key, error)
        unchanged = " Your current connection is unchanged." if action == flows.ConnectAction.SWITCH.value else ""
        if error == "access_denied":
            reason = (f"The authorization was cancelled in QuickBooks.{unchanged} Check your QuickBooks credentials, "
                      f"select a company and {try_again(action)}.")
        else:
            reason = (f"QuickBooks answered '{error[:60]}'.{unchanged} Check your QuickBooks credentials and "
                      f"{try_again(action)}.")
        failed(request, reason)
        return redirect(_failed_page(tenant_key, action))
    try:
        result = await run_in_threadpool(
            flows.complete_connect,
            runtime.connections,
            runtime.oauth(),
            page_client(runtime),
            tenant_key,
            params.get("code") or "",
            params.get("realmId") or "",
            action=action,
            environment_name=runtime.settings.environment_name,
        )
    except flows.ConnectFlowError as exc:
        failed(request, _for_button(exc.reason, action))
        return redirect(_failed_page(tenant_key, action))
    if result.kind == "first" or not result.configured:
        flash(request, toast=f"Connected to {result.company_name}. Complete the Setup Wizard before syncing.")
        return redirect(f"/integrations/{tenant_key}/setup")
    if result.kind == "switch":
        note = f"Switched to {result.company_name}. Your configuration is preserved, but mappings may need review: " \
               "the new company has different customers, vendors and items."
        if result.previous_revoked is False:
            note += " The previous company could not be revoked at Intuit; remove the app there under Apps."
        flash(request, banner={"kind": "warning", "title": "QuickBooks account switched", "text": note})
        return redirect(f"/integrations/{tenant_key}/settings")
    flash(request, toast=RECONNECTED_TOAST)
    return redirect("/integrations")


@auth.admin_post
async def disconnect(request: Request) -> Response:
    runtime = runtime_of(request)
    tenant_key = request.path_params["tenant"]
    if await run_in_threadpool(view_or_none, runtime, tenant_key) is None:
        return not_found()
    result = await run_in_threadpool(flows.disconnect, runtime.connections, runtime.oauth(), tenant_key)
    flash(request, toast=DISCONNECTED_TOAST)
    if result.revoke_error:
        flash(request, banner={"kind": "warning", "title": "Disconnected here only", "text": result.revoke_error})
    return redirect("/integrations")


#: What the "Connect another company" route answers when the deployment keeps one company per tenant.
ONE_COMPANY_PER_TENANT = ("this deployment connects one QuickBooks company per tenant; "
                          "set QB_COMPANIES_PER_TENANT=several to connect several.")


def _company_to_connect(runtime: Any, tenant_key: str) -> Any:
    # A company card left unconnected (the admin cancelled at Intuit) is used again before a new one is made.
    for child in runtime.tenants.children(tenant_key):
        view = runtime.connections.get(child.key)
        if view is not None and view.realm_id is None:
            return child
    return runtime.tenants.add_company(tenant_key)


@auth.admin_post
async def add_company(request: Request) -> Response:
    runtime = runtime_of(request)
    if not runtime.settings.several_companies:
        return not_found(ONE_COMPANY_PER_TENANT)
    tenant_key = request.path_params["tenant"]
    view = await run_in_threadpool(view_or_none, runtime, tenant_key)
    if view is None:
        return not_found()
    if view.parent_key is not None:
        return PlainTextResponse(f"400 Bad Request: {view.tenant_name} is a company of tenant {view.parent_key}: "
                                 f"connect another company from the card of {view.parent_key}.", 400)
    if view.realm_id is None:
        return PlainTextResponse("400 Bad Request: connect this tenant's first company with Connect first.", 400)
    child = await run_in_threadpool(_company_to_connect, runtime, tenant_key)
    action = flows.ConnectAction.CONNECT.value
    url, state = await run_in_threadpool(flows.begin_connect, runtime.connections, runtime.oauth(), child.key, action)
    request.session[_SESSION_OAUTH] = {"state": state, "tenant": child.key, "action": action}
    log.info("tenant %s: another company (%s) started by %s", tenant_key, child.key, request.state.user.email)
    return redirect(url)


routes = [
    Route("/integrations", integrations, methods=["GET"]),
    Route("/integrations/tenants", add_tenant, methods=["POST"]),
    Route("/integrations/{tenant}/connect", connect, methods=["POST"]),
    Route("/integrations/{tenant}/disconnect", disconnect, methods=["POST"]),
    Route("/integrations/{tenant}/companies", add_company, methods=["POST"]),
    Route("/oauth/callback", oauth_callback, methods=["GET"]),
]
