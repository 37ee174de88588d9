"""Reconciliation: prove that what landed in the warehouse is what QuickBooks holds.

Each function compares one thing the warehouse says with what QBO says and returns a
:class:`CheckOutcome` (passed, a one-line description, figures in ``metadata``, the first
:data:`MAX_MISMATCHES` mismatching ids and amounts, and what would fix it). The Dagster layer
wraps them as asset checks; nothing here knows about Dagster.

Checks and what they cost in QBO API calls (a company of N rows of an entity):

* :func:`completeness` -- rows per entity (active and inactive, not deleted) against QBO's
  ``COUNT(*)`` (1 call; name lists add ``Active IN (true, false)`` because QBO counts only active
  rows otherwise), then the Id sets (N/1000 query pages) -- always up to ``list_ids_up_to`` rows,
  and above that only when the counts differ, since listing ids costs as much as a full load.
* :func:`transaction_totals` -- ``SUM(TotalAmt)`` and ``SUM(Balance)`` against QBO, per id. QBO's
  query language has no SUM, so the QBO side is summed over the query pages (N/1000 calls). We
  chose that over comparing with reports because only per-id amounts can *name* the tampered or
  stale row; the report checks below cover the aggregate view for free. Pass one
  :class:`QBOSnapshot` to both :func:`completeness` and :func:`transaction_totals` to pay once.
* Against reports already fetched (0 extra calls; pass the JSON or the flattened DataFrame):

  - :func:`open_receivables`: the A/R sub-ledger computed from landed rows (open invoice
    balances, less credit memos' remaining credit and payments' unapplied amounts, plus journal
    entry lines on A/R accounts) per customer against AgedReceivables, and in total against the
    BalanceSheet's A/R section (group ``AR``);
  - :func:`customer_balances`: ``qbo_customer.balance`` per customer against CustomerBalance;
  - :func:`trial_balance`: a trial balance computed from the landed transactions with
    QuickBooks' posting rules (:func:`postings`) against QBO's TrialBalance, per account;
  - :func:`profit_and_loss`: income, COGS, expenses, other income/expenses and net income computed
    the same way against ProfitAndLoss (and the accounts that differ).

The A/R and customer checks compare *current* balances (the warehouse holds today's Balance of
each document), so run them on the latest month's reports, whose report date is on or after
the last transaction; older months' as-of figures legitimately differ.

The posting rules re-implement how QuickBooks Online books each transaction (reference §7),
from the raw JSON as QBO returns it: sync never imports the emulator, and the emulator's ledger
must agree with QBO, not the other way round. Inventory cost of goods sold uses each item's
current ``PurchaseCost`` (QBO uses FIFO layers, which the API does not expose); companies with
changing inventory costs see COGS/Inventory differences in :func:`trial_balance` that are not
landing faults.
"""

from __future__ import annotations

import calendar
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Protocol

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from qb_pipelines.qbo import registry
from qb_pipelines.store import warehouse
from qb_pipelines.sync import reports as report_mod

#: How many mismatching ids/amounts a failed check lists.
MAX_MISMATCHES = 20
#: Money tolerance: amounts are compared in cents, so equal means within half a cent.
TOLERANCE_CENTS = 0
#: Transactions that post to the books (Estimate, PurchaseOrder, TimeActivity do not).
POSTING_ENTITIES: tuple[str, ...] = (
    "Invoice", "Payment", "SalesReceipt", "CreditMemo", "RefundReceipt", "Bill", "BillPayment",
    "VendorCredit", "Purchase", "Deposit", "JournalEntry",
)
#: Transactions whose ``Balance`` QBO maintains (open documents).
BALANCE_ENTITIES: frozenset[str] = frozenset({"Invoice", "CreditMemo", "Bill", "VendorCredit"})


# =============================================================================================
# Outcome
# =============================================================================================


@dataclass
class CheckOutcome:
    """The result of one reconciliation or quality check.

    Attributes:
        passed: True when the warehouse agrees with QBO.
        description: one line a data engineer reads in the Dagster UI.
        metadata: figures on both sides (counts, totals), JSON-serialisable.
        mismatches: the first :data:`MAX_MISMATCHES` mismatching ids and amounts.
        fix: what would fix a failure (empty when passed).
    """

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for logs, JSON and Dagster metadata)."""
        return {"passed": self.passed, "description": self.description, "metadata": self.metadata,
                "mismatches": self.mismatches, "fix": self.fix}


def full_refresh_fix(company_key: str, entities: Iterable[str]) -> str:
    """The fix for landed rows that drifted from QBO: a full refresh of that partition."""
    names = ",".join(dict.fromkeys(entities))
    return (f"run a full refresh of partition {company_key} for {names}: "
            f"qb-pipelines sync --company {company_key} --full --entities {names}")


def _outcome(ok: bool, passed_text: str, failed_text: str, metadata: dict[str, Any],
             mismatches: list[dict[str, Any]], fix: str) -> CheckOutcome:
    metadata = {**metadata, "mismatch_count": len(mismatches)}
    return CheckOutcome(ok, passed_text if ok else failed_text, metadata, mismatches[:MAX_MISMATCHES],
                        "" if ok else fix)


# =============================================================================================
# Money helpers (integer cents: exact sums, no float drift)
# =============================================================================================


def cents(value: Any) -> int:
    """Money as integer cents (QBO sends floats or decimal strings; blanks are 0)."""
    if value is None or value == "":
        return 0
    if isinstance(value, Decimal):
        return int((value * 100).to_integral_value())
    try:
        if isinstance(value, float) and value != value:  # NaN
            return 0
        return round(float(value) * 100)
    except (TypeError, ValueError):
        return 0


def dollars(value_cents: int) -> float:
    """Cents back to a two-decimal amount for metadata and messages."""
    return round(value_cents / 100, 2)


def compare_amounts(warehouse: Mapping[str, int], qbo: Mapping[str, int], *, key_name: str = "id",
                    tolerance: int = TOLERANCE_CENTS, labels: Mapping[str, str] | None = None
                    ) -> list[dict[str, Any]]:
    """Ids whose amounts (in cents) differ between the two sides; a missing side counts as 0.

    Returns mismatches sorted by the size of the difference (largest first), each
    ``{key_name, "warehouse", "qbo", "difference"}`` in dollars (plus ``name`` when labelled).
    """
    out = []
    for ident in set(warehouse) | set(qbo):
        w, q = warehouse.get(ident, 0), qbo.get(ident, 0)
        if abs(w - q) > tolerance:
            row: dict[str, Any] = {key_name: ident, "warehouse": dollars(w), "qbo": dollars(q),
                                   "difference": dollars(w - q)}
            if labels and ident in labels:
                row["name"] = labels[ident]
            out.append(row)
    out.sort(key=lambda r: (-abs(r["difference"]), str(r[key_name])))
    return out


# =============================================================================================
# Warehouse access (tables written by store/warehouse.py: qbo_<snake entity>)
# =============================================================================================


_COLUMN_CANDIDATES = {
    "raw": ("raw",),
    "is_deleted": ("is_deleted",),
    "is_active": ("is_active",),
    "total_amt": ("total_amt",),
    "balance": ("balance",),
    "txn_date": ("txn_date",),
    "customer": ("customer_ref_id",),
}


class WarehouseTable:
    """One landed entity table (``store.warehouse.tables_for``), with its columns by role."""

    def __init__(self, engine: Engine | Connection, entity: str) -> None:
        self.entity = registry.get(entity).name
        self.table, self.child = warehouse.tables_for(self.entity)
        self._names = {c.name for c in self.table.columns}

    def col(self, role: str, required: bool = True) -> sa.ColumnElement | None:
        for name in _COLUMN_CANDIDATES.get(role, (role,)):
            if name in self._names:
                return self.table.c[name]
        if required:
            raise LookupError(f"warehouse table {self.table.name} has no {role} column")
        return None

    def where_live(self, company_key: str) -> sa.ColumnElement[bool]:
        """This company's rows that QBO still has (not deleted; inactive ones included)."""
        return (self.table.c.company_key == company_key) & (self.table.c.is_deleted == sa.false())


