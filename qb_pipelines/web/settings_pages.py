"""The Setup Wizard and Settings of a tenant's QuickBooks Online integration.

``GET/POST /integrations/{tenant}/setup`` (Setup Wizard, first connection) and
``GET/POST /integrations/{tenant}/settings`` (Settings, with "Integration Status" and the
"Switch QuickBooks Account" dialog): the default income account and tax code lists are read
live from the connected company. ``POST /integrations/{tenant}/mappings-reviewed`` clears the
"mappings may need review" warning a switch leaves.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qb_pipelines.store.connections import ConnectionState
from qb_pipelines.sync import connections as flows
from qb_pipelines.web import auth
from qb_pipelines.web.cards import build_card
from qb_pipelines.web.forms import SettingsForm, settings_form_from_store
from qb_pipelines.web.pages import flash, not_found, redirect, render, runtime_of, state_value, view_or_none

log = logging.getLogger(__name__)


async def _live_lists(request: Request, view: Any) -> tuple[list[flows.Choice], list[flows.Choice]] | Response:
    """Read the company's income accounts and tax codes now; on failure flip the card and go back."""
    runtime = runtime_of(request)

    def read() -> tuple[list[flows.Choice], list[flows.Choice]]:
        client = runtime.client_for(view.tenant_key, max_retries=2)
        return flows.live_lists(client)

    try:
        return await run_in_threadpool(read)
    except flows.LIVE_CALL_ERRORS as exc:
        message = await run_in_threadpool(flows.record_live_failure, runtime.connections, view.tenant_key, exc)
        log.warning("tenant %s: live call failed (%s)", view.tenant_key, type(exc).__name__)
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
                    flash(request, toast="Setup complete. QuickBooks Online is ready to sync.")
                    return redirect("/integrations")
                flash(request, toast="Settings saved.")
                return redirect(f"/integrations/{tenant_key}/settings")
        log.info("tenant %s: settings refused (%s)", tenant_key, ", ".join(sorted(form.errors)))
    card = await run_in_threadpool(build_card, runtime, view)
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
