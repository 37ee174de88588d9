"""Sending batches and recording their answers, exactly once (steps 1, 4 and 5 of :mod:`~qb_pipelines.sync.push.engine`).

Before a batch call its rows are marked ``in_flight`` with the requestid, their bId and the exact
item, in one commit; each answer is then recorded (the mapping and the row's outcome, all rows of
a batch in one transaction); stale objects and taken names go back to
:mod:`~qb_pipelines.sync.push.settle` for one more round. A batch left in flight by a crash is
resumed with its stored requestid, so QuickBooks replays its first answer.

May touch: the QBO client's batch call (the only room that writes to QuickBooks), the outbox,
the mappings and the change feed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

from qb_pipelines.qbo.errors import OutcomeUnknownError, QBOError, ThrottledError
from qb_pipelines.store.feed import NewEntry
from qb_pipelines.store.models import utcnow
from qb_pipelines.store.outbox import OutboxView
from qb_pipelines.sync.push import errors, from_qbo, plan
from qb_pipelines.sync.push.items import Item, kind_of, last_updated, requestid_for
from qb_pipelines.sync.push.run_state import STOPPERS, RunState, Stop

log = logging.getLogger(__name__)


class Sending(RunState):
    """Send items in batches and record what QuickBooks answered (calls :class:`Settling` of the run)."""

    def _send(self, entity: str, items: list[Item], refs: dict, round_: int = 0) -> None:
        """Send ``items`` in batches, up to :data:`IN_FLIGHT` at once; answers are recorded in order.

        Each batch's rows are marked in flight (one commit) before its call starts; a batch whose
        answer was not recorded (the run stopped first) stays in flight and the next run replays it
        with the same requestid.
        """
        flying: deque[tuple[str, list[tuple[str, Item]], list[dict], Future, float]] = deque()
        try:
            for chunk in plan.chunks(items):
                if self._out_of_batches():
                    break
                batch = [(f"b{i}", item) for i, item in enumerate(chunk)]
                # The row's last change is part of it: a row sent again after a definite answer (an admin's
                # retry of a refused create, a retry after a 500) is a new request, never QBO's replay
                # of the old refusal; a batch left in flight is re-sent with its stored requestid.
                requestid = requestid_for(self.realm, round_, [(it.row.id, it.row.version, it.body.get("SyncToken"),
                                                             it.row.updated_at.isoformat()) for _, it in batch])
                bodies = [(bid, it.batch_item(entity, bid)) for bid, it in batch]
                self.rt.outbox.update_each([(it.row.id, {"status": "in_flight", "requestid": requestid, "bid": bid,
                                                         "request_body": body, "realm_id": self.realm})
                                            for (bid, it), (_, body) in zip(batch, bodies, strict=True)])
                plain = [body for _, body in bodies]
                flying.append((requestid, batch, plain, self._submit(plain, requestid), time.monotonic()))
                self._outstanding += 1
                while len(flying) >= self._in_flight_limit():
                    self._answer_next(entity, flying, refs, round_)
            while flying:
                self._answer_next(entity, flying, refs, round_)
        except Stop:
            # the connection failed: the other batches' answers (refused too, or applied) are recorded
            while flying:
                try:
                    self._answer_next(entity, flying, refs, round_)
                except Stop:
                    pass
            raise
        finally:
            # an unexpected error: calls still running end before the run does; their rows stay in
            # flight (replayed by the next run)
            for _requestid, _batch, _bodies, future, _t in flying:
                future.cancel()
                with contextlib.suppress(Exception):
                    future.result()
            self._outstanding -= len(flying)

    def _answer_next(self, entity: str, flying: deque, refs: dict, round_: int) -> None:
        requestid, batch, bodies, future, started = flying.popleft()
        self._outstanding -= 1
        self._call(entity, requestid, batch, bodies, refs, round_, answer=future, started=started)

    def _call(self, entity: str, requestid: str, batch: list[tuple[str, Item]], bodies: list[dict],
              refs: dict, round_: int, only: set[int] | None = None, answer: Future | None = None,
              started: float | None = None) -> None:
        started = time.monotonic() if started is None else started
        mine = [it for _, it in batch if only is None or it.row.id in only]
        try:
            answers = answer.result() if answer is not None else self.client.batch(bodies, requestid=requestid)
        except OutcomeUnknownError as exc:
            # The batch may have been applied: the rows stay in flight and the next run re-sends it
            # with the same requestid; QBO replays the answer if it had applied it.
            log.warning("push %s: batch %s outcome unknown (%s); will resume", self.company.key, requestid, exc)
            self._set([it.row.id for it in mine], attempts=mine[0].row.attempts + 1 if mine else 1,
                      error_message=str(exc), next_step="retried automatically with the same requestid")
            self.result.in_flight += len(mine)
            return
        except (*STOPPERS, ThrottledError) as exc:
            if only is not None:
                # a replay refused: the first sending may have been applied, so the rows stay in
                # flight and the next run replays again
                self.result.in_flight += len(mine)
                if isinstance(exc, ThrottledError):
                    return
                raise Stop(f"QuickBooks refused the connection: {exc.hint}") from exc
            if isinstance(exc, ThrottledError):
                # a 429 is refused before it runs: nothing applied, safe to send anew later
                for it in mine:
                    self._retry_later(it.row, errors.classify(exc))
                return
            # refused before anything ran (401/403 or no token): nothing was applied
            reason = f"QuickBooks refused the connection: {exc.hint}"
            self._set([it.row.id for it in mine], status="pending", requestid=None, bid=None, request_body=None,
                      reason=reason)
            raise Stop(reason) from exc
        self.result.batches += 1
        self.result.batch_seconds.append(time.monotonic() - started)
        stale: list[Item] = []
        duplicates: list[Item] = []
        # A batch's outcomes are recorded in one transaction: a crash leaves all of its rows in
        # flight (the next run replays the batch) or none.
        self._collected = []
        try:
            for (_bid, item), answer in zip(batch, answers, strict=True):
                if only is not None and item.row.id not in only:
                    continue  # a resumed batch: this row was recorded before the crash
                if isinstance(answer, QBOError):
                    failure = errors.classify(answer)
                    if failure.kind == errors.STALE:
                        stale.append(item)
                    elif failure.kind == errors.DUPLICATE_NAME and item.kind == "create":
                        duplicates.append(item)
                    else:
                        self._handle_failure(item.row, failure)
                else:
                    self._record(entity, item, answer.get(entity) or {})
        finally:
            self._flush()
        if self.progress is not None:
            self.progress({"entity": entity, "batch": self.result.batches, "items": len(batch)})
        try:
            followups = self._restale(entity, stale, refs) + self._dedupe(entity, duplicates, refs)
        except QBOError as exc:  # re-reading failed: the rows try again at the next run
            for item in stale + duplicates:
                self._handle_error(item.row, exc)
            followups = []
        if followups and round_ < 2:
            self._send(entity, followups, refs, round_ + 1)
        else:
            for item in followups:
                self._handle_failure(item.row, errors.Classified(errors.TRANSIENT, "5010", "QuickBooks kept changing "
                                                                 "the object while it was being written",
                                                                 "retried automatically"))

    def _record(self, entity: str, item: Item, obj: dict[str, Any]) -> None:
        row = item.row
        if item.kind in ("delete", "void", "inactivate"):
            state = {"delete": "deleted", "void": "voided", "inactivate": "inactive"}[item.kind]
            assert item.mapping is not None
            self._map(entity, row.app_id, item.mapping.qbo_id, state=state,
                      sync_token=str(obj.get("SyncToken") or item.mapping.sync_token or ""), app_version=row.version)
            self._set([row.id], status="synced", reason=f"{state} in QuickBooks", qbo_id=item.mapping.qbo_id,
                                  synced_at=utcnow(), error_code=None, error_message=None, next_step=None)
            setattr(self.result, {"delete": "deleted", "void": "voided", "inactivate": "deleted"}[item.kind],
                    getattr(self.result, {"delete": "deleted", "void": "voided", "inactivate": "deleted"}[item.kind]) + 1)
            self.outcome[(entity, row.app_id)] = ("synced", state)
            return
        qbo_id, token = str(obj.get("Id")), str(obj.get("SyncToken"))
        qbo_values = from_qbo.app_values(entity, obj, self._app_ids())
        self._map(entity, row.app_id, qbo_id, sync_token=token, agreed={"app": item.app, "qbo": qbo_values},
                  app_version=row.version, qbo_updated_at=last_updated(obj), state="active")
        self._set([row.id], status="synced", qbo_id=qbo_id, sync_token=token, synced_at=utcnow(),
                              reason=item.note, error_code=None, error_message=None, next_step=None,
                              attempts=row.attempts)
        self.outcome[(entity, row.app_id)] = ("synced", "")
        if item.note or (row.review or {}).get("resolved_at"):
            # QuickBooks now holds values the app did not send (kept by policy, or an admin's pick)
            self._tell_app(entity, row.app_id, obj)
        if item.kind == "create":
            self.result.created += 1
        else:
            self.result.updated += 1

    def _tell_app(self, entity: str, app_id: str, obj: dict[str, Any]) -> None:
        """Put QuickBooks' values of a record on the change feed: the app must adopt them."""
        data = from_qbo.feed_values(entity, obj, self._app_ids())
        self.rt.feed.append(self.tenant, self.realm, [NewEntry(entity, "upsert", str(obj.get("Id")), data, app_id,
                                                               str(obj.get("SyncToken")), last_updated(obj))])
        self.result.told_app += 1

    def _resume(self, rows: Sequence[OutboxView]) -> None:
        """Re-send batches left in flight, exactly as first sent (QBO replays the first answer).

        The whole batch goes again, rows recorded before the crash included (QBO checks the
        requestid against the batch it first saw); only the rows still in flight are recorded.
        """
        groups: dict[str, list[OutboxView]] = {}
        for row in rows:
            groups.setdefault(row.requestid or "", []).append(row)
        for requestid, flying in groups.items():
            if not requestid or any(r.request_body is None for r in flying):
                self._set([r.id for r in flying], status="pending", requestid=None)  # nothing to replay
                continue
            group = self.rt.outbox.by_requestid(requestid)
            group.sort(key=lambda r: int((r.bid or "b0")[1:]) if (r.bid or "b0")[1:].isdigit() else 0)
            entity = group[0].entity
            mappings = self.rt.mappings.by_app_ids(self.tenant, self.realm, entity, [r.app_id for r in group])
            batch = []
            for row in group:
                body = dict(row.request_body or {})
                batch.append((row.bid or "b0", Item(row, kind_of(body), body.get(entity) or {}, row.payload,
                                                     mappings.get(row.app_id))))
            self.result.resumed += len(flying)
            self._call(entity, requestid, batch, [dict(r.request_body or {}) for r in group], {}, 0,
                       only={r.id for r in flying})
