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
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.errors import (
    AuthenticationError,
    AuthorizationError,
    OAuthError,
    OutcomeUnknownError,
    QBOError,
    ThrottledError,
)
from qb_pipelines.store.connection_state import ConnectionUnavailableError
from qb_pipelines.store.feed import NewEntry
from qb_pipelines.store.locks import CompanyLocks
from qb_pipelines.store.mappings import MappingView
from qb_pipelines.store.models import utcnow
from qb_pipelines.store.outbox import OutboxView
from qb_pipelines.sync.companies import Company
from qb_pipelines.sync.push import conflicts, errors, from_qbo, match, plan, to_qbo
from qb_pipelines.sync.push.contract import schema
from qb_pipelines.sync.push.result import PushResult

log = logging.getLogger(__name__)

__all__ = ["push"]

#: Failures that stop the whole run (the connection itself): rows wait for a reconnect.
_STOPPERS = (ConnectionUnavailableError, OAuthError, AuthenticationError, AuthorizationError)


@dataclass
class _Item:
    """One row's write in a batch."""

    row: OutboxView
    kind: str  # create | update | delete | void | inactivate
    body: dict[str, Any]
    app: dict[str, Any]  # the app values the write makes true
    mapping: MappingView | None = None
    sent_fields: set[str] = field(default_factory=set)
    note: str | None = None  # e.g. "QuickBooks' values kept for: email"

    def batch_item(self, entity: str, bid: str) -> dict[str, Any]:
        if self.kind == "create":
            return {"bId": bid, "operation": "create", entity: self.body}
        if self.kind == "delete":
            return {"bId": bid, "operation": "delete", entity: self.body}
        if self.kind == "void":
            return {"bId": bid, "operation": "update", "optionsData": "void", entity: self.body}
        return {"bId": bid, "operation": "update", entity: self.body}


class _Stop(Exception):
    """The connection failed mid-run; the rows wait with this reason."""