def _connect(engine: Engine | Connection) -> Any:
    """A context manager yielding a connection (borrowing one that is already open)."""
    if isinstance(engine, Connection):
        from contextlib import nullcontext

        return nullcontext(engine)
    return engine.connect()


def _load(raw: Any) -> dict:
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw).decode()
    return json.loads(raw)


def landed_bodies(engine: Engine | Connection, company_key: str, entity: str, *, chunk: int = 2000
                  ) -> Iterator[dict]:
    """The raw QBO bodies of one entity's live rows for one company, streamed in chunks."""
    wt = WarehouseTable(engine, entity)
    query = sa.select(wt.col("raw")).where(wt.where_live(company_key))
    with _connect(engine) as conn:
        # Statement-level streaming: a borrowed connection's own options stay untouched.
        for (raw,) in conn.execute(query.execution_options(stream_results=True, yield_per=chunk)):
            yield _load(raw)


def _table_exists(engine: Engine | Connection, entity: str) -> bool:
    """Whether the entity's table exists in this database (nothing landed otherwise)."""
    return sa.inspect(engine).has_table(warehouse.table_name(entity))


# =============================================================================================
# QBO access
# =============================================================================================


class QBOReader(Protocol):
    """What the checks need from ``qbo.client.QBOClient``."""

    def count(self, entity: str, where: str | None = None) -> int: ...

    def query_pages(self, entity: str, where: str | None = None, order_by: str | None = None,
                    page_size: int = 1000) -> Iterator[list[dict]]: ...


def _all_rows_where(entity: str) -> str | None:
    """Name lists: QBO returns (and counts) only active rows unless Active is mentioned (§2.1)."""
    return "Active IN (true, false)" if registry.get(entity).is_name_list else None


