"""The state of one push run and the bookkeeping of its rows' outcomes.

:class:`RunState` holds what a run knows (the runtime, the company, its client, the outcome of each
record so far, the tenant's defaults and conflict policy, the result being counted) and the only
ways a row's status changes: wait, supersede, block, fail, retry later, review. Within a batch
being recorded the changes are collected and written in one transaction (:meth:`RunState._flush`).

May touch: the outbox and mappings through the runtime, the run's :class:`PushResult`. Sends
nothing to QuickBooks (the client is built here, used by the other rooms).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from typing import Any

from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.errors import AuthenticationError, AuthorizationError, OAuthError, QBOError
from qb_pipelines.store.connection_state import ConnectionUnavailableError
from qb_pipelines.store.models import utcnow
from qb_pipelines.store.outbox import OutboxView
from qb_pipelines.sync.companies import Company
from qb_pipelines.sync.push import conflicts, errors, to_qbo
from qb_pipelines.sync.push.result import PushResult

#: Batch calls a push run keeps in flight at once (QBO allows 10 concurrent requests a company;
#: the company's limiters still hold every call, so this only bounds the run's own threads).
IN_FLIGHT = 4

#: Failures that stop the whole run (the connection itself): rows wait for a reconnect.
STOPPERS = (ConnectionUnavailableError, OAuthError, AuthenticationError, AuthorizationError)


class Stop(Exception):
    """The connection failed mid-run; the rows wait with this reason."""


class RunState:
    """What one run knows, and the only ways its rows change status."""

    def __init__(self, runtime: Any, company: Company, client: QBOClient | None, now: datetime,
                 max_batches: int | None, progress: Callable[[dict[str, Any]], Any] | None) -> None:
        self.rt, self.company, self.now = runtime, company, now
        self.tenant, self.realm = company.tenant_key, company.realm_id
        self._client = client
        self.max_batches = max_batches
        self.progress = progress
        self.result = PushResult(company.key, started_at=now)
        self.outcome: dict[tuple[str, str], tuple[str, str]] = {}  # record -> (status, reason)
        self.defaults: to_qbo.Defaults | None = None
        self.policy = conflicts.MANUAL_REVIEW
        self._collected: list[tuple[int, dict[str, Any]]] | None = None
        self._mapped: list[tuple[str, str, str, dict[str, Any]]] = []
        self._outstanding = 0  # batches sent whose answers are not recorded yet
        self._pool: ThreadPoolExecutor | None = None

    @property
    def client(self) -> QBOClient:
        if self._client is None:
            self._client = self.rt.client_for(self.company)
        return self._client

    def _finish(self) -> PushResult:
        self.result.finished_at = utcnow()
        return self.result

    def _out_of_batches(self) -> bool:
        return self.max_batches is not None and self.result.batches + self._outstanding >= self.max_batches

    def _in_flight_limit(self) -> int:
        """How many batch calls may run at once: :data:`IN_FLIGHT`, never above the company's limiter."""
        limiter = self.client.rate_limiter
        # the process's limiter, or the one a cross-process limiter holds first (store.rate_limits)
        concurrent = getattr(limiter, "concurrent", None) or getattr(getattr(limiter, "local", None), "concurrent", None)
        concurrent = concurrent or IN_FLIGHT
        return max(1, min(IN_FLIGHT, int(concurrent or 1)))

    def _submit(self, bodies: list[dict[str, Any]], requestid: str) -> Future:
        """Start a batch call on the run's threads (the client and its limiters are thread-safe)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix=f"push-{self.realm}")
        return self._pool.submit(self.client.batch, bodies, requestid=requestid)

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def _app_ids(self) -> dict[tuple[str, str], str]:
        """QBO id -> app id of every record this tenant mapped in the company (to read QBO objects back)."""
        if not hasattr(self, "_app_id_cache"):
            self._app_id_cache = self.rt.mappings.app_ids(self.tenant, self.realm)
        return self._app_id_cache

    # -- row bookkeeping -------------------------------------------------------------------

    def _set(self, row_ids: Sequence[int], **values: Any) -> None:
        """Change rows now, or with the rest of the batch being recorded (one transaction per batch)."""
        if self._collected is None:
            self.rt.outbox.update(row_ids, **values)
        else:
            self._collected.extend((row_id, values) for row_id in row_ids)

    def _map(self, entity: str, app_id: str, qbo_id: str, **agreement: Any) -> None:
        """Record a mapping now, or with the rest of the batch being recorded (before its rows' outcomes)."""
        if self._collected is None:
            self.rt.mappings.add(self.tenant, entity, app_id, qbo_id, self.realm, **agreement)
        else:
            self._mapped.append((entity, app_id, qbo_id, agreement))

    def _flush(self) -> None:
        """Write what a batch's answers changed, its mappings and its rows' outcomes, in one transaction.

        A crash before the commit leaves the rows in flight and no mapping of them: the next run
        replays the batch (same requestid), QuickBooks answers as the first time and both are
        written then.
        """
        collected, self._collected = self._collected, None
        mapped, self._mapped = self._mapped, []
        if not (mapped or collected):
            return
        with self.rt.outbox.together():
            if mapped:
                self.rt.mappings.add_many(self.tenant, self.realm, mapped)
            if collected:
                self.rt.outbox.update_each(collected)

    def _wait(self, rows: Sequence[OutboxView], reason: str) -> None:
        """Gated rows stay where they are (pending, blocked, retrying), marked with why."""
        changed = [r.id for r in rows if r.reason != reason and r.status in ("pending", "blocked", "retrying")]
        self._set(changed, reason=reason)
        self.result.waiting += len(rows)

    def _supersede(self, rows: Sequence[OutboxView]) -> None:
        for row in rows:
            self._set([row.id], status="superseded", reason="a newer version came first")

    def _block(self, row: OutboxView, reason: str) -> None:
        self._set([row.id], status="blocked", reason=reason)
        self.outcome[(row.entity, row.app_id)] = ("blocked", reason)
        self.result.blocked += 1

    def _fail(self, row: OutboxView, failure: errors.Classified) -> None:
        self._set([row.id], status="failed", reason=None, error_code=failure.code,
                              error_message=failure.message, next_step=failure.next_step,
                              intuit_tid=failure.intuit_tid, attempts=row.attempts + 1, requestid=None,
                              bid=None, request_body=None)
        self.outcome[(row.entity, row.app_id)] = ("failed", failure.message)
        self.result.failed += 1

    def _retry_later(self, row: OutboxView, failure: errors.Classified) -> None:
        attempts = row.attempts + 1
        if attempts >= errors.MAX_ATTEMPTS:
            self._fail(row, errors.Classified(failure.kind, failure.code, failure.message,
                                              f"gave up after {attempts} attempts: {failure.next_step}; retry it "
                                              "from the dashboard once QuickBooks answers again",
                                              failure.intuit_tid))
            return
        self._set([row.id], status="retrying", attempts=attempts,
                              next_attempt_at=errors.backoff(attempts, self.now), error_code=failure.code,
                              error_message=failure.message, next_step=failure.next_step,
                              intuit_tid=failure.intuit_tid, requestid=None, bid=None, request_body=None)
        self.outcome[(row.entity, row.app_id)] = ("retrying", failure.message)
        self.result.retrying += 1

    def _review(self, row: OutboxView, review: dict[str, Any], reason: str) -> None:
        self._set([row.id], status="review", review=review, reason=reason, requestid=None, bid=None,
                              request_body=None)
        self.outcome[(row.entity, row.app_id)] = ("review", reason)
        self.result.review += 1

    def _handle_error(self, row: OutboxView, exc: QBOError) -> None:
        if isinstance(exc, STOPPERS):
            raise Stop(f"QuickBooks refused the connection: {exc.hint}") from exc
        self._handle_failure(row, errors.classify(exc))

    def _handle_failure(self, row: OutboxView, failure: errors.Classified) -> None:
        if failure.kind == errors.TRANSIENT:
            self._retry_later(row, failure)
        else:
            self._fail(row, failure)
