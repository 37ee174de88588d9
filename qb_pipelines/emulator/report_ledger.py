"""GeneralLedger: every posting of the period, account by account, with beginning and running balances.

The shape QBO serves (reference §8 and the GeneralLedger API reference; the default columns are
the ones clients read by ``ColKey``: ``tx_date``, ``txn_type``, ``doc_num``, ``name``, ``memo``,
``split_acc``, ``subt_nat_amount``, ``rbal_nat_amount``):

* one ``Section`` per account with activity in the period or a balance at its start; its
  ``Header`` names the account (``id`` = Account Id); its rows are a ``Beginning Balance`` row
  (the running-balance column holds the balance the period starts from), then one ``Data`` row
  per posting in date order (the transaction type's cell carries the transaction's Id, the
  split names the other account, or ``-Split-`` when there are several); its ``Summary`` is
  ``Total for <account>`` with the period's activity (sub-accounts' included);
* sub-accounts are sections inside their parent's section, after the parent's own rows;
* amounts are in the account's natural sign (``nat``): a debit raises an asset or an expense, a
  credit a liability, equity or income; so the running balance reads like the balance sheet;
* balance-sheet accounts begin with everything before the period; income and expense accounts
  with the fiscal year to date (as QBO's trial balance counts them);
* parameters: ``start_date``/``end_date``/``date_macro`` (this year to date by default),
  ``account`` (comma-separated Ids), ``customer``, ``vendor``, ``columns`` (any of the keys below).

Approximations: accrual basis only (``accounting_method=Cash`` answers a validation fault);
one row per posting (QBO shows one per transaction line, which is the same except where a line
books two postings, as an inventory sale's cost does). Where the Summary puts the ending
balance, and where a parent's own rows sit among its sub-accounts, are not documented
**[uncertain]**: the Balance cell of a Summary is left blank here.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from qb_pipelines.emulator import chart
from qb_pipelines.emulator.report_context import TYPE_ORDER, Account, Report, bad_param, money_text, to_cents

#: Column key -> (title, ColType) of the columns the emulator serves; the first eight are QBO's default.
COLUMNS: dict[str, tuple[str, str]] = {
    "tx_date": ("Date", "Date"),
    "txn_type": ("Transaction Type", "String"),
    "doc_num": ("Num", "String"),
    "name": ("Name", "String"),
    "memo": ("Memo/Description", "String"),
    "split_acc": ("Split", "String"),
    "subt_nat_amount": ("Amount", "Money"),
    "rbal_nat_amount": ("Balance", "Money"),
    "account_name": ("Account", "String"),
    "debt_amt": ("Debit", "Money"),
    "credit_amt": ("Credit", "Money"),
}
DEFAULT_COLUMNS = ("tx_date", "txn_type", "doc_num", "name", "memo", "split_acc", "subt_nat_amount",
                   "rbal_nat_amount")
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def txn_type(entity: str, payment_type: str | None, pay_type: str | None, credit: bool) -> str:
    """The Transaction Type QBO prints: ``Sales Receipt``, ``Bill Payment (Check)``, ``Expense``..."""
    if entity == "BillPayment":
        return "Bill Payment (Credit Card)" if pay_type == "CreditCard" else "Bill Payment (Check)"
    if entity == "Purchase":
        if payment_type == "CreditCard":
            return "Credit Card Credit" if credit else "Credit Card Expense"
        return "Check" if payment_type == "Check" else "Expense"
    if entity == "RefundReceipt":
        return "Refund"
    return _CAMEL.sub(" ", entity)


@dataclass
class _Row:
    """One posting as a report row."""

    day: str
    entity: str
    txn_id: int
    label: str
    doc: str
    party: tuple[str, int | None]
    memo: str
    split: tuple[str, int | None]
    cents: int  # natural sign
    debit: int  # debit-positive


@dataclass
class _AccountRows:
    begin: int = 0
    rows: list[_Row] = field(default_factory=list)


def general_ledger(r: Report) -> dict:
    """GeneralLedger for the request's period (see the module docstring)."""
    if r.basis != "Accrual":
        raise bad_param("accounting_method", "'Cash': the emulator serves GeneralLedger on the accrual basis only")
    start, end = r.date_range()
    keys = _columns(r)
    wanted_accounts = r.id_list("account")
    per = _activity(r, start, end)
    for account_id, begin in _beginnings(r, start).items():
        per.setdefault(account_id, _AccountRows()).begin = begin
    if wanted_accounts is not None:
        per = {a: v for a, v in per.items() if a in wanted_accounts}
    per = {a: v for a, v in per.items() if v.rows or v.begin}
    sections = _sections(r, per, keys)
    header = r.base_header({"ReportBasis": r.basis, "StartPeriod": start.isoformat(), "EndPeriod": end.isoformat()})
    columns = [{"ColTitle": COLUMNS[k][0], "ColType": COLUMNS[k][1], "MetaData": [{"Name": "ColKey", "Value": k}]}
               for k in keys]
    return {"Header": r.finish_header(header, no_data=not per), "Columns": {"Column": columns},
            "Rows": {"Row": sections}}


