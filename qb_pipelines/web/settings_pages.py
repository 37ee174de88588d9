"""The Setup Wizard and Settings of a tenant's QuickBooks Online integration.

``GET/POST /integrations/{tenant}/setup`` (Setup Wizard, first connection) and
``GET/POST /integrations/{tenant}/settings`` (Settings, with "Integration Status" and the
"Switch QuickBooks Account" dialog): the default income account and tax code lists are read
live from the connected company. When QuickBooks cannot be reached the page still opens on the
stored values, the lists marked unavailable (a save must keep the stored account and tax code);
when the connection itself turns out unusable, back to the card, which now says so. A configured
tenant's Setup Wizard is its Settings page. ``POST /integrations/{tenant}/mappings-reviewed`` clears the
"mappings may need review" warning a switch leaves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qb_pipelines.store.connections import ConnectionState
from qb_pipelines.sync import connections as flows
from qb_pipelines.web import auth
from qb_pipelines.web.cards import build_card
from qb_pipelines.web.forms import SettingsForm, settings_form_from_store, stored_choices
from qb_pipelines.web.pages import (
    flash,
    not_found,
    read_budget_of,
    redirect,
    render,
    runtime_of,
    state_value,
    view_or_none,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveLists:
    """The income accounts and tax codes to offer, and whether QuickBooks gave them just now.

    Attributes:
        accounts: Income accounts (live), or the saved one when QuickBooks could not be reached.
        tax_codes: Tax codes (live), or the saved one.
        unavailable: Why the live lists could not be read (``None`` when they were).
    """

    accounts: list[Any]
    tax_codes: list[Any]
    unavailable: str | None = None


async def _live_lists(request: Request, view: Any, stored: Any) -> LiveLists | Response:
    """Read the company's income accounts and tax codes now.

    If QuickBooks cannot be reached (5xx, timeouts, throttling after the client's retries) the
    page still opens on the stored choices, marked unavailable. If the call showed the connection
    itself is unusable (session expired, refused), the card has changed state: back to it.
    """
    runtime = runtime_of(request)

    def read() -> tuple[list[flows.Choice], list[flows.Choice]]:
        client = runtime.client_for(view.tenant_key, max_retries=2)
        return flows.live_lists(client)

    try:
        accounts, tax_codes = await run_in_threadpool(read)
        return LiveLists(accounts, tax_codes)
    except flows.LIVE_CALL_ERRORS as exc:
        message = await run_in_threadpool(flows.record_live_failure, runtime.connections, view.tenant_key, exc)
        log.warning("tenant %s: live call failed (%s)", view.tenant_key, type(exc).__name__)
        now = await run_in_threadpool(view_or_none, runtime, view.tenant_key)
        if now is not None and state_value(now) == ConnectionState.CONNECTED.value:
            accounts, tax_codes = stored_choices(stored)
            return LiveLists(list(accounts), list(tax_codes), unavailable=message)
        flash(request, banner={"kind": "error", "title": view.tenant_name or view.tenant_key, "text": message})
        return redirect("/integrations")


async def _settings_page(request: Request, mode: str) -> Response:
    runtime = runtime_of(request)
    tenant_key = request.path_params["tenant"]
    view = await run_in_threadpool(view_or_none, runtime, tenant_key)
    if view is None:
        return not_found()
    if state_value(view) != ConnectionState.CONNECTED.value:
        flash(request, banner={"kind": "info", "title": "Not connected",
                               "text": "Connect (or reconnect) QuickBooks Online before changing its settings."})
        return redirect("/integrations")
    stored = await run_in_threadpool(runtime.tenant_settings.get, tenant_key)
    if mode == "setup" and stored is not None and stored.configured:
        # The wizard is done: its page is Settings now (a POST to it saves as Settings does).
        if request.method == "GET":
            return redirect(f"/integrations/{tenant_key}/settings")
        mode = "settings"
    lists = await _live_lists(request, view, stored)
    if isinstance(lists, Response):
        return lists
    form = settings_form_from_store(stored, view)
    if request.method == "POST":
        posted = await request.form()
        form = SettingsForm.from_post(posted, lists.accounts, lists.tax_codes, environment=view.environment,
                                      live=lists.unavailable is None)
        if not form.errors:
            error = await run_in_threadpool(form.save, runtime.tenant_settings, tenant_key)
            if error is None:
                if mode == "setup":
                    flash(request, toast="Setup complete. QuickBooks Online is ready to sync.")
                    return redirect("/integrations")
                flash(request, toast="Settings saved.")
                return redirect(f"/integrations/{tenant_key}/settings")
        log.info("tenant %s: settings refused (%s)", tenant_key, ", ".join(sorted(form.errors)))
    card = await run_in_threadpool(build_card, runtime, view, read_budget_of(request))
    return render(
        request,
        "settings.html",
        status_code=400 if request.method == "POST" else 200,
        mode=mode,
        card=card,
        form=form,
        accounts=lists.accounts,
        tax_codes=lists.tax_codes,
        lists_unavailable=lists.unavailable,
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
    runtime = runtime_of(request)
    if await run_in_threadpool(view_or_none, runtime, tenant_key) is None:
        return not_found()
    await run_in_threadpool(runtime.tenant_settings.acknowledge_mappings_review, tenant_key)
    flash(request, toast="Mappings marked as reviewed.")
    return redirect(f"/integrations/{tenant_key}/settings")


routes = [
    Route("/integrations/{tenant}/setup", setup_get, methods=["GET"]),
    Route("/integrations/{tenant}/setup", setup_post, methods=["POST"]),
    Route("/integrations/{tenant}/settings", settings_get, methods=["GET"]),
    Route("/integrations/{tenant}/settings", settings_post, methods=["POST"]),
    Route("/integrations/{tenant}/mappings-reviewed", mappings_reviewed, methods=["POST"]),
]
