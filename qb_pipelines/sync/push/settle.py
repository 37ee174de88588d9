"""Match before create, and the three-way settling of records QuickBooks also changed.

A record the app pushes for the first time is looked up in QuickBooks first (one match is
adopted, several go to review, none is created); a record QuickBooks changed since the last
agreement (just adopted, a stale write refused with 5010, a duplicate name 6240) is settled by
the tenant's conflict policy (:mod:`~qb_pipelines.sync.push.conflicts`): send the app's fields,
keep QuickBooks' values, drop the change, or ask an admin.

May touch: the mappings, the outbox (through the run's bookkeeping) and the change feed; reads
QuickBooks (lookups, re-reads), never writes to it.
"""

from __future__ import annotations

from typing import Any

from qb_pipelines.qbo import registry
from qb_pipelines.store.mappings import MappingView
from qb_pipelines.store.models import utcnow
from qb_pipelines.store.outbox import OutboxView
from qb_pipelines.sync.push import conflicts, errors, from_qbo, match, to_qbo
from qb_pipelines.sync.push.items import Item, candidate, fields_of, gone, last_updated
from qb_pipelines.sync.push.run_state import RunState


class Settling(RunState):
    """Match unmapped records and settle conflicting ones (calls :class:`Waves` and :class:`Sending` of the run)."""

    def _match_or_create(self, entity: str, rows: dict[int, OutboxView], refs: dict) -> list[Item]:
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
                self._review(row, {"kind": "ambiguous_match", "candidates": [candidate(entity, c) for c in candidates]},
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
            items.append(Item(row, "create", body, row.payload))
        return items

    def _adopt(self, entity: str, row: OutboxView, obj: dict, refs: dict) -> Item | None:
        """Link a record to the one QBO object that matched, then let the policy settle the fields."""
        self.result.matched += 1
        qbo_values = from_qbo.app_values(entity, obj, self._app_ids())
        mapping = self.rt.mappings.add(self.tenant, entity, row.app_id, str(obj["Id"]), self.realm,
                                       sync_token=str(obj.get("SyncToken")), agreed=None,
                                       qbo_updated_at=last_updated(obj), state="active")
        return self._settle(entity, row, mapping, None, qbo_values, obj, refs)

    def _settle(self, entity: str, row: OutboxView, mapping: MappingView, agreed: dict | None,
                qbo_values: dict[str, Any], obj: dict, refs: dict) -> Item | None:
        """The three-way decision on a record QBO also changed (or that was just linked)."""
        decision = conflicts.decide(fields_of(entity), agreed, row.payload, qbo_values, self.policy)
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
                                 qbo_updated_at=last_updated(obj))
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
        return Item(row, "update", body, app_after, mapping, sent_fields=decision.send, note=note)

    def _restale(self, entity: str, items: list[Item], refs: dict) -> list[Item]:
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
                self._fail(item.row, errors.classify(gone(entity)))
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

    def _settle_removal_dropped(self, entity: str, item: Item, obj: dict) -> None:
        reason = "QuickBooks wins: the record changed in QuickBooks, so it was not removed there"
        self._set([item.row.id], status="dropped", reason=reason, synced_at=utcnow(),
                              sync_token=str(obj.get("SyncToken")))
        self.outcome[(entity, item.row.app_id)] = ("synced", reason)
        self.result.dropped += 1

    def _dedupe(self, entity: str, items: list[Item], refs: dict) -> list[Item]:
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