class _Run:
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

    @property
    def client(self) -> QBOClient:
        if self._client is None:
            self._client = self.rt.client_for(self.company)
        return self._client

    # -- the run ---------------------------------------------------------------------------

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
        except _Stop as stop:
            self.result.gate = str(stop)
        finally:
            self.result.api_calls = self.client.stats.api_calls - calls_before if self._client else 0
            self.result.throttled = (self.client.stats.throttled - throttled_before) if self._client else 0
        return self._finish()

    def _finish(self) -> PushResult:
        self.result.finished_at = utcnow()
        return self.result

    def _out_of_batches(self) -> bool:
        return self.max_batches is not None and self.result.batches >= self.max_batches

    def _defaults(self, settings: Any) -> to_qbo.Defaults:
        """The tenant's defaults; the company's inventory accounts are read only if an inventory item needs them."""
        return to_qbo.Defaults(income_account_id=settings.default_income_account_id,
                               tax_code_id=settings.default_tax_code_id,
                               today=self.now.date().isoformat())

    def _inventory_accounts(self) -> to_qbo.Defaults:
        assert self.defaults is not None
        if self.defaults.asset_account_id is None:
            accounts = list(self.client.query_all("Account", where="AccountType IN ('Other Current Asset', "
                                                                    "'Cost of Goods Sold')"))
            asset = next((a["Id"] for a in accounts if a.get("AccountSubType") == "Inventory"), None)
            cogs = next((a["Id"] for a in accounts if a.get("AccountType") == "Cost of Goods Sold"), None)
            self.defaults = to_qbo.Defaults(**{**self.defaults.__dict__, "asset_account_id": asset,
                                               "expense_account_id": cogs})
        return self.defaults

    # -- row bookkeeping -------------------------------------------------------------------

    def _set(self, row_ids: Sequence[int], **values: Any) -> None:
        """Change rows now, or with the rest of the batch being recorded (one transaction per batch)."""
        if self._collected is None:
            self.rt.outbox.update(row_ids, **values)
        else:
            self._collected.extend((row_id, values) for row_id in row_ids)

    def _flush(self) -> None:
        collected, self._collected = self._collected, None
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

    # -- one entity, one wave ----------------------------------------------------------------

    def _entity(self, entity: str, rows: Sequence[OutboxView]) -> None:
        refs = self._refs(entity, rows)
        mappings = self.rt.mappings.by_app_ids(self.tenant, self.realm, entity, [r.app_id for r in rows])
        items: list[_Item] = []
        to_match: dict[int, OutboxView] = {}
        for row in rows:
            missing = self._missing_dependency(entity, row, refs)
            if missing:
                self._block(row, missing)
                continue
            mapping = mappings.get(row.app_id)
            if row.link_qbo_id:
                self._link(row)
                continue
            if row.op in ("delete", "void"):
                item = self._removal(entity, row, mapping)
            elif mapping is None:
                to_match[row.id] = row
                continue
            else:
                item = self._update(entity, row, mapping, refs)
            if item is not None:
                items.append(item)
        if to_match:
            try:
                items.extend(self._match_or_create(entity, to_match, refs))
            except QBOError as exc:  # the lookups failed: these rows wait for the next run
                for row in to_match.values():
                    self._handle_error(row, exc)
        self._send(entity, items, refs)

    def _refs(self, entity: str, rows: Sequence[OutboxView]) -> dict[tuple[str, str], str]:
        wanted: dict[str, set[str]] = {}
        for row in rows:
            if row.op == "upsert":
                for target, app_id in plan.references(entity, row.payload):
                    wanted.setdefault(target, set()).add(app_id)
        refs: dict[tuple[str, str], str] = {}
        for target, app_ids in wanted.items():
            for app_id, m in self.rt.mappings.by_app_ids(self.tenant, self.realm, target, app_ids).items():
                refs[(target, app_id)] = m.qbo_id
        return refs

    def _missing_dependency(self, entity: str, row: OutboxView, refs: dict[tuple[str, str], str]) -> str | None:
        if row.op != "upsert" or row.link_qbo_id:
            return None
        for target, app_id in plan.references(entity, row.payload):
            if (target, app_id) in refs:
                continue
            status, why = self.outcome.get((target, app_id), (None, None))
            name = target.lower()
            if status == "failed":
                return f"{name} {app_id} failed: {why}"
            if status in ("blocked", "review", "retrying"):
                return f"waiting for {name} {app_id} ({status}: {why})"
            held = self.rt.outbox.record(self.tenant, target, app_id)
            if held is not None and held.status == "held":
                return f"waiting for {name} {app_id}, which is held (created before QuickBooks was connected)"
            if held is not None and held.status in ("pending", "retrying", "blocked", "in_flight", "failed", "review"):
                return f"waiting for {name} {app_id} ({held.status})"
            return f"waiting for {name} {app_id}: the app has not sent it yet"
        return None

    def _link(self, row: OutboxView) -> None:
        """The app linked its record to an existing QBO object: record the mapping, push nothing."""
        try:
            obj = self.client.read(row.entity, row.link_qbo_id or "")
        except QBOError as exc:
            self._handle_error(row, exc)
            return
        qbo_values = from_qbo.app_values(row.entity, obj, self._app_ids())
        self.rt.mappings.add(self.tenant, row.entity, row.app_id, str(obj["Id"]), self.realm,
                             sync_token=str(obj.get("SyncToken")), app_version=row.version,
                             agreed={"app": row.payload or qbo_values, "qbo": qbo_values},
                             qbo_updated_at=_lut(obj), state="active")
        self._set([row.id], status="synced", qbo_id=str(obj["Id"]), sync_token=str(obj.get("SyncToken")),
                              realm_id=self.realm, synced_at=utcnow(), reason="linked to the existing QuickBooks record")
        self.outcome[(row.entity, row.app_id)] = ("synced", "")
        self.result.linked += 1

    def _removal(self, entity: str, row: OutboxView, mapping: MappingView | None) -> _Item | None:
        if mapping is None or mapping.state != "active":
            note = "nothing in QuickBooks to remove" if mapping is None else f"already {mapping.state} in QuickBooks"
            self._set([row.id], status="synced", reason=note, realm_id=self.realm, synced_at=utcnow())
            self.outcome[(entity, row.app_id)] = ("synced", note)
            return None
        ent = registry.get(entity)
        body: dict[str, Any] = {"Id": mapping.qbo_id, "SyncToken": mapping.sync_token or "0"}
        if row.op == "void":
            return _Item(row, "void", body, {}, mapping)
        if ent.deletable:
            return _Item(row, "delete", body, {}, mapping)
        return _Item(row, "inactivate", {**body, "sparse": True, "Active": False}, {}, mapping)

    def _update(self, entity: str, row: OutboxView, mapping: MappingView, refs: dict) -> _Item | None:
        """A mapped record changed in the app: send the fields it changed since the agreement."""
        agreed = mapping.agreed or {}
        resolution = (row.review or {}).get("resolution")
        base_app = (resolution or {}).get("qbo") if resolution else agreed.get("app")
        token = (resolution or {}).get("sync_token") or mapping.sync_token
        changed = {f for f in _fields(entity)
                   if from_qbo.comparable(row.payload.get(f)) != from_qbo.comparable((base_app or {}).get(f))}
        if not changed and resolution:
            # the admin kept QuickBooks' values: nothing to write, but the agreement moves on and
            # the app must hear the values it now has to adopt
            try:
                obj = self.client.read(entity, mapping.qbo_id)
            except QBOError as exc:
                self._handle_error(row, exc)
                return None
            qbo_now = from_qbo.app_values(entity, obj, self._app_ids())
            return self._settle(entity, row, mapping, {"app": base_app, "qbo": base_app}, qbo_now, obj, refs)
        if not changed:
            self._synced_noop(row, mapping, "no change to send")
            return None
        try:
            full = to_qbo.body_for(entity, row.payload, refs, self._entity_defaults(entity, row.payload))
        except to_qbo.MissingReference as exc:
            self._block(row, f"waiting for {exc.entity.lower()} {exc.app_id}")
            return None
        body = {"Id": mapping.qbo_id, "SyncToken": token or "0", "sparse": True,
                **to_qbo.sparse_keys(entity, changed, full)}
        return _Item(row, "update", body, row.payload, mapping, sent_fields=changed)

    def _entity_defaults(self, entity: str, data: dict[str, Any]) -> to_qbo.Defaults:
        assert self.defaults is not None
        if entity == "Item" and data.get("type") == "inventory":
            return self._inventory_accounts()
        return self.defaults

    def _synced_noop(self, row: OutboxView, mapping: MappingView, note: str) -> None:
        self._set([row.id], status="synced", reason=note, qbo_id=mapping.qbo_id,
                              sync_token=mapping.sync_token, realm_id=self.realm, synced_at=utcnow())
        self.rt.mappings.add(self.tenant, row.entity, row.app_id, mapping.qbo_id, self.realm, app_version=row.version)
        self.outcome[(row.entity, row.app_id)] = ("synced", note)
        self.result.unchanged += 1

    # -- match before create ---------------------------------------------------------------

    def _match_or_create(self, entity: str, rows: dict[int, OutboxView], refs: dict) -> list[_Item]:
        party_ids = None
        if registry.get(entity).is_transaction:
            party_field = "vendor_app_id" if entity == "Bill" else "customer_app_id"
            party = "Vendor" if entity == "Bill" else "Customer"
            party_ids = {rid: refs.get((party, str(r.payload.get(party_field)))) for rid, r in rows.items()}
        # an admin settled an ambiguous match with "create new": no lookup for those
        lookups = {rid: r.payload for rid, r in rows.items() if not ((r.review or {}).get("choice") or {}).get("create")}
        found = match.find(self.client, entity, lookups, party_ids) if lookups else {}
        items = []
        for rid, row in rows.items():
            candidates = found.get(rid) or []
            if len(candidates) > 1:
                self._review(row, {"kind": "ambiguous_match", "candidates": [_candidate(entity, c) for c in candidates]},
                             f"ambiguous match: {len(candidates)} QuickBooks {entity.lower()}s fit; pick one")
                continue
            if len(candidates) == 1:
                item = self._adopt(entity, row, candidates[0], refs)
                if item is not None:
                    items.append(item)
                continue
            try:
                body = to_qbo.body_for(entity, row.payload, refs, self._entity_defaults(entity, row.payload))
            except to_qbo.MissingReference as exc:
                self._block(row, f"waiting for {exc.entity.lower()} {exc.app_id}")
                continue
            items.append(_Item(row, "create", body, row.payload))
        return items

    def _adopt(self, entity: str, row: OutboxView, obj: dict, refs: dict) -> _Item | None:
        """Link a record to the one QBO object that matched, then let the policy settle the fields."""
        self.result.matched += 1
        qbo_values = from_qbo.app_values(entity, obj, self._app_ids())
        mapping = self.rt.mappings.add(self.tenant, entity, row.app_id, str(obj["Id"]), self.realm,
                                       sync_token=str(obj.get("SyncToken")), agreed=None,
                                       qbo_updated_at=_lut(obj), state="active")
        return self._settle(entity, row, mapping, None, qbo_values, obj, refs)

    def _settle(self, entity: str, row: OutboxView, mapping: MappingView, agreed: dict | None,
                qbo_values: dict[str, Any], obj: dict, refs: dict) -> _Item | None:
        """The three-way decision on a record QBO also changed (or that was just linked)."""
        decision = conflicts.decide(_fields(entity), agreed, row.payload, qbo_values, self.policy)
        token = str(obj.get("SyncToken"))
        if decision.review:
            review = decision.review_payload()
            review["resolution_base"] = {"sync_token": token, "qbo": qbo_values}
            fields = ", ".join(sorted(decision.conflicts))
            self._review(row, review, f"changed in both the app and QuickBooks ({fields}): choose which values to keep")
            return None
        note = f"QuickBooks' values kept for: {', '.join(sorted(decision.kept_qbo))}" if decision.kept_qbo else None
        if not decision.send:
            merged = {**row.payload, **{f: qbo_values.get(f) for f in decision.kept_qbo}}
            self.rt.mappings.add(self.tenant, entity, row.app_id, mapping.qbo_id, self.realm, sync_token=token,
                                 agreed={"app": row.payload, "qbo": qbo_values}, app_version=row.version,
                                 qbo_updated_at=_lut(obj))
            status = "dropped" if decision.dropped else "synced"
            reason = (f"QuickBooks wins: the app's change was dropped ({note})" if decision.dropped
                      else "already the same in QuickBooks")
            self._set([row.id], status=status, reason=reason, qbo_id=mapping.qbo_id, sync_token=token,
                                  realm_id=self.realm, synced_at=utcnow(), payload=merged if decision.dropped else row.payload)
            self.outcome[(entity, row.app_id)] = ("synced", reason)
            if decision.dropped or (row.review or {}).get("resolved_at"):
                self._tell_app(entity, row.app_id, obj)
            if decision.dropped:
                self.result.dropped += 1
            else:
                self.result.unchanged += 1
            return None
        try:
            full = to_qbo.body_for(entity, row.payload, refs, self._entity_defaults(entity, row.payload))
        except to_qbo.MissingReference as exc:
            self._block(row, f"waiting for {exc.entity.lower()} {exc.app_id}")
            return None
        body = {"Id": mapping.qbo_id, "SyncToken": token, "sparse": True,
                **to_qbo.sparse_keys(entity, decision.send, full)}
        app_after = {**row.payload, **{f: qbo_values.get(f) for f in decision.kept_qbo}}
        return _Item(row, "update", body, app_after, mapping, sent_fields=decision.send, note=note)

    # -- sending and recording ---------------------------------------------------------------

    def _send(self, entity: str, items: list[_Item], refs: dict, round_: int = 0) -> None:
        for chunk in plan.chunks(items):
            if self._out_of_batches():
                return
            batch = [(f"b{i}", item) for i, item in enumerate(chunk)]
            # The row's last change is part of it: a row sent again after a definite answer (an admin's
            # retry of a refused create, a retry after a 500) is a new request, never QBO's replay
            # of the old refusal; a batch left in flight is re-sent with its stored requestid.
            requestid = _requestid(self.realm, round_, [(it.row.id, it.row.version, it.body.get("SyncToken"),
                                                         it.row.updated_at.isoformat()) for _, it in batch])
            bodies = [(bid, it.batch_item(entity, bid)) for bid, it in batch]
            self.rt.outbox.update_each([(it.row.id, {"status": "in_flight", "requestid": requestid, "bid": bid,
                                                     "request_body": body, "realm_id": self.realm})
                                        for (bid, it), (_, body) in zip(batch, bodies, strict=True)])
            self._call(entity, requestid, batch, [body for _, body in bodies], refs, round_)

    def _call(self, entity: str, requestid: str, batch: list[tuple[str, _Item]], bodies: list[dict],
              refs: dict, round_: int, only: set[int] | None = None) -> None:
        started = time.monotonic()
        mine = [it for _, it in batch if only is None or it.row.id in only]
        try:
            answers = self.client.batch(bodies, requestid=requestid)
        except OutcomeUnknownError as exc:
            # The batch may have been applied: the rows stay in flight and the next run re-sends it
            # with the same requestid; QBO replays the answer if it had applied it.
            log.warning("push %s: batch %s outcome unknown (%s); will resume", self.company.key, requestid, exc)
            self._set([it.row.id for it in mine], attempts=mine[0].row.attempts + 1 if mine else 1,
                      error_message=str(exc), next_step="retried automatically with the same requestid")
            self.result.in_flight += len(mine)
            return
        except (*_STOPPERS, ThrottledError) as exc:
            if only is not None:
                # a replay refused: the first sending may have been applied, so the rows stay in
                # flight and the next run replays again
                self.result.in_flight += len(mine)
                if isinstance(exc, ThrottledError):
                    return
                raise _Stop(f"QuickBooks refused the connection: {exc.hint}") from exc
            if isinstance(exc, ThrottledError):
                # a 429 is refused before it runs: nothing applied, safe to send anew later
                for it in mine:
                    self._retry_later(it.row, errors.classify(exc))
                return
            # refused before anything ran (401/403 or no token): nothing was applied
            reason = f"QuickBooks refused the connection: {exc.hint}"
            self._set([it.row.id for it in mine], status="pending", requestid=None, bid=None, request_body=None,
                      reason=reason)
            raise _Stop(reason) from exc
        self.result.batches += 1
        self.result.batch_seconds.append(time.monotonic() - started)
        stale: list[_Item] = []
        duplicates: list[_Item] = []
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

    def _handle_error(self, row: OutboxView, exc: QBOError) -> None:
        if isinstance(exc, _STOPPERS):
            raise _Stop(f"QuickBooks refused the connection: {exc.hint}") from exc
        self._handle_failure(row, errors.classify(exc))

    def _handle_failure(self, row: OutboxView, failure: errors.Classified) -> None:
        if failure.kind == errors.TRANSIENT:
            self._retry_later(row, failure)
        else:
            self._fail(row, failure)

    def _record(self, entity: str, item: _Item, obj: dict[str, Any]) -> None:
        row = item.row
        if item.kind in ("delete", "void", "inactivate"):
            state = {"delete": "deleted", "void": "voided", "inactivate": "inactive"}[item.kind]
            assert item.mapping is not None
            self.rt.mappings.add(self.tenant, entity, row.app_id, item.mapping.qbo_id, self.realm, state=state,
                                 sync_token=str(obj.get("SyncToken") or item.mapping.sync_token or ""),
                                 app_version=row.version)
            self._set([row.id], status="synced", reason=f"{state} in QuickBooks", qbo_id=item.mapping.qbo_id,
                                  synced_at=utcnow(), error_code=None, error_message=None, next_step=None)
            setattr(self.result, {"delete": "deleted", "void": "voided", "inactivate": "deleted"}[item.kind],
                    getattr(self.result, {"delete": "deleted", "void": "voided", "inactivate": "deleted"}[item.kind]) + 1)
            self.outcome[(entity, row.app_id)] = ("synced", state)
            return
        qbo_id, token = str(obj.get("Id")), str(obj.get("SyncToken"))
        qbo_values = from_qbo.app_values(entity, obj, self._app_ids())
        self.rt.mappings.add(self.tenant, entity, row.app_id, qbo_id, self.realm, sync_token=token,
                             agreed={"app": item.app, "qbo": qbo_values}, app_version=row.version,
                             qbo_updated_at=_lut(obj), state="active")
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
                                                               str(obj.get("SyncToken")), _lut(obj))])
        self.result.told_app += 1

    def _restale(self, entity: str, items: list[_Item], refs: dict) -> list[_Item]:
        """QuickBooks changed these objects since the agreement: re-read them and decide by policy."""
        if not items:
            return []
        ids = [item.body["Id"] for item in items]
        current = {str(o["Id"]): o for o in self.client.query_all(
            entity, where=f"Id IN ({', '.join(repr(str(i)) for i in ids)})"
            + (" AND Active IN (true, false)" if registry.get(entity).is_name_list else ""))}
        followups = []
        for item in items:
            obj = current.get(str(item.body["Id"]))
            if obj is None:
                self._fail(item.row, errors.classify(_gone(entity)))
                continue
            if item.kind in ("delete", "void", "inactivate"):
                if self.policy == conflicts.QBO_WINS:
                    self._settle_removal_dropped(entity, item, obj)
                    continue
                item.body["SyncToken"] = str(obj.get("SyncToken"))
                followups.append(item)
                continue
            assert item.mapping is not None
            qbo_values = from_qbo.app_values(entity, obj, self._app_ids())
            base = item.mapping.agreed
            resolution = (item.row.review or {}).get("resolution")
            if resolution:
                base = {"app": resolution.get("qbo"), "qbo": resolution.get("qbo")}
            followup = self._settle(entity, item.row, item.mapping, base, qbo_values, obj, refs)
            if followup is not None:
                followups.append(followup)
        return followups

    def _settle_removal_dropped(self, entity: str, item: _Item, obj: dict) -> None:
        reason = "QuickBooks wins: the record changed in QuickBooks, so it was not removed there"
        self._set([item.row.id], status="dropped", reason=reason, synced_at=utcnow(),
                              sync_token=str(obj.get("SyncToken")))
        self.outcome[(entity, item.row.app_id)] = ("synced", reason)
        self.result.dropped += 1

    def _dedupe(self, entity: str, items: list[_Item], refs: dict) -> list[_Item]:
        """A create hit a taken name (6240): find that object and link to it instead of failing."""
        if not items:
            return []
        found = match.find(self.client, entity, {it.row.id: it.row.payload for it in items})
        followups = []
        for item in items:
            candidates = found.get(item.row.id) or []
            if len(candidates) == 1:
                followup = self._adopt(entity, item.row, candidates[0], refs)
                if followup is not None:
                    followups.append(followup)
            else:
                # the name is held by another kind of record (a vendor named like the customer...)
                self._fail(item.row, errors.Classified(
                    errors.PERMANENT, "6240", f"the name {item.row.payload.get('display_name') or item.row.payload.get('name')!r} "
                    "is used by another QuickBooks record (customers, vendors and employees share names)",
                    "rename the record in the app, or rename the other record in QuickBooks"))
        return followups

    def _app_ids(self) -> dict[tuple[str, str], str]:
        """QBO id -> app id of every record this tenant mapped in the company (to read QBO objects back)."""
        if not hasattr(self, "_app_id_cache"):
            cache: dict[tuple[str, str], str] = {}
            for m in self.rt.mappings.list_for(self.tenant, realm_id=self.realm):
                cache[(m.entity, m.qbo_id)] = m.app_id
            self._app_id_cache = cache
        return self._app_id_cache

    # -- resume ----------------------------------------------------------------------------

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
                batch.append((row.bid or "b0", _Item(row, _kind_of(body), body.get(entity) or {}, row.payload,
                                                     mappings.get(row.app_id))))
            self.result.resumed += len(flying)
            self._call(entity, requestid, batch, [dict(r.request_body or {}) for r in group], {}, 0,
                       only={r.id for r in flying})


