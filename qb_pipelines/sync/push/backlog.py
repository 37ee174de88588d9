"""What waits in a company's outbox, and why: the view the push job, the outbox sensor and checks read.

Plain Python over the store (no Dagster), in three shapes:

* :func:`due_companies` -- which companies a push run would move now, and for the others why
  not (the company is not connected, its Setup Wizard is not done, every waiting entity is
  switched off...), so the sensor requests runs that do something and says why it skips;
* :func:`preview` -- before a run: what it will resume, send per entity and operation, and what
  stays back behind a gate;
* :func:`backlog` -- after a run: rows per status, the oldest waiting row's age, why rows wait,
  and the failures waiting for someone (code, message, next step), for the run's metadata and
  the outbox checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from qb_pipelines.qbo import registry
from qb_pipelines.store.models import utcnow
from qb_pipelines.store.outbox import WAITING, OutboxView
from qb_pipelines.sync.companies import Company, UnknownCompanyError, split_company_key
from qb_pipelines.sync.push import plan
from qb_pipelines.sync.push.result import PushResult

__all__ = ["RESUME_AFTER", "Backlog", "DueCompany", "PushPreview", "backlog", "due_companies", "preview",
           "run_metadata"]

#: A batch left in flight (its answer lost) is resumed by the next run, but not before this pause,
#: so that a QuickBooks that stopped answering is not re-asked in a tight loop of runs.
RESUME_AFTER = timedelta(seconds=30)


@dataclass(frozen=True)
class DueCompany:
    """A tenant's company with outbox rows a push could act on now.

    Attributes:
        tenant_key: whose rows.
        company_key: the tenant's current company (``None`` when it never connected one).
        rows: rows due (pending, retries come due, batches to resume).
        max_id: the highest of their row ids.
        last_change: the latest change among them.
        entities: rows per entity.
        in_flight: rows to resume.
        waiting: why a run would send nothing now (``None`` when it would).
    """

    tenant_key: str
    company_key: str | None
    rows: int
    max_id: int
    last_change: datetime | None
    entities: dict[str, int]
    in_flight: int
    waiting: str | None = None


def _company_gate(runtime: Any, company: Company) -> tuple[str | None, Any]:
    stored = runtime.tenant_settings.get(company.tenant_key)
    return plan.company_gate(company, stored.configured, stored.mappings_need_review), stored.values


def due_companies(runtime: Any, now: datetime | None = None, *, tenant_key: str | None = None) -> list[DueCompany]:
    """Every company whose outbox has rows a push could act on now, each with why it would not run.

    ``tenant_key`` limits the answer to that tenant (one indexed query: a push run following its
    outbox asks several times a second).

    A company is ``waiting`` (a run would send nothing) when its tenant never connected one, when
    a company gate holds (:func:`qb_pipelines.sync.push.plan.company_gate`), or when every entity
    with due rows is switched off or flows from QuickBooks only and no batch waits to be resumed.
    """
    now = now or utcnow()
    out: list[DueCompany] = []
    for work in runtime.outbox.due_work(now, resume_after=RESUME_AFTER, tenant_key=tenant_key):
        base = {"tenant_key": work.tenant_key, "rows": work.rows, "max_id": work.max_id,
                "last_change": work.last_change, "entities": dict(work.entities), "in_flight": work.in_flight}
        try:
            company = runtime.resolve(work.tenant_key)
        except UnknownCompanyError:
            out.append(DueCompany(company_key=None, waiting="QuickBooks was never connected", **base))
            continue
        gate, values = _company_gate(runtime, company)
        if gate is None and not work.in_flight:
            gates = {e: plan.entity_gate(values, e) for e in work.entities}
            if all(gates.values()):
                gate = "; ".join(sorted({g for g in gates.values() if g}))
        out.append(DueCompany(company_key=company.key, waiting=gate, **base))
    return out


@dataclass(frozen=True)
class PushPreview:
    """What a push run of one company is about to do (before it sends anything).

    Attributes:
        company_key: the company.
        tenant_key: its tenant.
        gate: why nothing at all may be sent now, or ``None``.
        resume: rows of batches left in flight, re-sent first with their requestid.
        send: entity -> operation -> rows the run may send (latest versions, dependencies resolved in the run).
        entity_gates: entity -> why its rows wait (switched off, QuickBooks to the app only).
        counts: the tenant's rows per status.
    """

    company_key: str
    tenant_key: str
    gate: str | None
    resume: int
    send: dict[str, dict[str, int]]
    entity_gates: dict[str, str]
    counts: dict[str, int]

    @property
    def rows(self) -> int:
        """Rows the run may act on (to send and to resume)."""
        return self.resume + sum(sum(ops.values()) for ops in self.send.values())

    def lines(self) -> list[str]:
        """The preview in sentences, for the run's log."""
        if self.gate:
            return [f"nothing will be sent: {self.gate} ({self.rows} rows wait)"]
        lines = []
        if self.resume:
            lines.append(f"resume {self.resume} rows of batches left in flight (same requestid: QuickBooks replays)")
        for entity, ops in self.send.items():
            parts = ", ".join(f"{n} {op}" for op, n in sorted(ops.items()))
            if entity in self.entity_gates:
                lines.append(f"{entity}: {parts} wait: {self.entity_gates[entity]}")
            else:
                lines.append(f"{entity}: {parts} to send")
        if self.counts.get("held"):
            lines.append(f"{self.counts['held']} held rows (created before QuickBooks was connected) wait for an "
                         "admin to choose 'push these too'")
        return lines or ["nothing to send"]


