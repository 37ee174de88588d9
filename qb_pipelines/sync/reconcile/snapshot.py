"""QuickBooks against the warehouse, entity by entity: are all the rows there, with their amounts?

* :func:`completeness` -- rows per entity (active and inactive, not deleted) against QBO's
  ``COUNT(*)`` (1 call; name lists add ``Active IN (true, false)`` because QBO counts only active
  rows otherwise), then the Id sets (N/1000 query pages) -- always up to ``list_ids_up_to`` rows,
  and above that only when the counts differ, since listing ids costs as much as a full load.
* :func:`transaction_totals` -- ``SUM(TotalAmt)`` and ``SUM(Balance)`` against QBO, per id. QBO's
  query language has no SUM, so the QBO side is summed over the query pages (N/1000 calls). We
  chose that over comparing with reports because only per-id amounts can *name* the tampered or
  stale row; the report checks cover the aggregate view for free.

Pass one :class:`QBOSnapshot` to both to pay for the pages once.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from qb_pipelines.qbo import registry
from qb_pipelines.store import warehouse
from qb_pipelines.sync.reconcile.landed import WarehouseTable, connect
from qb_pipelines.sync.reconcile.outcome import (
    CheckOutcome,
    cents,
    compare_amounts,
    dollars,
    full_refresh_fix,
    id_order,
    make_outcome,
)


class QBOReader(Protocol):
    """What the checks need from ``qbo.client.QBOClient``."""

    def count(self, entity: str, where: str | None = None) -> int: ...

    def query_pages(self, entity: str, where: str | None = None, order_by: str | None = None,
                    page_size: int = 1000) -> Iterator[list[dict]]: ...


def _all_rows_where(entity: str) -> str | None:
    """Name lists: QBO returns (and counts) only active rows unless Active is mentioned (§2.1)."""
    return "Active IN (true, false)" if registry.get(entity).has_active else None


@dataclass
class QBOSnapshot:
    """What QBO holds for one entity, kept small: per id its Active flag, total and open balance.

    The total is ``TotalAmt`` (``Amount`` for transfers: the registry's ``total_field``); ids and
    fields are read as the registry says (a RecurringTransaction's are its template's).

    Build it once with :func:`qbo_snapshot` and pass it to :func:`completeness` and
    :func:`transaction_totals`, so the id listing and the sums share one pass over the pages.
    """

    entity: str
    active: dict[str, bool] = field(default_factory=dict)
    total_amt: dict[str, int] = field(default_factory=dict)
    balance: dict[str, int] = field(default_factory=dict)
    pages: int = 0

    @property
    def ids(self) -> set[str]:
        return set(self.active)


def qbo_snapshot(client: QBOReader, entity: str) -> QBOSnapshot:
    """Page through every row of ``entity`` in QBO (active and inactive) and keep ids and amounts."""
    ent = registry.get(entity)
    snap = QBOSnapshot(ent.name)
    for page in client.query_pages(ent.name, where=_all_rows_where(ent.name)):
        snap.pages += 1
        for obj in page:
            ident = str(ent.identity(obj))
            row = ent.fields_of(obj)
            snap.active[ident] = row.get("Active", True) is not False
            if ent.total_field in row:
                snap.total_amt[ident] = cents(row.get(ent.total_field))
            if ent.balance_field and ent.balance_field in row:
                snap.balance[ident] = cents(row.get(ent.balance_field))
    return snap


def completeness(engine: Engine | Connection, client: QBOReader, company_key: str, entity: str, *,
                 list_ids_up_to: int = 50_000, snapshot: QBOSnapshot | None = None) -> CheckOutcome:
    """Landed rows of ``entity`` against QBO: the count, then the Id set and Active flags.

    Args:
        engine: the warehouse.
        client: a QBO client for the company.
        company_key: the company partition.
        entity: a registry entity (``Invoice``, ``Customer``...).
        list_ids_up_to: compare Id sets whenever QBO has at most this many rows; above it, only
            when the counts differ (listing ids costs one API call per 1000 rows).
        snapshot: a :class:`QBOSnapshot` already fetched (then no extra API call is made).

    Returns:
        Failed when counts, ids or active flags differ; mismatches name each id and the problem.
    """
    ent = registry.get(entity)
    wt = WarehouseTable(engine, ent.name)
    active_col = wt.col("is_active", required=False)
    cols = [wt.table.c.id] + ([active_col] if active_col is not None else [])
    with connect(engine) as conn:
        wh_count = conn.execute(sa.select(sa.func.count()).select_from(wt.table)
                                .where(wt.where_live(company_key))).scalar_one()
    qbo_count = len(snapshot.active) if snapshot is not None else client.count(ent.name, _all_rows_where(ent.name))
    metadata: dict[str, Any] = {"entity": ent.name, "warehouse_rows": int(wh_count), "qbo_rows": int(qbo_count)}
    mismatches: list[dict[str, Any]] = []
    compare_ids = snapshot is not None or qbo_count <= list_ids_up_to or wh_count != qbo_count
    metadata["ids_compared"] = compare_ids
    if compare_ids:
        snap = snapshot or qbo_snapshot(client, ent.name)
        metadata["qbo_pages"] = snap.pages
        with connect(engine) as conn:
            landed = {str(r[0]): (r[1] if len(r) > 1 else None)
                      for r in conn.execute(sa.select(*cols).where(wt.where_live(company_key)))}
        missing = sorted(set(snap.active) - set(landed), key=id_order)
        extra = sorted(set(landed) - set(snap.active), key=id_order)
        metadata.update(missing_in_warehouse=len(missing), not_in_qbo=len(extra))
        mismatches += [{"id": i, "problem": "in QBO, missing from the warehouse"} for i in missing]
        mismatches += [{"id": i, "problem": "in the warehouse, not in QBO (deleted there?)"} for i in extra]
        if ent.is_name_list and active_col is not None:
            flips = sorted((i for i in set(landed) & set(snap.active)
                            if landed[i] is not None and bool(landed[i]) != snap.active[i]), key=id_order)
            metadata["active_flag_differs"] = len(flips)
            mismatches += [{"id": i, "problem": "Active differs", "warehouse": bool(landed[i]),
                            "qbo": snap.active[i]} for i in flips]
    elif wh_count != qbo_count:  # pragma: no cover - compare_ids is True whenever counts differ
        mismatches.append({"problem": "row counts differ", "warehouse": wh_count, "qbo": qbo_count})
    if wh_count != qbo_count and not mismatches:
        mismatches.append({"problem": "row counts differ", "warehouse": int(wh_count), "qbo": int(qbo_count)})
    ok = not mismatches
    return make_outcome(
        ok,
        f"{ent.name}: {wh_count} rows landed, as QBO has",
        f"{ent.name}: warehouse has {wh_count} rows, QBO {qbo_count}; {len(mismatches)} ids differ",
        metadata, mismatches, full_refresh_fix(company_key, [ent.name]),
    )


def transaction_totals(engine: Engine | Connection, client: QBOReader, company_key: str, entity: str, *,
                       snapshot: QBOSnapshot | None = None) -> CheckOutcome:
    """SUM(TotalAmt) (a transfer's ``Amount``) and SUM(Balance) of a transaction entity against QBO,
    compared per id.

    QBO has no SUM in its query language, so QBO's side is summed over its query pages (or taken
    from ``snapshot``). The open balance is compared too for the documents whose balance QBO
    maintains (the registry's ``balance_field``: invoices, credit memos, bills, vendor credits).

    Returns:
        Failed when a total differs; mismatches name the id, the field and both amounts.
    """
    ent = registry.get(entity)
    if not ent.is_transaction:
        raise ValueError(f"{ent.name} is not a transaction; transaction totals apply to transactions only")
    wt = WarehouseTable(engine, ent.name)
    total_col = wt.col(warehouse.column_name(ent.total_field), required=False)
    balance_col = wt.col(warehouse.column_name(ent.balance_field), required=False) if ent.balance_field else None
    snap = snapshot or qbo_snapshot(client, ent.name)
    wh_total: dict[str, int] = {}
    wh_balance: dict[str, int] = {}
    if total_col is not None:
        cols = [wt.table.c.id, total_col] + ([balance_col] if balance_col is not None else [])
        with connect(engine) as conn:
            for row in conn.execute(sa.select(*cols).where(wt.where_live(company_key))):
                wh_total[str(row[0])] = cents(row[1])
                if balance_col is not None:
                    wh_balance[str(row[0])] = cents(row[2])
    mismatches = [{**m, "field": ent.total_field} for m in compare_amounts(wh_total, snap.total_amt)]
    metadata: dict[str, Any] = {
        "entity": ent.name,
        "warehouse_total_amt": dollars(sum(wh_total.values())),
        "qbo_total_amt": dollars(sum(snap.total_amt.values())),
        "qbo_pages": snap.pages,
    }
    if balance_col is not None:
        qbo_balance = {i: snap.balance.get(i, 0) for i in snap.ids}
        mismatches += [{**m, "field": "Balance"} for m in compare_amounts(wh_balance, qbo_balance)]
        metadata.update(warehouse_balance=dollars(sum(wh_balance.values())),
                        qbo_balance=dollars(sum(qbo_balance.values())))
    ok = not mismatches
    text = f"{ent.total_field} {metadata['warehouse_total_amt']:.2f}"
    if balance_col is not None:
        text += f", Balance {metadata['warehouse_balance']:.2f}"
    return make_outcome(
        ok,
        f"{ent.name}: {text} equal QBO's",
        f"{ent.name}: {len(mismatches)} amounts differ from QBO (warehouse {ent.total_field} "
        f"{metadata['warehouse_total_amt']:.2f} vs QBO {metadata['qbo_total_amt']:.2f})",
        metadata, mismatches, full_refresh_fix(company_key, [ent.name]),
    )
