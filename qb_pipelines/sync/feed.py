"""QuickBooks' changes, told to the app: the change feed, written while landing.

Landing (:func:`qb_pipelines.sync.ingest.land`) calls a :class:`FeedRecorder` with every batch of
objects it commits. The recorder decides which of them the app hears about, in the app's
vocabulary (:mod:`qb_pipelines.sync.push.from_qbo`), and appends them to the feed
(:mod:`qb_pipelines.store.feed`):

* **customers, vendors, items** whose direction includes QuickBooks-to-app (Customer both ways by
  default), mapped or not: a record born in QuickBooks arrives without ``app_id``, and the app links
  it by upserting its own record with ``qbo_id``;
* **invoices, estimates and bills the app pushed** (mapped): their values, balance and status
  (``open``, ``partially_paid``, ``paid``, ``voided``) as they change in QuickBooks;
* **payments** that apply to mapped invoices: amount, date, method, reference, and the app ids of
  the invoices they pay and how much to each;
* **merges**: the loser of a merge as a ``merge`` entry naming the survivor; **deletes** and
  **voids** of mapped documents; a name-list object made inactive as a ``delete``.

What the app must never hear is its own writes coming back (CDC and webhooks return them like
any change): an object whose SyncToken is the one the integration stored when it wrote it is an
**echo** and is skipped, and a version already in the feed is not told twice. A change made in
QuickBooks to a record that has an app change waiting goes through the tenant's conflict policy,
as in the push direction: with QBO wins the feed carries QuickBooks' values and the waiting change
is dropped; with app wins the feed carries what QuickBooks will hold once the app's change is
pushed; with manual review the waiting change goes to the review queue.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from qb_pipelines.qbo import registry
from qb_pipelines.store.feed import NewEntry
from qb_pipelines.store.mappings import MappingView
from qb_pipelines.store.settings import SyncSettings
from qb_pipelines.sync.companies import Company
from qb_pipelines.sync.push import conflicts, from_qbo
from qb_pipelines.sync.push.contract import schema

log = logging.getLogger(__name__)

__all__ = ["ENTITIES", "FeedRecorder", "FeedStats"]

#: Name lists the app may receive (direction permitting).
_NAME_LISTS = ("Customer", "Vendor", "Item")
#: The app's documents: fed when mapped, with balance and status.
_DOCUMENTS = from_qbo.DOCUMENTS
#: What the recorder listens to (the landing passes only these).
ENTITIES = (*_NAME_LISTS, *_DOCUMENTS, "Payment")


@dataclass
class FeedStats:
    """What one landing told the app."""

    entries: int = 0
    echoes: int = 0
    repeats: int = 0
    conflicts: int = 0
    by_entity: dict[str, int] = field(default_factory=dict)


def _when(obj: dict[str, Any]) -> datetime | None:
    text = (obj.get("MetaData") or {}).get("LastUpdatedTime")
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


class FeedRecorder:
    """The landing's hook that writes the feed of one company (see the module doc).

    Args:
        runtime: the integration's runtime.
        company: the company being landed.
    """

    def __init__(self, runtime: Any, company: Company) -> None:
        self.rt, self.company = runtime, company
        self.tenant, self.realm = company.tenant_key, company.realm_id
        self.settings: SyncSettings = runtime.tenant_settings.get(self.tenant).values
        self.stats = FeedStats()

    # -- what the landing calls ------------------------------------------------------------

    def wants(self, entity: str) -> bool:
        """Whether changes of ``entity`` may concern the app (the landing skips the rest cheaply)."""
        if entity not in ENTITIES or not self.settings.enabled(entity):
            return False
        if entity in _NAME_LISTS:
            return registry.get(entity).to_app and self.settings.direction(entity) in ("qbo_to_app", "both")
        return True

    def __call__(self, entity: str, live: Sequence[dict[str, Any]], tombstones: Sequence[dict[str, Any]]) -> None:
        """Record what the app must hear of one committed batch of ``entity``."""
        if not self.wants(entity) or not (live or tombstones):
            return
        try:
            entries = self._entries(entity, live, tombstones)
        except Exception:  # the feed must never fail a landing; the next landing re-reads the changes
            log.exception("feed of %s %s: could not record this batch", self.company.key, entity)
            return
        if entries:
            self.rt.feed.append(self.tenant, self.realm, entries)
            self.stats.entries += len(entries)
            self.stats.by_entity[entity] = self.stats.by_entity.get(entity, 0) + len(entries)

    # -- deciding ----------------------------------------------------------------------------

    def _entries(self, entity: str, live: Sequence[dict[str, Any]], tombs: Sequence[dict[str, Any]]) -> list[NewEntry]:
        ids = [str(o.get("Id")) for o in (*live, *tombs)]
        mappings = self.rt.mappings.by_qbo_ids(self.tenant, self.realm, entity, ids)
        app_ids = self._app_ids(entity, live)
        out: list[NewEntry] = []
        if entity == "Payment":
            out.extend(self._payments(live, tombs, app_ids))
            return out
        for obj in live:
            qbo_id, token = str(obj.get("Id")), str(obj.get("SyncToken"))
            mapping = mappings.get(qbo_id)
            if entity in _DOCUMENTS and mapping is None:
                continue  # QuickBooks' own documents stay in the warehouse; the app tracks its own
            if mapping is not None and mapping.sync_token == token:
                self.stats.echoes += 1  # the integration's own write coming back
                continue
            if self.rt.feed.seen(self.tenant, entity, qbo_id, token):
                self.stats.repeats += 1
                continue
            entry = self._object(entity, obj, mapping, app_ids)
            if entry is not None:
                out.append(entry)
        for tomb in tombs:
            entry = self._gone(entity, tomb, mappings.get(str(tomb.get("Id"))))
            if entry is not None:
                out.append(entry)
        return out

    def _app_ids(self, entity: str, live: Sequence[dict[str, Any]]) -> dict[tuple[str, str], str]:
        """QBO id -> app id of the records these objects refer to (customers, items, invoices...)."""
        wanted: dict[str, set[str]] = {}

        def ref(kind: str, value: Any) -> None:
            if isinstance(value, dict) and value.get("value"):
                wanted.setdefault(kind, set()).add(str(value["value"]))

        for obj in live:
            ref("Customer", obj.get("CustomerRef"))
            ref("Customer", obj.get("ParentRef") if entity == "Customer" else None)
            ref("Vendor", obj.get("VendorRef"))
            for line in obj.get("Line") or []:
                for detail in line.values():
                    if isinstance(detail, dict):
                        ref("Item", detail.get("ItemRef"))
                        ref("Customer", detail.get("CustomerRef"))
                for link in line.get("LinkedTxn") or []:
                    if link.get("TxnType") == "Invoice":
                        ref("Invoice", {"value": link.get("TxnId")})
        out: dict[tuple[str, str], str] = {}
        for kind, qbo_ids in wanted.items():
            for qbo_id, m in self.rt.mappings.by_qbo_ids(self.tenant, self.realm, kind, qbo_ids).items():
                out[(kind, qbo_id)] = m.app_id
        return out

    def _object(self, entity: str, obj: dict[str, Any], mapping: MappingView | None,
                app_ids: dict[tuple[str, str], str]) -> NewEntry | None:
        qbo_id, token = str(obj.get("Id")), str(obj.get("SyncToken"))
        data = from_qbo.feed_values(entity, obj, app_ids)
        if entity in _DOCUMENTS:
            op = "void" if from_qbo.voided(obj) else "upsert"
        elif obj.get("Active") is False:
            op = "delete"  # made inactive in QuickBooks: gone for the app
            if mapping is not None:
                self.rt.mappings.add(self.tenant, entity, mapping.app_id, qbo_id, self.realm, state="inactive")
        else:
            op = "upsert"
        if mapping is not None and op == "upsert":
            data = self._against_waiting(entity, mapping, data, token)
            if data is None:
                return None
        if op == "void" and mapping is not None:
            self.rt.mappings.add(self.tenant, entity, mapping.app_id, qbo_id, self.realm, state="voided")
        return NewEntry(entity, op, qbo_id, data, mapping.app_id if mapping else None, token, _when(obj))

    def _against_waiting(self, entity: str, mapping: MappingView, qbo_data: dict[str, Any],
                         sync_token: str) -> dict[str, Any] | None:
        """A QBO change to a record with an app change waiting: the tenant's policy decides what the app hears."""
        waiting = self.rt.outbox.record(self.tenant, entity, mapping.app_id)
        if waiting is None or waiting.op != "upsert" or waiting.status not in ("pending", "retrying", "blocked"):
            return qbo_data
        fields = list(schema(entity)["properties"])
        decision = conflicts.decide(fields, mapping.agreed, waiting.payload, qbo_data, self.settings.conflict_policy)
        if not decision.conflicts:
            return qbo_data  # different fields: QBO's go to the app, the app's go to QBO at the next push
        self.stats.conflicts += 1
        policy = self.settings.conflict_policy
        if policy == conflicts.QBO_WINS:
            changed_by_app = {f for f in fields if from_qbo.comparable(waiting.payload.get(f))
                              != from_qbo.comparable(((mapping.agreed or {}).get("app") or {}).get(f))}
            if changed_by_app <= set(decision.conflicts):
                self.rt.outbox.update([waiting.id], status="dropped", reason="QuickBooks wins: changed in QuickBooks "
                                      f"meanwhile ({', '.join(sorted(decision.conflicts))}); the app's change was dropped")
            return qbo_data
        if policy == conflicts.APP_WINS:
            return {**qbo_data, **{f: waiting.payload.get(f) for f in decision.conflicts}}
        review = decision.review_payload()
        # what the admin decides against: QuickBooks' values now (see Outbox.resolve)
        review["resolution_base"] = {"sync_token": sync_token, "qbo": {f: qbo_data[f] for f in fields if f in qbo_data}}
        self.rt.outbox.update([waiting.id], status="review", review=review,
                              reason=f"changed in both the app and QuickBooks ({', '.join(sorted(decision.conflicts))}): "
                                     "choose which values to keep")
        return None  # the app hears the outcome once an admin resolves it

    def _gone(self, entity: str, tomb: dict[str, Any], mapping: MappingView | None) -> NewEntry | None:
        qbo_id = str(tomb.get("Id"))
        if entity in _NAME_LISTS:
            # name lists are never deleted in QuickBooks, only merged away: find the survivor
            survivor = self.rt.inbox.merge_survivor(self.realm, entity, qbo_id)
            into = self.rt.mappings.by_qbo_ids(self.tenant, self.realm, entity, [survivor]).get(survivor) if survivor else None
            if mapping is not None:
                self.rt.mappings.add(self.tenant, entity, mapping.app_id, qbo_id, self.realm, state="deleted")
            data = {"into_qbo_id": survivor, "into_app_id": into.app_id if into else None}
            return NewEntry(entity, "merge", qbo_id, data, mapping.app_id if mapping else None, None, _when(tomb))
        if mapping is None and not (entity == "Payment" and self._told(entity, qbo_id)):
            return None
        if mapping is not None:
            self.rt.mappings.add(self.tenant, entity, mapping.app_id, qbo_id, self.realm, state="deleted")
        return NewEntry(entity, "delete", qbo_id, {}, mapping.app_id if mapping else None, None, _when(tomb))

    def _told(self, entity: str, qbo_id: str) -> bool:
        return self.rt.feed.seen_any(self.tenant, entity, qbo_id)

    def _payments(self, live: Sequence[dict[str, Any]], tombs: Sequence[dict[str, Any]],
                  app_ids: dict[tuple[str, str], str]) -> list[NewEntry]:
        out: list[NewEntry] = []
        for obj in live:
            qbo_id, token = str(obj.get("Id")), str(obj.get("SyncToken"))
            applied = []
            for line in obj.get("Line") or []:
                for link in line.get("LinkedTxn") or []:
                    if link.get("TxnType") == "Invoice":
                        invoice = str(link.get("TxnId"))
                        applied.append({"invoice_qbo_id": invoice, "invoice_app_id": app_ids.get(("Invoice", invoice)),
                                        "amount": line.get("Amount")})
            concerns_app = any(a["invoice_app_id"] for a in applied) or self._told("Payment", qbo_id)
            if not concerns_app:
                continue
            if self.rt.feed.seen(self.tenant, "Payment", qbo_id, token):
                self.stats.repeats += 1
                continue
            customer = str((obj.get("CustomerRef") or {}).get("value") or "")
            data = {"amount": obj.get("TotalAmt"), "date": obj.get("TxnDate"),
                    "method": (obj.get("PaymentMethodRef") or {}).get("name"), "reference": obj.get("PaymentRefNum"),
                    "customer_qbo_id": customer or None, "customer_app_id": app_ids.get(("Customer", customer)),
                    "unapplied": obj.get("UnappliedAmt"), "applied": applied}
            op = "void" if from_qbo.voided(obj) else "upsert"
            out.append(NewEntry("Payment", op, qbo_id, {k: v for k, v in data.items() if v is not None}, None, token,
                                _when(obj)))
        for tomb in tombs:
            entry = self._gone("Payment", tomb, None)
            if entry is not None:
                out.append(entry)
        return out
