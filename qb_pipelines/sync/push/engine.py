"""One push run of one company: the app's outbox to QuickBooks, exactly once, dependencies first.

The steps (each explained where it is done):

1. **resume** batches a crashed or interrupted run left ``in_flight``: the same items with the
   same requestid, so QuickBooks replays its first answer and nothing posts twice;
2. **gate** (company not connected, wizard not done, entity off...): rows wait, marked why;
3. per entity in the registry's push order, per wave (parents before sub-customers):
   **resolve** references through the mappings, **block** rows whose dependency failed or was
   never sent, **match** unmapped records before creating them, **decide** what an update sends
   (the fields the app changed since the last agreement);
4. **send** batches of at most 30 items; before each call its rows are marked ``in_flight`` with
   the requestid, their bId and the exact item, in one commit;
5. **record** each answer: the mapping (QBO id, SyncToken, the values both sides now agree on)
   and the row's outcome; a stale object (5010) is re-read and put to the conflict policy; a
   duplicate name is linked; a transient failure is retried later with backoff.

The rooms of a run: :mod:`~qb_pipelines.sync.push.run_state` (state and row outcomes),
:mod:`~qb_pipelines.sync.push.waves` (step 3), :mod:`~qb_pipelines.sync.push.settle` (matching and
conflicts), :mod:`~qb_pipelines.sync.push.send` (steps 1, 4, 5), :mod:`~qb_pipelines.sync.push.items`
(batch items and requestids). This module holds the run loop and :func:`push`, and may touch
only what the rooms do: the runtime's outbox, mappings and tenant settings, and the company lock.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.store.locks import CompanyLocks
from qb_pipelines.store.models import utcnow
from qb_pipelines.sync.companies import Company
from qb_pipelines.sync.push import plan, to_qbo
from qb_pipelines.sync.push.result import PushResult
from qb_pipelines.sync.push.run_state import Stop
from qb_pipelines.sync.push.send import Sending
from qb_pipelines.sync.push.settle import Settling
from qb_pipelines.sync.push.waves import Waves

__all__ = ["push"]


class _Run(Waves, Settling, Sending):
    """One push run of one company: the rooms put together (see the module doc)."""

    def execute(self) -> PushResult:
        rows = self.rt.outbox.work(self.tenant, self.now)
        stored = self.rt.tenant_settings.get(self.tenant)
        gate = plan.company_gate(self.company, stored.configured, stored.mappings_need_review)
        if gate:
            self._wait([r for r in rows if r.status != "in_flight"], gate)
            self.result.gate = gate
            return self._finish()
        settings = stored.values
        self.policy = settings.conflict_policy
        calls_before = self.client.stats.api_calls
        throttled_before = self.client.stats.throttled
        try:
            in_flight = [r for r in rows if r.status == "in_flight"]
            if in_flight:
                self._resume(in_flight)
            latest, older = plan.latest_per_record(r for r in rows if r.status != "in_flight")
            busy = {(r.entity, r.app_id) for r in in_flight} & set(self.rt.outbox.in_flight_record_versions(self.tenant))
            self._supersede(older)
            latest = [r for r in latest if (r.entity, r.app_id) not in busy]
            self.defaults = self._defaults(settings)
            for ent in registry.push_order():
                mine = [r for r in latest if r.entity == ent.name]
                if not mine:
                    continue
                gate = plan.entity_gate(settings, ent.name)
                if gate:
                    self._wait(mine, gate)
                    continue
                for wave in plan.levels(mine):
                    self._entity(ent.name, wave)
                    if self._out_of_batches():
                        break
        except Stop as stop:
            self.result.gate = str(stop)
        finally:
            self._close_pool()
            self.result.api_calls = self.client.stats.api_calls - calls_before if self._client else 0
            self.result.throttled = (self.client.stats.throttled - throttled_before) if self._client else 0
        return self._finish()

    def _defaults(self, settings: Any) -> to_qbo.Defaults:
        """The tenant's defaults; the company's inventory accounts are read only if an inventory item needs them."""
        return to_qbo.Defaults(income_account_id=settings.default_income_account_id,
                               tax_code_id=settings.default_tax_code_id,
                               today=self.now.date().isoformat())


def push(runtime: Any, company: Company | str, *, now: datetime | None = None, client: QBOClient | None = None,
         max_batches: int | None = None, progress: Callable[[dict[str, Any]], Any] | None = None,
         lock_wait_s: float = 60.0, run_id: str | None = None) -> PushResult:
    """Push a company's outbox to QuickBooks (see the module doc); the mirror of :func:`sync.ingest.land`.

    Args:
        runtime: the integration's :class:`~qb_pipelines.sync.runtime.Runtime`.
        company: the company or its key (``<tenant>-<realmId>``).
        now: the run's time (tests); the wall clock by default.
        client: the company's QBO client (built by the runtime by default).
        max_batches: stop after this many batch calls (the rest waits for the next run).
        progress: called after each batch with ``{"entity", "batch", "items"}``.
        lock_wait_s: how long to wait while another push of the company runs (one push per
            company at a time, whoever started it; a landing may run alongside).
        run_id: shown to a push that waits for this one (the Dagster run id).

    Returns:
        What happened, per outcome, with API calls and batches.

    Raises:
        UnknownCompanyError: the key names no company.
        CompanyBusyError: another push of the company kept running for ``lock_wait_s`` seconds.
    """
    company = runtime.resolve(company) if isinstance(company, str) else company
    with CompanyLocks(runtime.engine).hold(company.key, "push", run_id=run_id, wait_s=lock_wait_s):
        return _Run(runtime, company, client, now or utcnow(), max_batches, progress).execute()
