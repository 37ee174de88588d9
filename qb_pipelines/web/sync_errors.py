"""The push dashboard of one tenant: sync errors, the review queue, held records.

"Failed syncs surface in a dedicated dashboard with clear reasons. Retry individual records or all
pending errors at once." (the product page). ``GET /integrations/{tenant}/sync``, linked from the
QuickBooks Online card, shows:

* **Sync errors**: records QuickBooks refused (``failed``: its code and message, and what to fix),
  records retried automatically after a transient fault (``retrying``, with the next retry), and
  records waiting on one of those (``blocked``: "customer c-9 failed: ..."), each with **Retry**;
  **Retry all** sends every one of them again at the next push;
* **To review**: conflicts (a field changed in both the app and QuickBooks: the agreed, app and
  QuickBooks values side by side) resolved with **Keep app's**, **Keep QuickBooks'** or a pick per
  field; ambiguous matches (several QuickBooks records fit a new app record) resolved by linking
  one candidate or creating a new record;
* **Held**: records the app created before QuickBooks was first connected, never pushed unless an
  admin chooses **Push these too** (per entity) or **Push this too** (per record).

Admins act; viewers see the same page without buttons, and every POST answers 403 for them (and
for any request without the session's CSRF token). An action changes the outbox only; the next
push run (the outbox sensor starts one within seconds) does the work.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from qb_pipelines.qbo.redact import redact
from qb_pipelines.store.outbox import OutboxView
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.web import auth
from qb_pipelines.web.cards import ERROR_STATUSES, push_summary
from qb_pipelines.web.pages import flash, not_found, redirect, render, runtime_of, view_or_none

log = logging.getLogger(__name__)

#: Rows shown per section (the counts say how many there are in all).
ROWS_SHOWN = 500


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else ""


def show_value(value: Any) -> str:
    """A value of the app's vocabulary as a person reads it (addresses on one line, lines counted)."""
    if value is None or value == "" or value == {} or value == []:
        return "(blank)"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict):
        return ", ".join(str(v) for v in value.values() if v not in (None, ""))
    if isinstance(value, list):
        lines = []
        for line in value:
            if isinstance(line, dict):
                what = line.get("item_app_id") or line.get("account_id") or line.get("description") or "line"
                qty, price = line.get("qty"), line.get("unit_price", line.get("amount"))
                lines.append(f"{what} {qty} at {price}" if qty is not None else f"{what} {price}")
            else:
                lines.append(str(line))
        return f"{len(value)} line{'s' if len(value) != 1 else ''}: " + "; ".join(lines)
    return str(value)


def _label(field: str) -> str:
    return field.replace("_", " ").capitalize()


def _error_row(row: OutboxView) -> dict[str, Any]:
    return {"id": row.id, "entity": row.entity, "app_id": row.app_id, "label": row.label, "status": row.status,
            "reason": redact(row.error_message or row.reason or ""), "code": row.error_code or "",
            "next_step": row.next_step or ("goes as soon as what it waits for is in QuickBooks"
                                           if row.status == "blocked" else ""),
            "attempts": row.attempts, "next_retry": _when(row.next_attempt_at) if row.status == "retrying" else "",
            "updated": _when(row.updated_at)}


def _review_row(row: OutboxView) -> dict[str, Any]:
    review = row.review or {}
    fields = [{"name": name, "label": _label(name), "agreed": show_value(v.get("agreed")),
               "app": show_value(v.get("app")), "qbo": show_value(v.get("qbo"))}
              for name, v in sorted((review.get("fields") or {}).items())]
    candidates = [{"qbo_id": str(c.get("qbo_id")), "name": c.get("name") or "", "email": c.get("email") or "",
                   "total": c.get("total")} for c in review.get("candidates") or []]
    return {"id": row.id, "entity": row.entity, "app_id": row.app_id, "label": row.label,
            "kind": review.get("kind") or "conflict", "reason": row.reason or "", "fields": fields,
            "candidates": candidates, "since": _when(row.updated_at)}


