"""The QuickBooks Online card: what Accounting Integrations and Settings show about one tenant.

A card is a plain dict the templates read, built from the tenant's connection view (never a
token) and the store's figures: the seed's connection state and words, the connected user and
company, and this month's metered read calls.
"""

from __future__ import annotations

from typing import Any

from qb_pipelines.sync.runtime import Runtime

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


def card_of(view: Any, reads: int) -> dict[str, Any]:
    """The card of one tenant's connection view."""
    state = str(getattr(view.state, "value", view.state))
    return {
        "tenant_key": view.tenant_key,
        "tenant_name": view.tenant_name or view.tenant_key,
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
    }


def reads_of(runtime: Runtime, realm_id: str | None) -> int:
    """This month's metered reads of a company (0 before the first connection)."""
    return runtime.usage.reads(realm_id) if realm_id else 0


def build_card(runtime: Runtime, view: Any) -> dict[str, Any]:
    """The card of ``view`` with its figures read from the store (call it in a worker thread)."""
    return card_of(view, reads_of(runtime, view.realm_id))


def all_cards(runtime: Runtime) -> list[dict[str, Any]]:
    """Every tenant's card, in the store's order (call it in a worker thread)."""
    return [build_card(runtime, v) for v in runtime.connections.list_views()]