def _kind_of(item: dict[str, Any]) -> str:
    op = str(item.get("operation", "")).lower()
    if op == "update" and str(item.get("optionsData", "")).lower() == "void":
        return "void"
    if op == "update":
        entity_body = next((v for k, v in item.items() if isinstance(v, dict)), {})
        return "inactivate" if entity_body.get("Active") is False and len(entity_body) <= 4 else "update"
    return op or "create"


def _fields(entity: str) -> list[str]:
    return list(schema(entity)["properties"])


def _lut(obj: dict[str, Any]) -> datetime | None:
    text = (obj.get("MetaData") or {}).get("LastUpdatedTime")
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def _candidate(entity: str, obj: dict[str, Any]) -> dict[str, Any]:
    name = obj.get("DisplayName") or obj.get("Name") or obj.get("DocNumber")
    email = (obj.get("PrimaryEmailAddr") or {}).get("Address")
    return {k: v for k, v in {"qbo_id": str(obj.get("Id")), "name": name, "email": email,
                              "total": obj.get("TotalAmt")}.items() if v is not None}


def _gone(entity: str) -> QBOError:
    from qb_pipelines.qbo.errors import NotFoundError

    return NotFoundError(f"the {entity} was deleted in QuickBooks", code="610")


def _requestid(realm: str, round_: int, parts: Sequence[tuple[int, int, Any, str]]) -> str:
    text = f"push|{realm}|{round_}|" + ",".join(f"{i}:{v}:{t}:{u}" for i, v, t, u in parts)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


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