def dashboard(runtime: Runtime, tenant_key: str) -> dict[str, Any]:
    """Everything the page shows (call it in a worker thread)."""
    errors = runtime.outbox.rows(tenant_key, ERROR_STATUSES, limit=ROWS_SHOWN)
    reviews = runtime.outbox.rows(tenant_key, ("review",), limit=ROWS_SHOWN)
    held_rows = runtime.outbox.rows(tenant_key, ("held",), limit=ROWS_SHOWN)
    held: dict[str, list[dict[str, Any]]] = {}
    for row in held_rows:
        held.setdefault(row.entity, []).append({"id": row.id, "app_id": row.app_id, "label": row.label,
                                                "version": row.version, "created": _when(row.record_created_at)})
    return {"summary": push_summary(runtime, tenant_key), "errors": [_error_row(r) for r in errors],
            "reviews": [_review_row(r) for r in reviews], "held": held, "shown": ROWS_SHOWN}


# ------------------------------------------------------------------------------------------------
# pages
# ------------------------------------------------------------------------------------------------
def _page_url(tenant_key: str, anchor: str = "") -> str:
    return f"/integrations/{tenant_key}/sync" + (f"#{anchor}" if anchor else "")


@auth.login_required
async def page(request: Request) -> Response:
    runtime = runtime_of(request)
    tenant_key = request.path_params["tenant"]
    view = await run_in_threadpool(view_or_none, runtime, tenant_key)
    if view is None:
        return not_found()
    data = await run_in_threadpool(dashboard, runtime, tenant_key)
    return render(request, "sync_errors.html", tenant_key=tenant_key,
                  tenant_name=view.tenant_name or tenant_key, **data)


async def _tenant_row(request: Request, row_id: Any) -> tuple[Runtime, str, OutboxView] | Response:
    """The outbox row named by the request, if it is the URL's tenant's (404 otherwise)."""
    runtime = runtime_of(request)
    tenant_key = request.path_params["tenant"]
    if await run_in_threadpool(view_or_none, runtime, tenant_key) is None:
        return not_found()
    text = str(row_id or "")
    if not text.isdigit():
        return PlainTextResponse("400 Bad Request: which record?", 400)
    row = await run_in_threadpool(runtime.outbox.get, int(text))
    if row is None or row.tenant_key != tenant_key:
        return not_found("no such record for this tenant")
    return runtime, tenant_key, row


@auth.admin_post
async def retry(request: Request) -> Response:
    form = await request.form()
    found = await _tenant_row(request, form.get("row_id"))
    if isinstance(found, Response):
        return found
    runtime, tenant_key, row = found
    changed = await run_in_threadpool(runtime.outbox.retry, [row.id])
    if changed:
        flash(request, toast=f"{row.label} ({row.app_id}) will be sent again at the next push.")
    else:
        flash(request, toast=f"{row.label} ({row.app_id}) is no longer an error: nothing to retry.")
    log.info("tenant %s: retry of outbox row %s by %s", tenant_key, row.id, request.state.user.email)
    return redirect(_page_url(tenant_key, "errors"))


@auth.admin_post
async def retry_all(request: Request) -> Response:
    runtime = runtime_of(request)
    tenant_key = request.path_params["tenant"]
    if await run_in_threadpool(view_or_none, runtime, tenant_key) is None:
        return not_found()
    changed = await run_in_threadpool(runtime.outbox.retry_all, tenant_key)
    flash(request, toast=f"{changed:,} record{'s' if changed != 1 else ''} will be sent again at the next push.")
    log.info("tenant %s: retry all (%d rows) by %s", tenant_key, changed, request.state.user.email)
    return redirect(_page_url(tenant_key, "errors"))


def resolved_payload(row: OutboxView, choice: str, picks: dict[str, str]) -> dict[str, Any]:
    """The record to push after a conflict review: the app's record with the chosen side of each field.

    Args:
        row: the row waiting for review (its payload is the app's record).
        choice: ``app`` (keep every app value), ``qbo`` (keep every QuickBooks value) or
            ``fields`` (``picks`` says which side per field).
        picks: field -> ``app`` or ``qbo``.

    Raises:
        ValueError: a field without a pick, naming it.
    """
    fields = (row.review or {}).get("fields") or {}
    payload = dict(row.payload or {})
    missing = []
    for name, values in fields.items():
        side = choice if choice in ("app", "qbo") else picks.get(name)
        if side not in ("app", "qbo"):
            missing.append(_label(name))
            continue
        if side == "qbo":
            value = values.get("qbo")
            if value is None:
                payload.pop(name, None)  # QuickBooks has it blank: the record has no such field
            else:
                payload[name] = value
    if missing:
        raise ValueError(", ".join(missing))
    return payload