@dataclass
class QBOSnapshot:
    """What QBO holds for one entity, kept small: per id its Active flag, TotalAmt and Balance.

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
    name = registry.get(entity).name
    snap = QBOSnapshot(name)
    for page in client.query_pages(name, where=_all_rows_where(name)):
        snap.pages += 1
        for row in page:
            ident = str(row.get("Id"))
            snap.active[ident] = row.get("Active", True) is not False
            if "TotalAmt" in row:
                snap.total_amt[ident] = cents(row.get("TotalAmt"))
            if "Balance" in row:
                snap.balance[ident] = cents(row.get("Balance"))
    return snap


# =============================================================================================
# Completeness and transaction totals
# =============================================================================================


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
    with _connect(engine) as conn:
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
        with _connect(engine) as conn:
            landed = {str(r[0]): (r[1] if len(r) > 1 else None)
                      for r in conn.execute(sa.select(*cols).where(wt.where_live(company_key)))}
        missing = sorted(set(snap.active) - set(landed), key=_id_order)
        extra = sorted(set(landed) - set(snap.active), key=_id_order)
        metadata.update(missing_in_warehouse=len(missing), not_in_qbo=len(extra))
        mismatches += [{"id": i, "problem": "in QBO, missing from the warehouse"} for i in missing]
        mismatches += [{"id": i, "problem": "in the warehouse, not in QBO (deleted there?)"} for i in extra]
        if ent.is_name_list and active_col is not None:
            flips = sorted((i for i in set(landed) & set(snap.active)
                            if landed[i] is not None and bool(landed[i]) != snap.active[i]), key=_id_order)
            metadata["active_flag_differs"] = len(flips)
            mismatches += [{"id": i, "problem": "Active differs", "warehouse": bool(landed[i]),
                            "qbo": snap.active[i]} for i in flips]
    elif wh_count != qbo_count:  # pragma: no cover - compare_ids is True whenever counts differ
        mismatches.append({"problem": "row counts differ", "warehouse": wh_count, "qbo": qbo_count})
    if wh_count != qbo_count and not mismatches:
        mismatches.append({"problem": "row counts differ", "warehouse": int(wh_count), "qbo": int(qbo_count)})
    ok = not mismatches
    return _outcome(
        ok,
        f"{ent.name}: {wh_count} rows landed, as QBO has",
        f"{ent.name}: warehouse has {wh_count} rows, QBO {qbo_count}; {len(mismatches)} ids differ",
        metadata, mismatches, full_refresh_fix(company_key, [ent.name]),
    )


def _id_order(ident: str) -> tuple[int, str]:
    return (int(ident), "") if str(ident).isdigit() else (1 << 62, str(ident))


def transaction_totals(engine: Engine | Connection, client: QBOReader, company_key: str, entity: str, *,
                       snapshot: QBOSnapshot | None = None) -> CheckOutcome:
    """SUM(TotalAmt) and SUM(Balance) of a transaction entity against QBO, compared per id.

    QBO has no SUM in its query language, so QBO's side is summed over its query pages (or taken
    from ``snapshot``). Balance is compared for the entities whose Balance QBO maintains
    (Invoice, CreditMemo, Bill, VendorCredit).

    Returns:
        Failed when a total differs; mismatches name the id, the field and both amounts.
    """
    ent = registry.get(entity)
    if not ent.is_transaction:
        raise ValueError(f"{ent.name} is not a transaction; transaction totals apply to transactions only")
    wt = WarehouseTable(engine, ent.name)
    total_col = wt.col("total_amt", required=False)
    balance_col = wt.col("balance", required=False) if ent.name in BALANCE_ENTITIES else None
    snap = snapshot or qbo_snapshot(client, ent.name)
    wh_total: dict[str, int] = {}
    wh_balance: dict[str, int] = {}
    if total_col is not None:
        cols = [wt.table.c.id, total_col] + ([balance_col] if balance_col is not None else [])
        with _connect(engine) as conn:
            for row in conn.execute(sa.select(*cols).where(wt.where_live(company_key))):
                wh_total[str(row[0])] = cents(row[1])
                if balance_col is not None:
                    wh_balance[str(row[0])] = cents(row[2])
    mismatches = [{**m, "field": "TotalAmt"} for m in compare_amounts(wh_total, snap.total_amt)]
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
    text = f"TotalAmt {metadata['warehouse_total_amt']:.2f}"
    if balance_col is not None:
        text += f", Balance {metadata['warehouse_balance']:.2f}"
    return _outcome(
        ok,
        f"{ent.name}: {text} equal QBO's",
        f"{ent.name}: {len(mismatches)} amounts differ from QBO (warehouse TotalAmt "
        f"{metadata['warehouse_total_amt']:.2f} vs QBO {metadata['qbo_total_amt']:.2f})",
        metadata, mismatches, full_refresh_fix(company_key, [ent.name]),
    )


# =============================================================================================
# Posting rules: what QuickBooks books for each transaction (accrual basis)
# =============================================================================================


@dataclass(frozen=True)
class AccountInfo:
    """One landed account: where it sits on the statements."""

    id: str
    name: str
    account_type: str
    subtype: str
    classification: str


# Statement sections by AccountType (QBO's chart of accounts).
_PL_GROUPS = {"Income": "Income", "Cost of Goods Sold": "COGS", "Expense": "Expenses",
              "Other Income": "OtherIncome", "Other Expense": "OtherExpenses"}
_BY_CLASSIFICATION = {"Asset": "Other Current Asset", "Liability": "Other Current Liability", "Equity": "Equity",
                      "Revenue": "Income", "Expense": "Expense"}
_KNOWN_TYPES = {"Bank", "Accounts Receivable", "Other Current Asset", "Fixed Asset", "Other Asset",
                "Accounts Payable", "Credit Card", "Other Current Liability", "Long Term Liability", "Equity",
                *_PL_GROUPS}


class Chart:
    """The company's landed chart of accounts, and the default accounts QBO books to when a
    transaction does not name one (found by type and detail type, as QBO does)."""

    def __init__(self, accounts: Iterable[dict]) -> None:
        self.accounts: dict[str, AccountInfo] = {}
        self._defaults: dict[str, str | None] = {}
        for body in accounts:
            classification = body.get("Classification") or "Asset"
            account_type = body.get("AccountType") or ""
            if account_type not in _KNOWN_TYPES:
                account_type = _BY_CLASSIFICATION.get(classification, "Other Current Asset")
            ident = str(body.get("Id"))
            self.accounts[ident] = AccountInfo(ident, body.get("FullyQualifiedName") or body.get("Name") or ident,
                                               account_type, body.get("AccountSubType") or "", classification)

    def _find(self, *, subtype: str | None = None, account_type: str | None = None, name: str | None = None
              ) -> str | None:
        matches = [a for a in self.accounts.values()
                   if (subtype is None or a.subtype == subtype) and (account_type is None or a.account_type == account_type)
                   and (name is None or a.name.lower() == name.lower())]
        return min((a.id for a in matches), key=_id_order) if matches else None

    def default(self, role: str) -> str | None:
        """The account QBO uses for ``role`` when the transaction names none (memoised: it is
        asked for every posting)."""
        if role not in self._defaults:
            self._defaults[role] = self._resolve_default(role)
        return self._defaults[role]

    def _resolve_default(self, role: str) -> str | None:
        finders: dict[str, list[Callable[[], str | None]]] = {
            "ar": [lambda: self._find(account_type="Accounts Receivable")],
            "ap": [lambda: self._find(account_type="Accounts Payable")],
            "undeposited": [lambda: self._find(subtype="UndepositedFunds")],
            "income": [lambda: self._find(account_type="Income", name="Services"),
                       lambda: self._find(account_type="Income")],
            "discount": [lambda: self._find(subtype="DiscountsRefundsGiven", name="Discounts given"),
                         lambda: self._find(subtype="DiscountsRefundsGiven")],
            "sales_tax": [lambda: self._find(subtype="GlobalTaxPayable"), lambda: self._find(subtype="SalesTaxPayable")],
            "cogs": [lambda: self._find(account_type="Cost of Goods Sold")],
            "inventory": [lambda: self._find(subtype="Inventory")],
            "checking": [lambda: self._find(account_type="Bank", subtype="Checking"),
                         lambda: self._find(account_type="Bank")],
            "card": [lambda: self._find(account_type="Credit Card")],
            "opening_equity": [lambda: self._find(subtype="OpeningBalanceEquity")],
            "retained": [lambda: self._find(subtype="RetainedEarnings")],
        }
        for finder in finders[role]:
            found = finder()
            if found is not None:
                return found
        return None

    def get(self, ident: str) -> AccountInfo:
        return self.accounts.get(ident) or AccountInfo(ident, f"Account {ident}", "Other Current Asset", "", "Asset")

    def ids_of_type(self, account_type: str) -> set[str]:
        return {a.id for a in self.accounts.values() if a.account_type == account_type}

    def pl_group(self, ident: str) -> str | None:
        return _PL_GROUPS.get(self.get(ident).account_type)


@dataclass(frozen=True)
class Posting:
    """One general-ledger line: account, amount in cents (debit positive), the customer/vendor."""

    account_id: str
    cents: int
    customer_id: str | None = None
    vendor_id: str | None = None


class UnbalancedTransaction(ValueError):
    """A landed transaction whose debits and credits differ (its totals disagree with its lines)."""


def _ref(obj: Any, *path: str) -> str | None:
    cur = obj
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    if isinstance(cur, dict):
        cur = cur.get("value")
    return str(cur) if cur not in (None, "") else None


def _lines(body: dict) -> Iterator[dict]:
    """Every line, bundles (GroupLineDetail) expanded into their component lines."""
    for line in body.get("Line") or []:
        if not isinstance(line, dict):
            continue
        if line.get("DetailType") == "GroupLineDetail":
            yield from (sub for sub in (line.get("GroupLineDetail") or {}).get("Line") or [] if isinstance(sub, dict))
        else:
            yield line


class _Entry:
    """Postings of one transaction, in cents, checked to balance."""

    def __init__(self, customer_id: str | None = None, vendor_id: str | None = None) -> None:
        self.rows: list[Posting] = []
        self.customer_id, self.vendor_id = customer_id, vendor_id

    def post(self, account: str | None, amount: int, default: str | None, *, customer_id: str | None = None,
             vendor_id: str | None = None) -> None:
        if amount == 0:
            return
        self.rows.append(Posting(str(account or default or "?"), amount, customer_id or self.customer_id,
                                 vendor_id or self.vendor_id))

    def result(self, entity: str, body: dict, sign: int = 1) -> list[Posting]:
        total = sum(p.cents for p in self.rows)
        if total != 0:
            raise UnbalancedTransaction(f"{entity} {body.get('Id')} does not balance by {dollars(total):.2f}")
        return [Posting(p.account_id, sign * p.cents, p.customer_id, p.vendor_id) for p in self.rows]


def _is_inventory(item: dict | None) -> bool:
    return bool(item) and item.get("Type") == "Inventory" and bool(item.get("TrackQtyOnHand", True))


def _party(kind: str | None, ident: str | None) -> tuple[str | None, str | None]:
    if kind == "Customer":
        return ident, None
    if kind == "Vendor":
        return None, ident
    return None, None


def postings(entity: str, body: dict, chart: Chart, items: Mapping[str, dict],
             tax_accounts: Mapping[str, str] | None = None) -> list[Posting]:
    """The general-ledger postings of one landed transaction, as QuickBooks books it (accrual).

    * Invoice: Dr A/R TotalAmt; Cr each item's income account; Dr discounts; Cr sales tax
      payable; inventory items also Dr COGS / Cr Inventory Asset at the item's cost.
    * SalesReceipt: as an invoice, debiting the deposit account (Undeposited Funds by default).
    * CreditMemo, RefundReceipt: the reverse of Invoice and SalesReceipt.
    * Payment: Dr the deposit account, Cr A/R. Deposit: Dr the bank; Cr Undeposited Funds for
      deposited payments and receipts, the line's account otherwise.
    * Bill: Cr A/P, Dr each line (the item's asset account for inventory). VendorCredit: reverse.
    * BillPayment: Dr A/P, Cr the bank (check) or the card. Purchase: Cr the paying account, Dr
      the lines (reversed for a refund, ``Credit: true``). JournalEntry: each line as posted.
    * Voided transactions (PrivateNote "Voided...") and deleted ones post nothing.

    Args:
        entity: QBO entity name.
        body: the transaction's raw JSON as landed.
        chart: the company's accounts (defaults when a body names no account).
        items: landed items by Id (income, expense and asset accounts, inventory cost).
        tax_accounts: TaxRate Id -> liability account Id, when known (else sales tax payable).

    Raises:
        UnbalancedTransaction: when the body's debits and credits differ.
    """
    if body.get("status") == "Deleted" or str(body.get("PrivateNote") or "").startswith("Voided"):
        return []
    tax_accounts = tax_accounts or {}
    if entity in ("Invoice", "SalesReceipt", "CreditMemo", "RefundReceipt"):
        if entity in ("Invoice", "CreditMemo"):
            debit = _ref(body, "ARAccountRef") or chart.default("ar")
        else:
            debit = _ref(body, "DepositToAccountRef") or chart.default("undeposited")
        rows = _sales(entity, body, chart, items, tax_accounts, debit)
        if entity in ("CreditMemo", "RefundReceipt"):
            return [Posting(p.account_id, -p.cents, p.customer_id, p.vendor_id) for p in rows]
        return rows
    if entity == "Payment":
        e = _Entry(customer_id=_ref(body, "CustomerRef"))
        total = cents(body.get("TotalAmt"))
        e.post(_ref(body, "DepositToAccountRef"), total, chart.default("undeposited"))
        e.post(_ref(body, "ARAccountRef"), -total, chart.default("ar"))
        return e.result(entity, body)
    if entity in ("Bill", "VendorCredit"):
        sign = 1 if entity == "Bill" else -1
        e = _Entry(vendor_id=_ref(body, "VendorRef"))
        e.post(_ref(body, "APAccountRef"), -sign * cents(body.get("TotalAmt")), chart.default("ap"))
        _expense_lines(e, body, chart, items, sign)
        return e.result(entity, body)
    if entity == "BillPayment":
        e = _Entry(vendor_id=_ref(body, "VendorRef"))
        total = cents(body.get("TotalAmt"))
        e.post(_ref(body, "APAccountRef"), total, chart.default("ap"))
        if body.get("PayType") == "CreditCard" or (body.get("CreditCardPayment") and not body.get("CheckPayment")):
            e.post(_ref(body, "CreditCardPayment", "CCAccountRef"), -total, chart.default("card"))
        else:
            e.post(_ref(body, "CheckPayment", "BankAccountRef"), -total, chart.default("checking"))
        return e.result(entity, body)
    if entity == "Purchase":
        ref = body.get("EntityRef") or {}
        customer, vendor = _party(ref.get("type") or ref.get("Type") or "Vendor", _ref(body, "EntityRef"))
        e = _Entry(customer_id=customer, vendor_id=vendor)
        sign = -1 if body.get("Credit") else 1
        e.post(_ref(body, "AccountRef"), -sign * cents(body.get("TotalAmt")), chart.default("checking"))
        _expense_lines(e, body, chart, items, sign)
        return e.result(entity, body)
    if entity == "Deposit":
        e = _Entry()
        e.post(_ref(body, "DepositToAccountRef"), cents(body.get("TotalAmt")), chart.default("checking"))
        for line in _lines(body):
            amount = cents(line.get("Amount"))
            detail = line.get("DepositLineDetail") or {}
            who = detail.get("Entity") or {}
            customer, vendor = _party(who.get("type") or who.get("Type"), _ref(detail, "Entity"))
            if any((lt or {}).get("TxnType") in ("Payment", "SalesReceipt", "RefundReceipt")
                   for lt in line.get("LinkedTxn") or []):
                # Received payments wait in Undeposited Funds until they are deposited.
                e.post(chart.default("undeposited"), -amount, None, customer_id=customer, vendor_id=vendor)
            else:
                e.post(_ref(detail, "AccountRef"), -amount, chart.default("opening_equity"),
                       customer_id=customer, vendor_id=vendor)
        return e.result(entity, body)
    if entity == "JournalEntry":
        e = _Entry()
        for line in _lines(body):
            detail = line.get("JournalEntryLineDetail")
            if not isinstance(detail, dict):
                continue
            sign = -1 if detail.get("PostingType") == "Credit" else 1
            who = detail.get("Entity") or {}
            kind = who.get("Type") or who.get("type") or (who.get("EntityRef") or {}).get("type")
            customer, vendor = _party(kind, _ref(who, "EntityRef"))
            e.post(_ref(detail, "AccountRef"), sign * cents(line.get("Amount")), chart.default("opening_equity"),
                   customer_id=customer, vendor_id=vendor)
        return e.result(entity, body)
    if entity == "Transfer":
        e = _Entry()
        amount = cents(body.get("Amount"))
        e.post(_ref(body, "ToAccountRef"), amount, chart.default("checking"))
        e.post(_ref(body, "FromAccountRef"), -amount, chart.default("checking"))
        return e.result(entity, body)
    return []


def _sales(entity: str, body: dict, chart: Chart, items: Mapping[str, dict], tax_accounts: Mapping[str, str],
           debit_account: str | None) -> list[Posting]:
    e = _Entry(customer_id=_ref(body, "CustomerRef"))
    e.post(debit_account, cents(body.get("TotalAmt")), None)
    for line in _lines(body):
        kind = line.get("DetailType")
        amount = cents(line.get("Amount"))
        if kind == "SalesItemLineDetail":
            detail = line.get("SalesItemLineDetail") or {}
            item = items.get(_ref(detail, "ItemRef") or "")
            e.post(_ref(detail, "ItemAccountRef") or _ref(item, "IncomeAccountRef"), -amount, chart.default("income"))
            if _is_inventory(item):
                assert item is not None
                cost = round(float(detail.get("Qty") or 0) * float(item.get("PurchaseCost") or 0) * 100)
                e.post(_ref(item, "ExpenseAccountRef"), cost, chart.default("cogs"))
                e.post(_ref(item, "AssetAccountRef"), -cost, chart.default("inventory"))
        elif kind == "DiscountLineDetail":
            detail = line.get("DiscountLineDetail") or {}
            e.post(_ref(detail, "DiscountAccountRef"), amount, chart.default("discount"))
    tax = body.get("TxnTaxDetail") or {}
    booked = 0
    for tax_line in tax.get("TaxLine") or []:
        detail = (tax_line or {}).get("TaxLineDetail") or {}
        amount = cents(tax_line.get("Amount"))
        e.post(tax_accounts.get(_ref(detail, "TaxRateRef") or ""), -amount, chart.default("sales_tax"))
        booked += amount
    # TotalAmt includes TotalTax; any part the tax lines do not explain is still owed.
    e.post(chart.default("sales_tax"), -(cents(tax.get("TotalTax")) - booked), None)
    return e.result(entity, body)


def _expense_lines(e: _Entry, body: dict, chart: Chart, items: Mapping[str, dict], sign: int) -> None:
    for line in _lines(body):
        kind = line.get("DetailType")
        amount = sign * cents(line.get("Amount"))
        detail = (line.get(kind) or {}) if kind else {}
        customer = _ref(detail, "CustomerRef")
        if kind == "AccountBasedExpenseLineDetail":
            e.post(_ref(detail, "AccountRef"), amount, chart.default("cogs"), customer_id=customer)
        elif kind == "ItemBasedExpenseLineDetail":
            item = items.get(_ref(detail, "ItemRef") or "")
            if _is_inventory(item):
                e.post(_ref(item, "AssetAccountRef"), amount, chart.default("inventory"), customer_id=customer)
            else:
                e.post(_ref(item, "ExpenseAccountRef"), amount, chart.default("cogs"), customer_id=customer)


# =============================================================================================
# The landed ledger
# =============================================================================================


@dataclass
class LandedLedger:
    """The general ledger rebuilt from the warehouse, aggregated per account and day.

    Keeping net cents per (account, TxnDate) instead of every posting bounds memory by accounts
    x days, whatever the number of transactions.

    Attributes:
        chart: the landed chart of accounts.
        daily: net posted cents (debit positive) per ``(account_id, "YYYY-MM-DD")``, on or before ``as_of``.
        postings: how many postings were aggregated.
        unbalanced: transactions whose lines do not add up to their totals (a landing fault).
    """

    chart: Chart
    daily: dict[tuple[str, str], int]
    postings: int
    unbalanced: list[dict[str, Any]]

    def net(self, start: str | None, end: str) -> dict[str, int]:
        """Net posted cents per account (debit positive) with ``start <= TxnDate <= end``."""
        out: dict[str, int] = defaultdict(int)
        for (account, day), amount in self.daily.items():
            if day <= end and (start is None or day >= start):
                out[account] += amount
        return dict(out)


def build_ledger(engine: Engine | Connection, company_key: str, as_of: str,
                 entities: Iterable[str] = POSTING_ENTITIES) -> LandedLedger:
    """Rebuild the general ledger from the landed raw JSON of every posting transaction.

    Streams each entity's rows (raw JSON) in chunks; entities whose table does not exist yet are
    skipped (nothing landed, nothing posted).
    """
    chart = Chart(landed_bodies(engine, company_key, "Account") if _table_exists(engine, "Account") else [])
    items = ({str(b.get("Id")): b for b in landed_bodies(engine, company_key, "Item")}
             if _table_exists(engine, "Item") else {})
    tax_accounts: dict[str, str] = {}
    if _table_exists(engine, "TaxRate"):
        for rate in landed_bodies(engine, company_key, "TaxRate"):
            account = _ref(rate, "LiabilityAccountRef") or _ref(rate, "TaxPayableAccountRef")
            if account:
                tax_accounts[str(rate.get("Id"))] = account
    daily: dict[tuple[str, str], int] = defaultdict(int)
    count = 0
    unbalanced: list[dict[str, Any]] = []
    for entity in entities:
        if not _table_exists(engine, entity):
            continue
        for body in landed_bodies(engine, company_key, entity):
            txn_date = str(body.get("TxnDate") or "")
            if txn_date > as_of:
                continue
            try:
                rows = postings(entity, body, chart, items, tax_accounts)
            except UnbalancedTransaction as exc:
                unbalanced.append({"entity": entity, "id": str(body.get("Id")), "problem": str(exc),
                                   "total_amt": body.get("TotalAmt")})
                continue
            for p in rows:
                daily[(p.account_id, txn_date)] += p.cents
            count += len(rows)
    return LandedLedger(chart, dict(daily), count, unbalanced)


# =============================================================================================
# Report-based checks
# =============================================================================================


def _flat(report: dict | pd.DataFrame) -> pd.DataFrame:
    return report if isinstance(report, pd.DataFrame) else report_mod.flatten(report)


def _header(report: dict | pd.DataFrame) -> dict:
    if isinstance(report, pd.DataFrame):
        attrs = report.attrs
        return {"StartPeriod": attrs.get("start_period"), "EndPeriod": attrs.get("end_period")}
    return report_mod.unwrap(report).get("Header") or {}


def _report_end(report: dict | pd.DataFrame, df: pd.DataFrame) -> str:
    """The as-of date of a report: EndPeriod, report_date, or the value columns' last period end."""
    header = _header(report)
    if header.get("EndPeriod"):
        return str(header["EndPeriod"])
    for option in header.get("Option") or []:
        if option.get("Name") == "report_date" and option.get("Value"):
            return str(option["Value"])
    ends = [d for d in df["period_end"] if d is not None and not pd.isna(d)]
    if ends:
        return max(ends).isoformat()
    raise ValueError("the report has no end date (EndPeriod, report_date or column EndDate)")


def _to_cents_map(amounts: Mapping[str, Decimal]) -> dict[str, int]:
    return {k: cents(v) for k, v in amounts.items()}


def _labels(df: pd.DataFrame) -> dict[str, str]:
    rows = df[df["account_id"].notna()]
    return {str(i): str(label) for i, label in zip(rows["account_id"], rows["label"], strict=True)}


def landed_receivables(engine: Engine | Connection, company_key: str, as_of: str) -> dict[str, int]:
    """Open A/R per customer (cents) from landed rows dated on or before ``as_of``.

    QBO's A/R sub-ledger: open invoice balances (the typed ``balance`` column people query),
    less credit memos' remaining credit and payments' unapplied amounts, plus journal-entry
    lines on A/R accounts (from their raw JSON: journal entries are few).
    """
    per: dict[str, int] = defaultdict(int)
    cutoff = date.fromisoformat(as_of)
    sources = (("Invoice", "balance", 1), ("CreditMemo", "remaining_credit", -1), ("Payment", "unapplied_amt", -1))
    with _connect(engine) as conn:
        for entity, column, sign in sources:
            if not _table_exists(conn, entity):
                continue
            wt = WarehouseTable(conn, entity)
            value = wt.table.c[column]
            if entity == "CreditMemo":
                value = sa.func.coalesce(value, wt.table.c.balance)
            query = (sa.select(wt.table.c.customer_ref_id, sa.func.sum(value))
                     .where(wt.where_live(company_key), wt.table.c.txn_date <= cutoff,
                            wt.table.c.customer_ref_id.is_not(None))
                     .group_by(wt.table.c.customer_ref_id))
            for customer, amount in conn.execute(query):
                per[str(customer)] += sign * cents(amount)
    if _table_exists(engine, "JournalEntry"):
        chart = Chart(landed_bodies(engine, company_key, "Account") if _table_exists(engine, "Account") else [])
        ar_accounts = chart.ids_of_type("Accounts Receivable")
        for body in landed_bodies(engine, company_key, "JournalEntry"):
            if str(body.get("TxnDate") or "") > as_of:
                continue
            for p in postings("JournalEntry", body, chart, {}):
                if p.account_id in ar_accounts and p.customer_id:
                    per[p.customer_id] += p.cents
    return {k: v for k, v in per.items() if v != 0}


def _open_invoice_ids(engine: Engine | Connection, company_key: str, customers: Iterable[str], as_of: str
                      ) -> dict[str, list[str]]:
    """The open invoices of the given customers (to point at in a failed check)."""
    wanted = [c for c in customers if c != "TOTAL"]
    if not wanted or not _table_exists(engine, "Invoice"):
        return {}
    wt = WarehouseTable(engine, "Invoice")
    t = wt.table
    query = (sa.select(t.c.customer_ref_id, t.c.id)
             .where(wt.where_live(company_key), t.c.customer_ref_id.in_(wanted[:MAX_MISMATCHES]),
                    t.c.txn_date <= date.fromisoformat(as_of), t.c.balance != 0)
             .order_by(t.c.customer_ref_id, t.c.id))
    out: dict[str, list[str]] = defaultdict(list)
    with _connect(engine) as conn:
        for customer, ident in conn.execute(query):
            out[str(customer)].append(str(ident))
    return dict(out)


def _report_customer_totals(df: pd.DataFrame) -> dict[str, int]:
    column = report_mod.value_column(df)
    return {k: v for k, v in _to_cents_map(report_mod.data_amounts(df, column)).items() if v != 0}


def open_receivables(engine: Engine | Connection, company_key: str, aged_receivables: dict | pd.DataFrame,
                     balance_sheet: dict | pd.DataFrame | None = None, *, as_of: str | None = None) -> CheckOutcome:
    """Open receivables in the warehouse against AgedReceivables (per customer) and the
    BalanceSheet's A/R (in total).

    Args:
        engine: the warehouse.
        company_key: the company partition.
        aged_receivables: QBO's AgedReceivables (JSON or flattened), for the latest month.
        balance_sheet: QBO's BalanceSheet as of the same date (JSON or flattened), optional.
        as_of: the date the landed documents are cut at; default the report's date.

    Returns:
        Failed when a customer's open balance or the A/R total differs; mismatches name the
        customer, both amounts and the customer's open invoices.
    """
    aged = _flat(aged_receivables)
    as_of = as_of or _report_end(aged_receivables, aged)
    landed = landed_receivables(engine, company_key, as_of)
    reported = _report_customer_totals(aged)
    mismatches = compare_amounts(landed, reported, key_name="customer_id", labels=_labels(aged))
    open_invoices = _open_invoice_ids(engine, company_key, [m["customer_id"] for m in mismatches], as_of)
    for m in mismatches:
        m["open_invoice_ids"] = open_invoices.get(m["customer_id"], [])[:10]
    aged_total = report_mod.summary_amount(aged, "GrandTotal")
    metadata: dict[str, Any] = {"as_of": as_of, "warehouse_open_ar": dollars(sum(landed.values())),
                                "aged_receivables_total": dollars(cents(aged_total)),
                                "customers_compared": len(set(landed) | set(reported))}
    if cents(aged_total) != sum(landed.values()):
        mismatches.append({"customer_id": "TOTAL", "warehouse": dollars(sum(landed.values())),
                           "qbo": dollars(cents(aged_total)), "difference": dollars(sum(landed.values()) - cents(aged_total)),
                           "source": "AgedReceivables TOTAL"})
    if balance_sheet is not None:
        bs = _flat(balance_sheet)
        bs_ar = cents(report_mod.summary_amount(bs, "AR", report_mod.value_column(bs)) or 0)
        metadata["balance_sheet_ar"] = dollars(bs_ar)
        if bs_ar != sum(landed.values()):
            mismatches.append({"customer_id": "TOTAL", "warehouse": dollars(sum(landed.values())), "qbo": dollars(bs_ar),
                               "difference": dollars(sum(landed.values()) - bs_ar),
                               "source": "BalanceSheet Accounts Receivable"})
    ok = not mismatches
    return _outcome(
        ok,
        f"open receivables {metadata['warehouse_open_ar']:.2f} as of {as_of} equal QBO's AgedReceivables"
        + (" and balance sheet A/R" if balance_sheet is not None else ""),
        f"open receivables as of {as_of} differ from QBO for {len(mismatches)} customers/totals "
        f"(warehouse {metadata['warehouse_open_ar']:.2f}, AgedReceivables {metadata['aged_receivables_total']:.2f})",
        metadata, mismatches, full_refresh_fix(company_key, ["Invoice", "Payment", "CreditMemo", "JournalEntry"]),
    )


def customer_balances(engine: Engine | Connection, company_key: str, customer_balance: dict | pd.DataFrame
                      ) -> CheckOutcome:
    """``qbo_customer.balance`` per customer against QBO's CustomerBalance report.

    Customers the report leaves out have a zero balance in QBO.

    Returns:
        Failed when a customer's landed balance differs; mismatches name the customer and amounts.
    """
    df = _flat(customer_balance)
    wt = WarehouseTable(engine, "Customer")
    with _connect(engine) as conn:
        landed = {str(i): cents(b) for i, b in conn.execute(
            sa.select(wt.table.c.id, wt.col("balance")).where(wt.where_live(company_key)))}
    landed = {k: v for k, v in landed.items() if v != 0}
    reported = _report_customer_totals(df)
    mismatches = compare_amounts(landed, reported, key_name="customer_id", labels=_labels(df))
    metadata = {"warehouse_total": dollars(sum(landed.values())), "qbo_total": dollars(sum(reported.values())),
                "customers_with_balance": len(reported)}
    ok = not mismatches
    return _outcome(
        ok,
        f"{len(reported)} customer balances (total {metadata['qbo_total']:.2f}) equal QBO's CustomerBalance",
        f"{len(mismatches)} customer balances differ from QBO's CustomerBalance "
        f"(warehouse {metadata['warehouse_total']:.2f}, QBO {metadata['qbo_total']:.2f})",
        metadata, mismatches, full_refresh_fix(company_key, ["Customer"]),
    )


def fiscal_year_start(as_of: date, first_month: int) -> date:
    """The first day of the fiscal year containing ``as_of``."""
    year = as_of.year if as_of.month >= first_month else as_of.year - 1
    return date(year, first_month, 1)


def landed_fiscal_month(engine: Engine | Connection, company_key: str) -> int:
    """The fiscal year's first month from landed CompanyInfo (January when unknown)."""
    months = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
    if _table_exists(engine, "CompanyInfo"):
        for body in landed_bodies(engine, company_key, "CompanyInfo"):
            return months.get(str(body.get("FiscalYearStartMonth") or "January").lower(), 1)
    return 1


def computed_trial_balance(ledger: LandedLedger, as_of: str, fiscal_month: int) -> dict[str, int]:
    """Debit-positive balance per account as QBO's TrialBalance shows it on ``as_of``.

    Balance-sheet accounts carry everything to date; P&L accounts only the fiscal year to date;
    earlier years' profit sits in Retained Earnings.
    """
    fy_start = fiscal_year_start(date.fromisoformat(as_of), fiscal_month).isoformat()
    chart = ledger.chart
    retained = chart.default("retained")
    out: dict[str, int] = defaultdict(int)
    for (account, day), amount in ledger.daily.items():
        if day > as_of:
            continue
        if chart.pl_group(account) is not None:
            if day >= fy_start:
                out[account] += amount
            elif retained is not None:
                out[retained] += amount
        else:
            out[account] += amount
    return {k: v for k, v in out.items() if v != 0}


def _reported_trial_balance(df: pd.DataFrame) -> dict[str, int]:
    data = df[(df["row_type"] == "Data") & df["account_id"].notna()]
    out: dict[str, int] = defaultdict(int)
    for ident, key, amount in zip(data["account_id"], data["column_key"], data["amount"], strict=True):
        if amount is None or pd.isna(amount):
            continue
        sign = -1 if str(key).lower() == "credit" else 1
        out[str(ident)] += sign * cents(amount)
    return {k: v for k, v in out.items() if v != 0}


def trial_balance(engine: Engine | Connection, company_key: str, trial_balance_report: dict | pd.DataFrame, *,
                  fiscal_year_start_month: int | None = None, ledger: LandedLedger | None = None) -> CheckOutcome:
    """A trial balance computed from the landed transactions against QBO's TrialBalance.

    Args:
        engine: the warehouse.
        company_key: the company partition.
        trial_balance_report: QBO's TrialBalance (JSON or flattened) for the month.
        fiscal_year_start_month: 1-12; default from landed CompanyInfo (else January).
        ledger: a :class:`LandedLedger` already built (shared with :func:`profit_and_loss`).

    Returns:
        Failed when an account's debit-positive balance differs; mismatches name the account and
        both amounts. Transactions whose lines do not balance are listed too.
    """
    df = _flat(trial_balance_report)
    as_of = _report_end(trial_balance_report, df)
    fiscal_month = fiscal_year_start_month or landed_fiscal_month(engine, company_key)
    ledger = ledger or build_ledger(engine, company_key, as_of)
    computed = computed_trial_balance(ledger, as_of, fiscal_month)
    reported = _reported_trial_balance(df)
    labels = {**{a.id: a.name for a in ledger.chart.accounts.values()}, **_labels(df)}
    mismatches = compare_amounts(computed, reported, key_name="account_id", labels=labels)
    mismatches = [{**m, "source": "TrialBalance (debit positive)"} for m in mismatches]
    mismatches += ledger.unbalanced
    debits = sum(v for v in computed.values() if v > 0)
    metadata = {"as_of": as_of, "accounts_compared": len(set(computed) | set(reported)),
                "warehouse_debits": dollars(debits), "qbo_debits": dollars(sum(v for v in reported.values() if v > 0)),
                "postings": ledger.postings, "unbalanced_transactions": len(ledger.unbalanced)}
    ok = not mismatches
    entities = sorted({m["entity"] for m in ledger.unbalanced}) or list(POSTING_ENTITIES)
    return _outcome(
        ok,
        f"trial balance as of {as_of} from {ledger.postings} landed postings equals QBO's "
        f"({metadata['qbo_debits']:.2f} debits)",
        f"trial balance as of {as_of} from landed transactions differs from QBO's on {len(mismatches)} accounts",
        metadata, mismatches, full_refresh_fix(company_key, ["Account", "Item", *entities]),
    )


_PL_SIGN = {"Income": -1, "COGS": 1, "Expenses": 1, "OtherIncome": -1, "OtherExpenses": 1}


def computed_profit_and_loss(ledger: LandedLedger, start: str, end: str) -> tuple[dict[str, int], dict[str, int]]:
    """(group totals incl. ``NetIncome``, per-account amounts in the statement's sign) for a period."""
    per_account: dict[str, int] = defaultdict(int)
    groups: dict[str, int] = dict.fromkeys(_PL_SIGN, 0)
    for account, amount in ledger.net(start, end).items():
        group = ledger.chart.pl_group(account)
        if group is None:
            continue
        value = _PL_SIGN[group] * amount
        per_account[account] += value
        groups[group] += value
    groups["NetIncome"] = (groups["Income"] - groups["COGS"] - groups["Expenses"]
                           + groups["OtherIncome"] - groups["OtherExpenses"])
    return groups, {k: v for k, v in per_account.items() if v != 0}


def profit_and_loss(engine: Engine | Connection, company_key: str, profit_and_loss_report: dict | pd.DataFrame, *,
                    ledger: LandedLedger | None = None) -> CheckOutcome:
    """Income, COGS, expenses, other income/expenses and net income computed from the landed
    transactions against QBO's ProfitAndLoss for the same period (its Total column).

    Returns:
        Failed when a total differs; mismatches name the totals and the accounts that differ.
    """
    df = _flat(profit_and_loss_report)
    header = _header(profit_and_loss_report)
    start = header.get("StartPeriod")
    end = header.get("EndPeriod") or _report_end(profit_and_loss_report, df)
    if not start:
        starts = [d for d in df["period_start"] if d is not None and not pd.isna(d)]
        start = min(starts).isoformat() if starts else None
    ledger = ledger or build_ledger(engine, company_key, end)
    groups, per_account = computed_profit_and_loss(ledger, start, end)
    column = report_mod.value_column(df)
    reported_groups = {g: cents(report_mod.summary_amount(df, g, column) or 0) for g in (*_PL_SIGN, "NetIncome")}
    mismatches = [{**m, "source": "ProfitAndLoss total"}
                  for m in compare_amounts(groups, reported_groups, key_name="total")]
    totals_ok = not mismatches
    reported_accounts = {k: v for k, v in _to_cents_map(report_mod.data_amounts(df, column)).items() if v != 0}
    labels = {**{a.id: a.name for a in ledger.chart.accounts.values()}, **_labels(df)}
    account_diffs = compare_amounts(per_account, reported_accounts, key_name="account_id", labels=labels)
    mismatches += [{**m, "source": "ProfitAndLoss account"} for m in account_diffs]
    metadata = {"start": start, "end": end, **{f"warehouse_{g.lower()}": dollars(v) for g, v in groups.items()},
                **{f"qbo_{g.lower()}": dollars(v) for g, v in reported_groups.items()}}
    ok = totals_ok and not account_diffs
    return _outcome(
        ok,
        f"P&L {start}..{end} from landed transactions equals QBO's: income {dollars(groups['Income']):.2f}, "
        f"expenses {dollars(groups['Expenses']):.2f}, net income {dollars(groups['NetIncome']):.2f}",
        f"P&L {start}..{end} from landed transactions differs from QBO's: net income "
        f"{dollars(groups['NetIncome']):.2f} vs {dollars(reported_groups['NetIncome']):.2f}",
        metadata, mismatches, full_refresh_fix(company_key, ["Account", "Item", *POSTING_ENTITIES]),
    )