def preview(runtime: Any, company_key: str, now: datetime | None = None) -> PushPreview:
    """What a push of ``company_key`` would do now, in the registry's push order.

    Raises:
        UnknownCompanyError: the key names no company.
    """
    now = now or utcnow()
    company = runtime.resolve(company_key)
    gate, values = _company_gate(runtime, company)
    rows = runtime.outbox.work(company.tenant_key, now)
    latest, _older = plan.latest_per_record(r for r in rows if r.status != "in_flight")
    order = {e.name: i for i, e in enumerate(registry.push_order())}
    send: dict[str, dict[str, int]] = {}
    for row in sorted(latest, key=lambda r: (order.get(r.entity, len(order)), r.id)):
        ops = send.setdefault(row.entity, {})
        ops[row.op] = ops.get(row.op, 0) + 1
    entity_gates = {e: g for e in send if (g := plan.entity_gate(values, e))}
    return PushPreview(company_key=company.key, tenant_key=company.tenant_key, gate=gate,
                       resume=sum(1 for r in rows if r.status == "in_flight"), send=send, entity_gates=entity_gates,
                       counts=runtime.outbox.counts(company.tenant_key))


@dataclass(frozen=True)
class Backlog:
    """A company's outbox as it stands: what waits, for how long, and what failed.

    Attributes:
        company_key: the company.
        tenant_key: its tenant.
        counts: rows per status.
        oldest_waiting_s: age of the oldest row still on its way (pending, in flight, retrying,
            blocked), ``None`` when none is.
        oldest_waiting: that row's label and why it waits.
        reasons: rows grouped by (status, entity, reason), most first, for everything not synced.
        failures: the first failed rows: entity, app id, label, code, message, next step, attempts.
    """

    company_key: str
    tenant_key: str
    counts: dict[str, int]
    oldest_waiting_s: float | None
    oldest_waiting: str | None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def waiting(self) -> int:
        """Rows still on their way to QuickBooks (pending, in flight, retrying, blocked)."""
        return sum(self.counts.get(s, 0) for s in WAITING)

    @property
    def failed(self) -> int:
        return self.counts.get("failed", 0)

    @property
    def held(self) -> int:
        return self.counts.get("held", 0)

    @property
    def review(self) -> int:
        return self.counts.get("review", 0)


def _failure(row: OutboxView) -> dict[str, Any]:
    return {"id": row.id, "entity": row.entity, "app_id": row.app_id, "label": row.label, "code": row.error_code,
            "message": row.error_message, "next_step": row.next_step, "attempts": row.attempts,
            "failed_at": row.updated_at.isoformat()}


def backlog(runtime: Any, company_key: str, now: datetime | None = None, *, failures: int = 5) -> Backlog:
    """The outbox of ``company_key``'s tenant now (the outbox is per tenant: it pushes to its current company).

    Args:
        runtime: the integration's runtime.
        company_key: ``<tenant>-<realmId>`` (or a bare tenant key).
        now: the time ages are measured at.
        failures: how many failed rows to describe.
    """
    now = now or utcnow()
    tenant = company_key if runtime.connections.get(company_key) is not None else split_company_key(company_key)[0]
    outbox = runtime.outbox
    oldest = outbox.oldest(tenant, WAITING)
    open_statuses = (*WAITING, "failed", "review", "held", "dropped")
    return Backlog(
        company_key=company_key, tenant_key=tenant, counts=outbox.counts(tenant),
        oldest_waiting_s=round((now - oldest.created_at).total_seconds(), 1) if oldest else None,
        oldest_waiting=f"{oldest.label} ({oldest.status}{': ' + oldest.reason if oldest.reason else ''})"
        if oldest else None,
        reasons=outbox.reasons(tenant, open_statuses),
        failures=[_failure(r) for r in outbox.rows(tenant, ("failed",), limit=failures)],
    )


def run_metadata(result: PushResult | None, after: Backlog) -> dict[str, Any]:
    """The figures of a push run and of the outbox after it, as plain values (Dagster metadata).

    ``created``... ``throttled`` are this run's; ``held``, ``backlog``, ``failed_waiting``,
    ``review_waiting`` and ``oldest_pending_age_s`` describe the outbox after it.
    """
    meta: dict[str, Any] = {"company": after.company_key}
    if result is not None:
        meta.update({k: v for k, v in result.as_dict().items() if k not in ("company", "gate")})
        meta["gate"] = result.gate or ""
    meta.update(held=after.held, backlog=after.waiting, failed_waiting=after.failed, review_waiting=after.review,
                oldest_pending_age_s=after.oldest_waiting_s if after.oldest_waiting_s is not None else 0.0,
                oldest_pending=after.oldest_waiting or "", statuses=dict(sorted(after.counts.items())),
                waiting_reasons=[r for r in after.reasons if r["status"] in WAITING and r["reason"]][:20])
    return meta
