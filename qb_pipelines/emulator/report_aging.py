"""A party's sub-ledger as QBO reports it: AgedReceivables and CustomerBalance, AgedPayables and VendorBalance.

Customers owe the company through Accounts Receivable, the company owes vendors through Accounts
Payable (``chart.SUBLEDGERS``); the four reports are one pair per control account, built the same
way from the registry:

* the aging (``AgedReceivables``, ``AgedPayables``) lists each party's open documents in buckets
  (Current, 1 - 30 ... 91 and over days past due): charges (invoices, bills) open for their
  Balance and aged from their DueDate; credits (credit memos' remaining credit, vendor credits'
  balance) and settlements not applied (a payment's UnappliedAmt, a bill payment's TotalAmt less
  what its lines apply) count against the party as Current; journal-entry lines on the control
  account come from the ledger;
* the balance (``CustomerBalance``, ``VendorBalance``) is the party's share of the control
  account as of ``report_date`` (truly as-of), in the account's natural sign: what a customer
  owes, what is owed to a vendor.

Approximation (as for receivables before): the aging uses each document's *current* Balance,
restricted to documents dated on or before ``report_date``; settlements made after it are not
un-applied. Sub-customers are listed flat under their DisplayName (QBO nests jobs).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from functools import cache

from qb_pipelines.emulator import chart, entities
from qb_pipelines.emulator.report_context import AGING_COLUMNS, Report, bad_param, coldata, sql_names, to_cents
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import Lines


@dataclass(frozen=True)
class _SubLedger:
    """One control account's party and the SQL fragments over its open documents (from the registry).

    Attributes:
        control_type: ``Accounts Receivable`` or ``Accounts Payable``.
        party: ``Customer`` or ``Vendor``.
        sign: +1 when a debit raises the party's balance (A/R), -1 when a credit does (A/P).
        column: the ``postings`` column naming the party (``customer_id``).
        entities: the party's open documents and its settlement, as a SQL ``IN`` list.
        open_amount: SQL of what is still open on one of them (negative for credits).
        current: the entities aged as Current whatever their date (credits, settlements).
        journals: journal entries, whose control-account lines come from the ledger.
    """

    control_type: str
    party: str
    sign: int
    column: str
    entities: str
    open_amount: str
    current: str
    journals: str


@cache
def _subledger(control_type: str) -> _SubLedger:
    party = chart.SUBLEDGERS[control_type]
    documents = [e for e in entities.open_documents() if e.party == party]
    settlement = entities.settlement_of(party)
    cases = []
    for doc in documents:
        balance = f"json_extract(body, '$.{doc.balance_field}')"
        if doc.party_sign > 0:
            cases.append(f"WHEN '{doc.name}' THEN {balance}")
        else:
            cases.append(f"WHEN '{doc.name}' THEN -COALESCE(json_extract(body, '$.RemainingCredit'), {balance}, 0)")
    credits = [d.name for d in documents if d.party_sign < 0]
    names = [d.name for d in documents]
    unapplied = "0"
    if settlement is not None:
        names.append(settlement.name)
        if "UnappliedAmt" in settlement.typed_fields:  # a payment keeps what it left unapplied
            unapplied = "COALESCE(json_extract(body, '$.UnappliedAmt'), 0)"
        else:  # a bill payment does not: its total less what its lines apply (credits used count back)
            unapplied = (
                "(COALESCE(json_extract(body, '$.TotalAmt'), 0) - COALESCE((SELECT SUM("
                "CAST(json_extract(l.value, '$.Amount') AS REAL) * CASE WHEN json_extract(l.value, "
                f"'$.LinkedTxn[0].TxnType') IN ({sql_names(credits)}) THEN -1 ELSE 1 END) "
                "FROM json_each(body, '$.Line') l), 0))")
    return _SubLedger(
        control_type=control_type,
        party=party,
        sign=chart.DEBIT_NORMAL[chart.classification(control_type)],
        column=entities.postings_column(party),
        entities=sql_names(names),
        open_amount=f"CASE entity {' '.join(cases)} ELSE -{unapplied} END",
        current=sql_names([*credits, *([settlement.name] if settlement else [])]),
        journals=sql_names(e.name for e in registry.with_lines(Lines.JOURNAL)),
    )


def _party_filter(r: Report, sub: _SubLedger) -> list[int] | None:
    return r.customers if sub.party == "Customer" else r.vendors


def _names(r: Report, party: str, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = r.conn.execute(
        "SELECT id, json_extract(body, '$.DisplayName') FROM objects WHERE realm=? AND entity=?"
        " AND id IN (SELECT value FROM json_each(?))",
        (r.realm, party, "[" + ",".join(str(i) for i in ids) + "]"),
    )
    names = {int(i): n for i, n in rows if n is not None}
    return {i: names.get(i, f"{party} {i}") for i in ids}


def _party_column(party: str) -> dict:
    return {"ColTitle": "", "ColType": party, "MetaData": [{"Name": "ColKey", "Value": party.lower()}]}


def _aged(r: Report, control_type: str) -> dict:
    sub = _subledger(control_type)
    as_of = r.report_date()
    method = r.params.get("aging_method", "Report_Date")
    if method.lower() not in ("report_date", "current"):
        raise bad_param("aging_method", f"'{method}' (use Report_Date or Current)")
    age_from = r.today if method.lower() == "current" else as_of
    wanted = _party_filter(r, sub)
    party_sql, party_args = "", []
    if wanted is not None:
        party_sql = f" AND pid IN ({','.join('?' * len(wanted)) or 'NULL'})"
        party_args = list(wanted)
    control = r.ids_of_type(control_type) or [chart.ACCOUNTS_RECEIVABLE if sub.party == "Customer"
                                               else chart.ACCOUNTS_PAYABLE]
    marks = ",".join("?" * len(control))
    # Open documents straight from their stored bodies (Balance, DueDate), aggregated in SQL;
    # journal-entry lines on the control account have no Balance field, so they come from the ledger.
    sql = f"""
    WITH docs AS (
        SELECT CAST(json_extract(body, '$.{sub.party}Ref.value') AS INTEGER) AS pid,
               COALESCE(json_extract(body, '$.DueDate'), json_extract(body, '$.TxnDate')) AS due,
               {sub.open_amount} AS open,
               entity
        FROM objects
        WHERE realm=? AND entity IN ({sub.entities}) AND status IS NOT 'Deleted'
          AND json_extract(body, '$.TxnDate') <= ?
        UNION ALL
        SELECT {sub.column}, txn_date, {sub.sign} * amount, entity FROM postings
        WHERE realm=? AND entity IN ({sub.journals}) AND account_id IN ({marks}) AND txn_date <= ?
          AND {sub.column} IS NOT NULL
    )
    SELECT pid,
           CASE WHEN entity IN ({sub.current}) THEN 0
                ELSE CAST(julianday(?) - julianday(due) AS INTEGER) END AS age,
           ROUND(SUM(open), 2)
    FROM docs WHERE open IS NOT NULL AND open != 0 AND pid IS NOT NULL {party_sql}
    GROUP BY pid, age
    """
    args = [r.realm, as_of.isoformat(), r.realm, *control, as_of.isoformat(), age_from.isoformat(), *party_args]
    per: dict[int, list[int]] = defaultdict(lambda: [0] * 5)
    for pid, age, amount in r.conn.execute(sql, args):
        bucket = 0 if age <= 0 else 1 if age <= 30 else 2 if age <= 60 else 3 if age <= 90 else 4
        per[int(pid)][bucket] += to_cents(amount)
    per = {p: v for p, v in per.items() if any(v)}
    names = _names(r, sub.party, list(per))
    rows = []
    totals = [0] * 6
    for pid in sorted(per, key=lambda p: (names[p].lower(), p)):
        cells = [*per[pid], sum(per[pid])]
        totals = [a + b for a, b in zip(totals, cells, strict=True)]
        rows.append({"ColData": coldata(names[pid], [c if c != 0 else None for c in cells], pid)})
    rows.append({"Summary": {"ColData": coldata("TOTAL", list(totals))}, "type": "Section", "group": "GrandTotal"})
    header = r.base_header({"StartPeriod": as_of.isoformat(), "EndPeriod": as_of.isoformat()})
    columns = [_party_column(sub.party)]
    columns += [{"ColTitle": t, "ColType": "Money", "MetaData": [{"Name": "ColKey", "Value": k}]}
                for t, k in (*AGING_COLUMNS, ("Total", "total"))]
    return {"Header": r.finish_header(header, no_data=not per, report_date=as_of),
            "Columns": {"Column": columns}, "Rows": {"Row": rows}}


def _balances(r: Report, control_type: str) -> dict:
    sub = _subledger(control_type)
    as_of = r.report_date()
    if r.date_macro_echo is None:
        r.date_macro_echo = "all"
    control = r.ids_of_type(control_type) or [chart.ACCOUNTS_RECEIVABLE if sub.party == "Customer"
                                               else chart.ACCOUNTS_PAYABLE]
    sql = (f"SELECT {sub.column}, ROUND(SUM(amount), 2) FROM postings WHERE realm=? "
           f"AND account_id IN ({','.join('?' * len(control))}) AND txn_date <= ? AND {sub.column} IS NOT NULL")
    args: list[object] = [r.realm, *control, as_of.isoformat()]
    wanted = _party_filter(r, sub)
    if wanted is not None:
        sql += f" AND {sub.column} IN ({','.join('?' * len(wanted)) or 'NULL'})"
        args += wanted
    balances = {int(p): sub.sign * to_cents(v) for p, v in r.conn.execute(sql + f" GROUP BY {sub.column}", args)}
    balances = {p: v for p, v in balances.items() if v != 0}
    names = _names(r, sub.party, list(balances))
    rows: list[dict] = [{"ColData": coldata(names[p], [balances[p]], p)}
                        for p in sorted(balances, key=lambda p: (names[p].lower(), p))]
    rows.append({"Summary": {"ColData": coldata("TOTAL", [sum(balances.values())])},
                 "type": "Section", "group": "GrandTotal"})
    return {"Header": r.finish_header(r.base_header(), no_data=not balances, report_date=as_of),
            "Columns": {"Column": [_party_column(sub.party),
                                   {"ColTitle": "Total", "ColType": "Money",
                                    "MetaData": [{"Name": "ColKey", "Value": "total"}]}]},
            "Rows": {"Row": rows}}


def aged_receivables(r: Report) -> dict:
    """AgedReceivables: open customer documents by days past due, as of ``report_date``."""
    return _aged(r, "Accounts Receivable")


def customer_balance(r: Report) -> dict:
    """CustomerBalance: each customer's share of A/R as of ``report_date``."""
    return _balances(r, "Accounts Receivable")


def aged_payables(r: Report) -> dict:
    """AgedPayables: open vendor documents by days past due, as of ``report_date``."""
    return _aged(r, "Accounts Payable")


def vendor_balance(r: Report) -> dict:
    """VendorBalance: what is owed to each vendor (its share of A/P) as of ``report_date``."""
    return _balances(r, "Accounts Payable")
