"""The QuickBooks Online card: what Accounting Integrations and Settings show about one tenant.

A card is a plain dict the templates read, built from the tenant's connection view (never a
token) and the store's figures:

* the seed's connection state and words, the connected user and company;
* the last landing of the company (:mod:`qb_pipelines.store.sync_runs`): when, how many objects
  changed, ok or failed and why;
* "Reconnect before <date>" when the grant's hard expiry (Intuit's five-year cap on a refresh
  token) is within :data:`HARD_EXPIRY_WARNING`;
* this month's metered read calls against the read budget (``QB_READ_BUDGET``), with a warning
  from 80 % (:mod:`qb_pipelines.sync.usage_budget`);
* the push: sync errors, records to review, held records and the last push
  (:func:`push_summary`), linking to the sync-errors dashboard.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from qb_pipelines.store.models import utcnow
from qb_pipelines.store.sync_runs import SyncRunView
from qb_pipelines.sync.companies import company_of
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.sync.usage_budget import DEFAULT_READ_BUDGET, budget_status

#: The card says "Reconnect before <date>" once the grant's hard expiry is this close.
HARD_EXPIRY_WARNING = timedelta(days=30)

STATE_LABELS = {
    "not_connected": "Not connected",
    "disconnected": "Not connected",
    "connected": "Connected",
    "session_expired": "Session expired",
    "connection_error": "Connection error",
}
ENVIRONMENT_LABELS = {"production": "Production", "sandbox": "Sandbox (test)", "emulator": "Emulator (test)"}


def _when(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else ""


def _last_sync(run: SyncRunView | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"when": _when(run.finished_at), "ok": run.ok, "objects": run.objects, "mode": run.mode or "",
            "error": run.error or "", "source": run.source}


def _reconnect_before(view: Any, now: datetime) -> str:
    hard = getattr(view, "refresh_hard_expires_at", None)
    if hard is None or hard - now > HARD_EXPIRY_WARNING:
        return ""
    return hard.strftime("%Y-%m-%d")


def card_of(view: Any, reads: int, *, budget: int = DEFAULT_READ_BUDGET, last_sync: SyncRunView | None = None,
            now: datetime | None = None) -> dict[str, Any]:
    """The card of one tenant's connection view.

    Args:
        view: The tenant's connection view.
        reads: This month's metered reads of its company.
        budget: The monthly read budget per company.
        last_sync: The company's latest recorded landing.
        now: The time the card is built at (the hard-expiry warning is relative to it).
    """
    state = str(getattr(view.state, "value", view.state))
    usage = budget_status(reads, budget)
    parent_key = getattr(view, "parent_key", None)
    return {
        "tenant_key": view.tenant_key,
        "tenant_name": view.tenant_name or view.tenant_key,
        "parent_key": parent_key or "",
        # A company of a tenant (several companies per tenant) is labelled with its company once connected.
        "label": (view.company_name if parent_key and view.company_name else view.tenant_name) or view.tenant_key,
        "state": state,
        "state_label": STATE_LABELS.get(state, state),
        "user_name": getattr(view, "user_name", None) or "",
        "user_email": view.user_email or "",
        "company_name": view.company_name or "",
        "realm_id": view.realm_id or "",
        "environment_label": ENVIRONMENT_LABELS.get(view.environment or "", view.environment or ""),
        "reads_this_month": reads,
        "configured": bool(view.configured),
        "mappings_need_review": bool(getattr(view, "mappings_need_review", False)),
        "last_error": view.last_error or "",
        "last_error_at": _when(view.last_error_at),
        "usage": {"reads": usage.reads, "budget": usage.budget, "percent": usage.percent, "level": usage.level,
                  "message": usage.message},
        "last_sync": _last_sync(last_sync),
        "reconnect_before": _reconnect_before(view, now or utcnow()),
    }


#: Outbox statuses the dashboard lists as sync errors (retried automatically, failed, or waiting on one).
ERROR_STATUSES = ("failed", "retrying", "blocked")


def _plural(n: int, one: str, many: str) -> str:
    return f"{n:,} {one if n == 1 else many}"


def push_summary(runtime: Runtime, tenant_key: str) -> dict[str, Any]:
    """The tenant's push at a glance: sync errors, records to review, held records, the last push.

    Returns:
        ``errors``, ``review``, ``held``, ``pending`` (counts), ``text`` ("3 sync errors · 2 to
        review"), ``last_push`` (when a record last reached QuickBooks, "" before the first) and
        ``any`` (whether the tenant ever sent a record).
    """
    counts = runtime.outbox.counts(tenant_key)
    errors = sum(counts.get(s, 0) for s in ERROR_STATUSES)
    review, held = counts.get("review", 0), counts.get("held", 0)
    parts = [_plural(errors, "sync error", "sync errors")]
    if review:
        parts.append(f"{review:,} to review")
    if held:
        parts.append(f"{held:,} held")
    return {"errors": errors, "review": review, "held": held,
            "pending": counts.get("pending", 0) + counts.get("in_flight", 0),
            "text": " · ".join(parts), "last_push": _when(runtime.outbox.last_synced_at(tenant_key)),
            "any": bool(counts)}


def reads_of(runtime: Runtime, realm_id: str | None) -> int:
    """This month's metered reads of a company (0 before the first connection)."""
    return runtime.usage.reads(realm_id) if realm_id else 0


def build_card(runtime: Runtime, view: Any, budget: int = DEFAULT_READ_BUDGET) -> dict[str, Any]:
    """The card of ``view`` with its figures read from the store (call it in a worker thread)."""
    company = company_of(view)
    last = runtime.sync_runs.latest(company.key) if company is not None else None
    card = card_of(view, reads_of(runtime, view.realm_id), budget=budget, last_sync=last,
                   now=runtime.sync_runs.now())
    card["push"] = push_summary(runtime, view.tenant_key)
    return card


def family_order(views: list[Any]) -> list[Any]:
    """``views`` in the store's order, each tenant's company tenants right after it (in creation order of keys)."""
    views = list(views)
    keys = {v.tenant_key for v in views}
    children: dict[str, list[Any]] = {}
    for v in views:
        parent = getattr(v, "parent_key", None)
        if parent and parent in keys:
            children.setdefault(parent, []).append(v)
    ordered: list[Any] = []
    for v in views:
        parent = getattr(v, "parent_key", None)
        if parent and parent in keys:
            continue
        ordered.append(v)
        ordered.extend(sorted(children.get(v.tenant_key, []), key=_company_number))
    return ordered


def _company_number(view: Any) -> tuple[int, str]:
    suffix = view.tenant_key.rsplit("-", 1)[-1]
    return (int(suffix) if suffix.isdigit() else 1 << 30, view.tenant_key)


def all_cards(runtime: Runtime, budget: int = DEFAULT_READ_BUDGET) -> list[dict[str, Any]]:
    """Every tenant's card, each tenant's other companies right after it (call it in a worker thread)."""
    return [build_card(runtime, v, budget) for v in family_order(runtime.connections.list_views())]