@auth.admin_post
async def resolve(request: Request) -> Response:
    found = await _tenant_row(request, request.path_params["row"])
    if isinstance(found, Response):
        return found
    runtime, tenant_key, row = found
    if row.status != "review" or (row.review or {}).get("kind") == "ambiguous_match":
        flash(request, toast=f"{row.label} ({row.app_id}) is not waiting for this review any more.")
        return redirect(_page_url(tenant_key, "review"))
    form = await request.form()
    choice = str(form.get("choice") or "")
    picks = {str(k)[len("pick."):]: str(v) for k, v in form.multi_items() if str(k).startswith("pick.")}
    if choice not in ("app", "qbo", "fields"):
        return PlainTextResponse("400 Bad Request: choose app, qbo or fields", 400)
    try:
        payload = resolved_payload(row, choice, picks)
    except ValueError as exc:
        flash(request, banner={"kind": "error", "title": "Nothing was resolved",
                               "text": f"Choose the app's or QuickBooks' value for: {exc}."})
        return redirect(_page_url(tenant_key, f"review-{row.id}"))
    try:
        await run_in_threadpool(runtime.outbox.resolve, row.id, payload)
    except LookupError:
        flash(request, toast=f"{row.label} ({row.app_id}) is not waiting for this review any more.")
        return redirect(_page_url(tenant_key, "review"))
    said = {"app": "the app's values", "qbo": "QuickBooks' values", "fields": "the values you chose"}[choice]
    flash(request, toast=f"{row.label} ({row.app_id}) resolved with {said}: it goes at the next push.")
    log.info("tenant %s: review of outbox row %s resolved (%s) by %s", tenant_key, row.id, choice,
             request.state.user.email)
    return redirect(_page_url(tenant_key, "review"))


@auth.admin_post
async def choose_match(request: Request) -> Response:
    found = await _tenant_row(request, request.path_params["row"])
    if isinstance(found, Response):
        return found
    runtime, tenant_key, row = found
    form = await request.form()
    qbo_id = str(form.get("qbo_id") or "") or None
    if qbo_id is None and form.get("create") != "1":
        return PlainTextResponse("400 Bad Request: link a candidate (qbo_id) or create=1", 400)
    try:
        await run_in_threadpool(runtime.outbox.choose_match, row.id, qbo_id)
    except LookupError:
        flash(request, toast=f"{row.label} ({row.app_id}) is not waiting on a match any more.")
        return redirect(_page_url(tenant_key, "review"))
    except ValueError:
        return PlainTextResponse("400 Bad Request: that QuickBooks record is not one of the candidates", 400)
    what = (f"linked to QuickBooks {row.entity.lower()} {qbo_id}" if qbo_id
            else "will be created as a new QuickBooks record")
    flash(request, toast=f"{row.label} ({row.app_id}) {what} at the next push.")
    return redirect(_page_url(tenant_key, "review"))


@auth.admin_post
async def release(request: Request) -> Response:
    runtime = runtime_of(request)
    tenant_key = request.path_params["tenant"]
    form = await request.form()
    row_id, entity = form.get("row_id"), str(form.get("entity") or "") or None
    if row_id:
        found = await _tenant_row(request, row_id)
        if isinstance(found, Response):
            return found
        _, _, row = found
        changed = await run_in_threadpool(lambda: runtime.outbox.release_held(tenant_key, row_id=row.id))
        what = f"{row.label} ({row.app_id})"
    elif entity:
        if await run_in_threadpool(view_or_none, runtime, tenant_key) is None:
            return not_found()
        changed = await run_in_threadpool(lambda: runtime.outbox.release_held(tenant_key, entity=entity))
        what = f"{changed:,} held {entity.lower()} record{'s' if changed != 1 else ''}"
    else:
        return PlainTextResponse("400 Bad Request: which records?", 400)
    flash(request, toast=f"{what} will be pushed too, at the next push." if changed
          else "Nothing was held any more: nothing released.")
    log.info("tenant %s: %d held rows released by %s", tenant_key, changed, request.state.user.email)
    return redirect(_page_url(tenant_key, "held"))


routes = [
    Route("/integrations/{tenant}/sync", page, methods=["GET"]),
    Route("/integrations/{tenant}/sync/retry", retry, methods=["POST"]),
    Route("/integrations/{tenant}/sync/retry-all", retry_all, methods=["POST"]),
    Route("/integrations/{tenant}/sync/review/{row}", resolve, methods=["POST"]),
    Route("/integrations/{tenant}/sync/match/{row}", choose_match, methods=["POST"]),
    Route("/integrations/{tenant}/sync/release", release, methods=["POST"]),
]
