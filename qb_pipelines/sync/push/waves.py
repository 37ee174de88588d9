"""One entity, one wave: what each outbox row of it sends (step 3 of :mod:`~qb_pipelines.sync.push.engine`).

Resolves references through the mappings, blocks rows whose dependency failed or was never sent,
links rows the app tied to an existing QuickBooks object, turns deletes and voids into their
writes, and decides what an update sends (the fields the app changed since the last agreement).
Unmapped rows go to the match-before-create of :mod:`~qb_pipelines.sync.push.settle`; the items
made go to :mod:`~qb_pipelines.sync.push.send`.

May touch: the mappings and the outbox (through the run's bookkeeping); reads QuickBooks
(a linked object, the inventory accounts), never writes to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.errors import QBOError
from qb_pipelines.store.mappings import MappingView
from qb_pipelines.store.models import utcnow
from qb_pipelines.store.outbox import OutboxView
from qb_pipelines.sync.push import from_qbo, plan, to_qbo
from qb_pipelines.sync.push.items import Item, fields_of, last_updated
from qb_pipelines.sync.push.run_state import RunState


class Waves(RunState):
    """Decide the writes of one wave of one entity (calls :class:`Settling` and :class:`Sending` of the run)."""

    def _entity(self, entity: str, rows: Sequence[OutboxView]) -> None:
        refs = self._refs(entity, rows)
        mappings = self.rt.mappings.by_app_ids(self.tenant, self.realm, entity, [r.app_id for r in rows])
        items: list[Item] = []
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
                             qbo_updated_at=last_updated(obj), state="active")
        self._set([row.id], status="synced", qbo_id=str(obj["Id"]), sync_token=str(obj.get("SyncToken")),
                              realm_id=self.realm, synced_at=utcnow(), reason="linked to the existing QuickBooks record")
        self.outcome[(row.entity, row.app_id)] = ("synced", "")
        self.result.linked += 1

    def _removal(self, entity: str, row: OutboxView, mapping: MappingView | None) -> Item | None:
        if mapping is None or mapping.state != "active":
            note = "nothing in QuickBooks to remove" if mapping is None else f"already {mapping.state} in QuickBooks"
            self._set([row.id], status="synced", reason=note, realm_id=self.realm, synced_at=utcnow())
            self.outcome[(entity, row.app_id)] = ("synced", note)
            return None
        ent = registry.get(entity)
        body: dict[str, Any] = {"Id": mapping.qbo_id, "SyncToken": mapping.sync_token or "0"}
        if row.op == "void":
            return Item(row, "void", body, {}, mapping)
        if ent.deletable:
            return Item(row, "delete", body, {}, mapping)
        return Item(row, "inactivate", {**body, "sparse": True, "Active": False}, {}, mapping)

    def _update(self, entity: str, row: OutboxView, mapping: MappingView, refs: dict) -> Item | None:
        """A mapped record changed in the app: send the fields it changed since the agreement."""
        agreed = mapping.agreed or {}
        resolution = (row.review or {}).get("resolution")
        base_app = (resolution or {}).get("qbo") if resolution else agreed.get("app")
        token = (resolution or {}).get("sync_token") or mapping.sync_token
        changed = {f for f in fields_of(entity)
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
        return Item(row, "update", body, row.payload, mapping, sent_fields=changed)

    def _synced_noop(self, row: OutboxView, mapping: MappingView, note: str) -> None:
        self._set([row.id], status="synced", reason=note, qbo_id=mapping.qbo_id,
                              sync_token=mapping.sync_token, realm_id=self.realm, synced_at=utcnow())
        self.rt.mappings.add(self.tenant, row.entity, row.app_id, mapping.qbo_id, self.realm, app_version=row.version)
        self.outcome[(row.entity, row.app_id)] = ("synced", note)
        self.result.unchanged += 1

    def _entity_defaults(self, entity: str, data: dict[str, Any]) -> to_qbo.Defaults:
        assert self.defaults is not None
        if entity == "Item" and data.get("type") == "inventory":
            return self._inventory_accounts()
        return self.defaults

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