def _columns(r: Report) -> list[str]:
    raw = r.params.get("columns")
    if not raw:
        return list(DEFAULT_COLUMNS)
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    unknown = [k for k in keys if k not in COLUMNS]
    if unknown or not keys:
        raise bad_param("columns", f"{', '.join(unknown) or raw!r} (the emulator serves {', '.join(COLUMNS)})")
    return keys


def _natural(acc: Account) -> int:
    """+1 when a debit raises the account (assets, expenses), -1 when a credit does."""
    return chart.DEBIT_NORMAL.get(acc.classification, 1)


def _beginnings(r: Report, start: date) -> dict[int, int]:
    """Each account's balance the day before ``start``, natural sign: balance-sheet accounts since
    the beginning, income and expense accounts since the fiscal year began."""
    fy = r.fy_start(start).isoformat()
    extra, args = r.party_filters()
    sql = ("SELECT account_id, ROUND(SUM(amount), 2), ROUND(SUM(CASE WHEN txn_date >= ? THEN amount ELSE 0 END), 2) "
           f"FROM postings WHERE realm=? AND txn_date < ?{extra} GROUP BY account_id")
    out: dict[int, int] = {}
    for account_id, everything, this_year in r.conn.execute(sql, [fy, r.realm, start.isoformat(), *args]):
        acc = r.account(int(account_id))
        debit = to_cents(this_year if acc.type in _PL_TYPES else everything)
        if debit:
            out[acc.id] = _natural(acc) * debit
    return out


_PL_TYPES = frozenset(("Income", "Cost of Goods Sold", "Expense", "Other Income", "Other Expense"))


def _activity(r: Report, start: date, end: date) -> dict[int, _AccountRows]:
    """The period's postings per account, with what each transaction tells about them."""
    extra, args = r.party_filters("p.")
    sql = f"""
    SELECT p.entity, p.txn_id, p.seq, p.txn_date, p.account_id, p.amount, p.customer_id, p.vendor_id,
           json_extract(o.body, '$.DocNumber'), json_extract(o.body, '$.PrivateNote'),
           json_extract(o.body, '$.PaymentType'), json_extract(o.body, '$.PayType'), json_extract(o.body, '$.Credit'),
           COALESCE(json_extract(o.body, '$.CustomerRef.name'), json_extract(o.body, '$.VendorRef.name'),
                    json_extract(o.body, '$.EntityRef.name'))
    FROM postings p LEFT JOIN objects o ON o.realm = p.realm AND o.entity = p.entity AND o.id = p.txn_id
    WHERE p.realm=? AND p.txn_date BETWEEN ? AND ?{extra}
    ORDER BY p.txn_date, p.entity, p.txn_id, p.seq
    """
    rows = r.conn.execute(sql, [r.realm, start.isoformat(), end.isoformat(), *args]).fetchall()
    splits = _splits(r, start, end)
    names = _party_names(r, rows)
    out: dict[int, _AccountRows] = defaultdict(_AccountRows)
    for (entity, txn_id, _seq, day, account_id, amount, customer_id, vendor_id, doc, note, payment_type, pay_type,
         credit, header_name) in rows:
        acc = r.account(int(account_id))
        party: tuple[str, int | None] = (header_name or "", None)
        if customer_id is not None:
            party = (names.get(("Customer", int(customer_id)), header_name or ""), int(customer_id))
        elif vendor_id is not None:
            party = (names.get(("Vendor", int(vendor_id)), header_name or ""), int(vendor_id))
        others = splits.get((entity, int(txn_id)), set()) - {acc.id}
        if len(others) == 1:
            other = r.account(next(iter(others)))
            split: tuple[str, int | None] = (other.fqn or other.name, other.id)
        else:
            split = ("-Split-" if others else "", None)
        debit = to_cents(amount)
        out[acc.id].rows.append(_Row(day, entity, int(txn_id), txn_type(entity, payment_type, pay_type, bool(credit)),
                                     doc or "", party, note or "", split, _natural(acc) * debit, debit))
    return out


