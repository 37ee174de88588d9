"""The app against QuickBooks: does every record the app pushed (or linked) hold what QuickBooks holds?

A two-way sync promises that the app and QuickBooks agree. :func:`reconcile_app` proves it for one
company, store and warehouse reads only (no QuickBooks call): for every mapped record it compares
the values both sides last **agreed** on (the mapping's ``agreed`` snapshots, app vocabulary) with
the QuickBooks object as it last **landed** in the warehouse, read back into the app's vocabulary
(:func:`qb_pipelines.sync.push.from_qbo.app_values`), field by field, and lists:

* **mismatch** (fails): a field whose landed value differs from the agreed one -- entity, app id,
  QBO id, field (a JSON path such as ``address.city`` or ``lines[0].qty``), the agreed value and
  QuickBooks' value. The agreed value of a field is the app's; where the app left a field blank,
  QuickBooks' own value at the agreement (the date, terms and tax code QuickBooks filled in), so
  only what changed since counts. Documents also compare ``total_before_tax`` (the app's lines
  against QuickBooks' total less tax: a discount or a line added in QuickBooks shows there) and
  ``balance`` (what the app was told: the total less what the feed reported paid);
* **deleted_in_qbo**, **voided_in_qbo**, **inactive_in_qbo** (fail): mapped records QuickBooks
  removed while the app still holds them (the app's last word on the record was not a delete or
  a void);
* **failed** (fails) and **held** (listed only): app records that failed, or have been held since
  before the first connection, for longer than :data:`STUCK_AFTER`. Held records do not fail the
  check: holding them is the tenant's rule until an admin pushes them (``held_count`` reports
  them too), and a check red for as long as a tenant keeps its history out would hide new
  mismatches;
* **pending** (listed only): a difference the integration is about to settle -- the record has a
  newer version on its way (pending, in flight, retrying, blocked) that changes that field.

What "agreed" means when QuickBooks moved first: a change made in QuickBooks reaches the app
through the change feed, and stays a mismatch until the app *applies* it, that is upserts its
record with the new value (the push then finds QuickBooks already equal, writes nothing, and the
agreement moves on). A QuickBooks-side fix (the value put back) or a resolved review (the chosen
values pushed) makes the check pass as well. A record whose newest QuickBooks version has not
landed yet (the landed SyncToken is older than the one the integration wrote) is not compared --
it is counted ``not_landed``, never reported as a mismatch of the integration's own write.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from qb_pipelines.qbo import registry
from qb_pipelines.store.mappings import MappingView
from qb_pipelines.store.models import utcnow
from qb_pipelines.store.outbox import WAITING, OutboxView
from qb_pipelines.sync.push import contract, from_qbo
from qb_pipelines.sync.reconcile.landed import WarehouseTable, connect

__all__ = ["FAILING", "KINDS", "STUCK_AFTER", "AppAgreement", "Finding", "reconcile_app"]

#: Held or failed app records are listed once they have been so this long.
STUCK_AFTER = timedelta(days=1)
#: Kinds of finding, in the order they are listed; :data:`FAILING` ones fail the check.
KINDS = ("mismatch", "deleted_in_qbo", "voided_in_qbo", "inactive_in_qbo", "failed", "held", "pending")
FAILING = frozenset(KINDS[:5])
#: Fields the app sets once and QuickBooks moves by itself afterwards (stock sold and bought).
SET_ONCE = {"Item": frozenset({"qty_on_hand"})}
#: Derived fields compared on documents (not in the app's payloads).
TOTAL, BALANCE = "total_before_tax", "balance"
_CHUNK = 500
_CENT = 0.005


@dataclass(frozen=True)
class Finding:
    """One thing the app and QuickBooks do not agree on (see the module doc for the kinds).

    Attributes:
        kind: one of :data:`KINDS`.
        entity: the record's entity.
        app_id: the app's id of the record.
        qbo_id: QuickBooks' id (``None`` for a record that never reached QuickBooks).
        field: the field (a JSON path), ``state`` for a removal, ``status`` for a stuck record.
        app: the value agreed (the app's), or the app's status.
        qbo: QuickBooks' value, or what it did to the record.
        note: why, in a sentence (a stuck record's reason, what a pending row will do).
    """

    kind: str
    entity: str
    app_id: str
    qbo_id: str | None
    field: str | None
    app: Any
    qbo: Any
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "entity": self.entity, "app_id": self.app_id, "qbo_id": self.qbo_id,
                "field": self.field, "app": self.app, "qbo": self.qbo, "note": self.note}

    def sentence(self) -> str:
        """The finding as one line for a description or a log."""
        where = f"{self.entity} {self.app_id}" + (f" (QuickBooks {self.qbo_id})" if self.qbo_id else "")
        if self.kind in ("mismatch", "pending"):
            return f"{where} {self.field}: app {self.app!r}, QuickBooks {self.qbo!r}" + (
                " (pending)" if self.kind == "pending" else "")
        if self.kind.endswith("_in_qbo"):
            return f"{where} {self.qbo} in QuickBooks, still held by the app"
        return f"{where} {self.kind} since {self.qbo}: {self.note or ''}".rstrip(": ")


@dataclass
class AppAgreement:
    """The app against QuickBooks for one company.

    Attributes:
        company_key: the company.
        mapped: mapped records of the company (every entity the app pushes).
        compared: records compared field by field.
        not_landed: mapped records whose newest QuickBooks version has not landed yet.
        unagreed: mapped records with no agreement yet (a match being settled).
        removed_by_app: mapped records the app deleted or voided (nothing to compare).
        findings: what disagrees, in :data:`KINDS` order.
        by_entity: per entity, mapped and compared records and findings.
    """

    company_key: str
    mapped: int = 0
    compared: int = 0
    not_landed: int = 0
    unagreed: int = 0
    removed_by_app: int = 0
    findings: list[Finding] = field(default_factory=list)
    by_entity: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """Findings per kind (every kind, zeros included)."""
        out = dict.fromkeys(KINDS, 0)
        for finding in self.findings:
            out[finding.kind] += 1
        return out

    @property
    def failing(self) -> list[Finding]:
        return [f for f in self.findings if f.kind in FAILING]

    @property
    def passed(self) -> bool:
        """Whether the app agrees with QuickBooks (nothing in :data:`FAILING`)."""
        return not self.failing

    def description(self, listed: int = 3) -> str:
        """A sentence for the check: what disagrees (the first few), or what was compared."""
        counts = {k: n for k, n in self.counts.items() if n}
        if self.failing:
            first = "; ".join(f.sentence() for f in self.failing[:listed])
            more = f" and {len(self.failing) - listed} more" if len(self.failing) > listed else ""
            return f"the app disagrees with QuickBooks ({_plural(counts)}): {first}{more}"
        tail = f"; listed: {_plural(counts)}" if counts else ""
        return f"{self.compared} mapped records agree with QuickBooks{tail}"

    def as_metadata(self) -> dict[str, Any]:
        """Plain figures (JSON-ready): counts, per entity, and the findings."""
        return {"company": self.company_key, "mapped": self.mapped, "compared": self.compared,
                "not_landed": self.not_landed, "unagreed": self.unagreed, "removed_by_app": self.removed_by_app,
                **self.counts, "by_entity": self.by_entity}


def _plural(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in counts.items())


# ----------------------------------------------------------------------------------- comparing


def _blank(value: Any) -> bool:
    return from_qbo.comparable(value) is None


def expected_values(app: Any, qbo: Any) -> Any:
    """The values agreed: the app's, and QuickBooks' own where the app left a field blank.

    Merged key by key in objects (an address) and item by item in lists of the same length (a
    document's lines), so a line's description QuickBooks filled in counts as agreed too.
    """
    if isinstance(app, Mapping) and isinstance(qbo, Mapping):
        out = dict(qbo)
        for key, value in app.items():
            out[key] = qbo.get(key) if _blank(value) else expected_values(value, qbo.get(key))
        return out
    if isinstance(app, list) and isinstance(qbo, list) and len(app) == len(qbo):
        return [expected_values(a, q) for a, q in zip(app, qbo, strict=True)]
    return qbo if _blank(app) else app


def differences(path: str, expected: Any, actual: Any) -> list[tuple[str, Any, Any]]:
    """``(path, expected, actual)`` for every leaf that differs (lists of unequal length as a whole)."""
    if from_qbo.comparable(expected) == from_qbo.comparable(actual):
        return []
    if isinstance(expected, Mapping) and isinstance(actual, Mapping):
        return [d for key in sorted(set(expected) | set(actual))
                for d in differences(f"{path}.{key}", expected.get(key), actual.get(key))]
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [d for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for d in differences(f"{path}[{i}]", e, a)]
    return [(path, expected, actual)]


def _money(value: Any) -> float:
    try:
        return round(float(value or 0), 2)
    except (TypeError, ValueError):
        return 0.0


def _lines_total(lines: Any) -> float:
    """What the app's lines come to: quantity x unit price (or the amount), each rounded to cents."""
    total = 0.0
    for line in lines or []:
        if not isinstance(line, Mapping):
            continue
        if line.get("amount") is not None:
            total += _money(line.get("amount"))
        else:
            total += _money(float(line.get("qty") or 0) * float(line.get("unit_price") or 0))
    return round(total, 2)


def _ref_shown(entity: str, name: str, obj: Mapping[str, Any]) -> str | None:
    """QuickBooks' reference of an ``*_app_id`` field to a record the app does not know, as text."""
    if name not in contract.REFERENCES.get(entity, {}):
        return None
    ref = obj.get(name[: -len("_app_id")].title() + "Ref")
    value = ref.get("value") if isinstance(ref, Mapping) else None
    return f"QuickBooks id {value} (not mapped)" if value else None


def _older(landed: str | None, written: str | None) -> bool:
    """Whether the landed SyncToken is older than the one the integration last wrote."""
    try:
        return int(str(landed)) < int(str(written))
    except (TypeError, ValueError):
        return False


def _at(data: Any, path: str) -> Any:
    """The value at a JSON path (``lines[0].qty``) of a payload, ``None`` when absent."""
    cur = data
    for part in path.replace("]", "").replace("[", ".").split("."):
        if isinstance(cur, Mapping):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


# ----------------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Landed:
    sync_token: str | None
    active: bool
    deleted: bool
    body: dict[str, Any]


def _body(raw: Any) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        return dict(raw)
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw).decode()
    return json.loads(raw) if raw else {}


def _landed(engine: Any, company_key: str, entity: str, qbo_ids: Iterable[str]) -> dict[str, _Landed]:
    """The landed rows of these QBO ids (deleted ones flagged), read in chunks of :data:`_CHUNK`."""
    wanted = sorted({str(i) for i in qbo_ids})
    wt = WarehouseTable(engine, entity)
    t = wt.table
    out: dict[str, _Landed] = {}
    with connect(engine) as conn:
        for start in range(0, len(wanted), _CHUNK):
            query = sa.select(t.c.id, t.c.sync_token, t.c.is_active, t.c.is_deleted, t.c.raw).where(
                t.c.company_key == company_key, t.c.id.in_(wanted[start:start + _CHUNK]))
            for qbo_id, token, active, deleted, raw in conn.execute(query):
                out[str(qbo_id)] = _Landed(token, bool(active), bool(deleted), _body(raw))
    return out


def _gone(entity: str, landed: _Landed) -> str | None:
    """What QuickBooks did to the object: ``deleted``, ``voided``, ``inactive``, or ``None``."""
    if landed.deleted:
        return "deleted"
    if registry.get(entity).is_transaction and from_qbo.voided(landed.body):
        return "voided"
    if not landed.active or landed.body.get("Active") is False:
        return "inactive"
    return None


# ----------------------------------------------------------------------------------- the check


class _Company:
    """One company's reconciliation in progress (see :func:`reconcile_app`)."""

    def __init__(self, runtime: Any, company_key: str, now: datetime) -> None:
        self.rt, self.now = runtime, now
        company = runtime.resolve(company_key)
        self.key, self.tenant, self.realm, self.current = company.key, company.tenant_key, company.realm_id, \
            company.current
        self.out = AppAgreement(company.key)
        self.mappings: dict[str, list[MappingView]] = {}
        for m in runtime.mappings.list_for(self.tenant, realm_id=self.realm):
            self.mappings.setdefault(m.entity, []).append(m)
        # QBO id -> app id of every mapped record, for references (customer_app_id, item_app_id...)
        self.app_ids = {(m.entity, m.qbo_id): m.app_id for ms in self.mappings.values() for m in ms}

    def run(self) -> AppAgreement:
        for ent in registry.push_order():
            if ent.name in contract.ENTITIES:
                self._entity(ent.name, self.mappings.get(ent.name, []))
        if self.current:  # the outbox pushes to the tenant's current company only
            self._stuck()
        order = {k: i for i, k in enumerate(KINDS)}
        self.out.findings.sort(key=lambda f: (order[f.kind], f.entity, f.app_id, f.field or ""))
        return self.out

    def _entity(self, entity: str, mappings: list[MappingView]) -> None:
        stats = self.out.by_entity.setdefault(entity, {"mapped": len(mappings), "compared": 0, "findings": 0})
        self.out.mapped += len(mappings)
        if not mappings:
            return
        before = len(self.out.findings)
        latest = (self.rt.outbox.latest_by_app_ids(self.tenant, entity, [m.app_id for m in mappings])
                  if self.current else {})
        landed = _landed(self.rt.engine, self.key, entity, [m.qbo_id for m in mappings])
        told = (self.rt.feed.latest_by_qbo_ids(self.tenant, entity, [m.qbo_id for m in mappings])
                if registry.get(entity).balance_field and registry.get(entity).is_transaction else {})
        for m in mappings:
            row = latest.get(m.app_id)
            if row is not None and row.op in ("delete", "void"):
                self.out.removed_by_app += 1  # the app removed it too (or is about to): nothing to compare
                continue
            found = landed.get(m.qbo_id)
            if found is None:
                self.out.not_landed += 1
                continue
            gone = _gone(entity, found)
            if gone is not None:
                self._add(f"{gone}_in_qbo", m, "state", "active", gone,
                          f"{gone} in QuickBooks; the app still holds it: remove it in the app, or restore it "
                          "in QuickBooks")
                continue
            if not (m.agreed or {}).get("app"):
                self.out.unagreed += 1
                continue
            if _older(found.sync_token, m.sync_token):
                self.out.not_landed += 1  # the integration's newest write has not landed yet
                continue
            waiting = row if row is not None and row.status in WAITING else None
            self._compare(entity, m, found, waiting, told.get(m.qbo_id))
            stats["compared"] += 1
            self.out.compared += 1
        stats["findings"] = len(self.out.findings) - before

    def _compare(self, entity: str, m: MappingView, found: _Landed, waiting: OutboxView | None,
                 told: Any) -> None:
        agreed = m.agreed or {}
        expected = expected_values(agreed.get("app") or {}, agreed.get("qbo") or {})
        qbo_now = from_qbo.app_values(entity, found.body, self.app_ids)
        skip = SET_ONCE.get(entity, frozenset())
        diffs: list[tuple[str, Any, Any]] = []
        for name in contract.schema(entity)["properties"]:
            if name in skip:
                continue
            actual = qbo_now.get(name)
            if actual is None and not _blank(expected.get(name)):
                actual = _ref_shown(entity, name, found.body)
            diffs += differences(name, expected.get(name), actual)
        ent = registry.get(entity)
        if ent.is_transaction:
            qbo_total = _money(_money(found.body.get("TotalAmt"))
                               - _money((found.body.get("TxnTaxDetail") or {}).get("TotalTax")))
            app_total = _lines_total(expected.get("lines"))
            if abs(app_total - qbo_total) > _CENT:
                diffs.append((TOTAL, app_total, qbo_total))
            if ent.balance_field:
                data = getattr(told, "data", None) or {}
                paid = (_money(data.get("total")) - _money(data.get("balance"))
                        if "balance" in data and "total" in data else 0.0)
                expected_balance = _money(_money(found.body.get("TotalAmt")) - paid)
                balance = _money(found.body.get(ent.balance_field))
                if abs(expected_balance - balance) > _CENT:
                    diffs.append((BALANCE, expected_balance, balance))
        agreed_app = agreed.get("app") or {}
        for path, want, have in diffs:
            top = path.split(".")[0].split("[")[0]
            changes = "lines" if top == TOTAL else top
            if waiting is not None and top != BALANCE and (
                    from_qbo.comparable(waiting.payload.get(changes)) != from_qbo.comparable(agreed_app.get(changes))):
                value = _lines_total(waiting.payload.get("lines")) if top == TOTAL else _at(waiting.payload, path)
                self._add("pending", m, path, value, have,
                          f"version {waiting.version} ({waiting.status}) changes {changes}: the next push settles it")
            else:
                self._add("mismatch", m, path, want, have)

    def _add(self, kind: str, m: MappingView, name: str | None, app: Any, qbo: Any, note: str | None = None) -> None:
        self.out.findings.append(Finding(kind, m.entity, m.app_id, m.qbo_id, name, app, qbo, note))

    def _stuck(self) -> None:
        """Held and failed records of the tenant for longer than :data:`STUCK_AFTER`."""
        for row in self.rt.outbox.rows(self.tenant, ("failed", "held"), limit=100_000):
            since = row.created_at if row.status == "held" else row.updated_at
            if since is None or self.now - since < STUCK_AFTER:
                continue
            if row.status == "failed":
                why = f"{row.error_code}: {row.error_message}" if row.error_code else (row.error_message or row.reason)
                note = f"{why}. Next step: {row.next_step}" if row.next_step else why
            else:
                note = row.reason
            self.out.findings.append(Finding(row.status, row.entity, row.app_id, row.qbo_id, "status", row.status,
                                             since.isoformat(), note))


def reconcile_app(runtime: Any, company_key: str, *, now: datetime | None = None) -> AppAgreement:
    """Compare every mapped record of ``company_key`` with what landed from QuickBooks (see the module doc).

    Args:
        runtime: the integration's runtime (mappings, outbox, feed, warehouse).
        company_key: ``<tenant>-<realmId>`` (a bare tenant key means its current company).
        now: the time records' ages are measured at (the wall clock by default).

    Raises:
        UnknownCompanyError: the key names no company.
    """
    return _Company(runtime, company_key, now or utcnow()).run()