def _splits(r: Report, start: date, end: date) -> dict[tuple[str, int], set[int]]:
    """The accounts each transaction of the period posts to (whatever the filters)."""
    out: dict[tuple[str, int], set[int]] = defaultdict(set)
    for entity, txn_id, account_id in r.conn.execute(
            "SELECT entity, txn_id, account_id FROM postings WHERE realm=? AND txn_date BETWEEN ? AND ?",
            (r.realm, start.isoformat(), end.isoformat())):
        out[(entity, int(txn_id))].add(int(account_id))
    return out


def _party_names(r: Report, rows: list) -> dict[tuple[str, int], str]:
    """Display names of the customers and vendors the postings name (columns 6 and 7 of the rows)."""
    wanted = {("Customer", int(x[6])) for x in rows if x[6] is not None}
    wanted |= {("Vendor", int(x[7])) for x in rows if x[7] is not None}
    out: dict[tuple[str, int], str] = {}
    for party in ("Customer", "Vendor"):
        ids = sorted(i for p, i in wanted if p == party)
        if not ids:
            continue
        for ident, name in r.conn.execute(
                "SELECT id, json_extract(body, '$.DisplayName') FROM objects WHERE realm=? AND entity=? "
                "AND id IN (SELECT value FROM json_each(?))", (r.realm, party, "[" + ",".join(map(str, ids)) + "]")):
            out[(party, int(ident))] = name or f"{party} {ident}"
    return out


def _cell(text: str, ident: int | None = None) -> dict:
    cell: dict = {"value": text}
    if ident is not None:
        cell["id"] = str(ident)
    return cell


def _data_row(row: _Row, running: int, acc: Account, keys: list[str]) -> dict:
    cells = {
        "tx_date": _cell(row.day),
        "txn_type": _cell(row.label, row.txn_id),
        "doc_num": _cell(row.doc),
        "name": _cell(*row.party),
        "memo": _cell(row.memo),
        "split_acc": _cell(*row.split),
        "subt_nat_amount": _cell(money_text(row.cents)),
        "rbal_nat_amount": _cell(money_text(running)),
        "account_name": _cell(acc.fqn or acc.name, acc.id),
        "debt_amt": _cell(money_text(row.debit) if row.debit > 0 else ""),
        "credit_amt": _cell(money_text(-row.debit) if row.debit < 0 else ""),
    }
    return {"ColData": [cells[k] for k in keys], "type": "Data"}


def _sections(r: Report, per: dict[int, _AccountRows], keys: list[str]) -> list[dict]:
    """One section per account (sub-accounts inside their parent's), in chart order."""
    shown = {a: r.account(a) for a in per}
    # a sub-account shows inside its parent's section, which shows even without rows of its own
    for acc in list(shown.values()):
        parent = acc.parent
        while parent is not None and parent not in shown:
            shown[parent] = r.account(parent)
            parent = shown[parent].parent
    children: dict[int | None, list[Account]] = defaultdict(list)
    for acc in shown.values():
        children[acc.parent if acc.parent in shown else None].append(acc)

    def order(acc: Account) -> tuple:
        return TYPE_ORDER.get(acc.type, 99), acc.name.lower(), acc.id

    def render(acc: Account) -> tuple[dict, int]:
        data = per.get(acc.id, _AccountRows())
        blank = [_cell("") for _ in keys]
        begin = list(blank)
        begin[0] = _cell("Beginning Balance")
        if "rbal_nat_amount" in keys:
            begin[keys.index("rbal_nat_amount")] = _cell(money_text(data.begin))
        rows: list[dict] = [{"ColData": begin, "type": "Data"}]
        running = data.begin
        for row in data.rows:
            running += row.cents
            rows.append(_data_row(row, running, acc, keys))
        total = sum(row.cents for row in data.rows)
        for child in sorted(children[acc.id], key=order):
            section, child_total = render(child)
            rows.append(section)
            # a sub-account's activity counts in its parent's total, in the parent's sign
            total += child_total * _natural(child) * _natural(acc)
        summary = list(blank)
        summary[0] = _cell(f"Total for {acc.name}")
        if "subt_nat_amount" in keys:
            summary[keys.index("subt_nat_amount")] = _cell(money_text(total))
        head = list(blank)
        head[0] = _cell(acc.name, acc.id)
        return {"Header": {"ColData": head}, "Rows": {"Row": rows}, "Summary": {"ColData": summary},
                "type": "Section"}, total

    return [render(acc)[0] for acc in sorted(children[None], key=order)]

