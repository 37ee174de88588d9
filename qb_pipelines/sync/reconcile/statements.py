"""The landed books against QBO's statements: the trial balance, the profit and loss, the general ledger.

* :func:`trial_balance`: a trial balance computed from the landed transactions with QuickBooks'
  posting rules against QBO's TrialBalance, per account;
* :func:`profit_and_loss`: income, COGS, expenses, other income/expenses and net income computed
  the same way against ProfitAndLoss (and the accounts that differ);
* :func:`general_ledger`: each account's activity over the report's period, and its balance at
  the start of it, against QBO's GeneralLedger.

All read a :class:`~qb_pipelines.sync.reconcile.ledger.LandedLedger`; pass one to each to build
it once. They cost no API call: the reports are passed in.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from datetime import date, timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine

from qb_pipelines.sync import reports as report_mod
from qb_pipelines.sync.reconcile.landed import landed_bodies_if_any
from qb_pipelines.sync.reconcile.ledger import (
    LEDGER_NAME_LISTS,
    LandedLedger,
    build_ledger,
    ledger_sources,
    posting_entity_names,
)
from qb_pipelines.sync.reconcile.outcome import (
    CheckOutcome,
    cents,
    cents_by_id,
    compare_amounts,
    dollars,
    full_refresh_fix,
    make_outcome,
)
from qb_pipelines.sync.reconcile.report_frames import Report, as_frame, header, report_end, report_labels

# pandas is imported where it is used: every Dagster run's process loads this module with the
# code location, and most runs (pushes, landings) never touch a DataFrame.
if TYPE_CHECKING:
    import pandas as pd


def fiscal_year_start(as_of: date, first_month: int) -> date:
    """The first day of the fiscal year containing ``as_of``."""
    year = as_of.year if as_of.month >= first_month else as_of.year - 1
    return date(year, first_month, 1)


def landed_fiscal_month(engine: Engine | Connection, company_key: str) -> int:
    """The fiscal year's first month from landed CompanyInfo (January when unknown)."""
    months = {m.lower(): i for i, m in enumerate(calendar.month_name) if m}
    for body in landed_bodies_if_any(engine, company_key, "CompanyInfo"):
        return months.get(str(body.get("FiscalYearStartMonth") or "January").lower(), 1)
    return 1


def _account_labels(ledger: LandedLedger, df: pd.DataFrame) -> dict[str, str]:
    """Account names to show in mismatches: the landed chart's, overridden by the report's."""
    return {**{a.id: a.name for a in ledger.chart.accounts.values()}, **report_labels(df)}


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
    import pandas as pd

    data = df[(df["row_type"] == "Data") & df["account_id"].notna()]
    out: dict[str, int] = defaultdict(int)
    for ident, key, amount in zip(data["account_id"], data["column_key"], data["amount"], strict=True):
        if amount is None or pd.isna(amount):
            continue
        sign = -1 if str(key).lower() == "credit" else 1
        out[str(ident)] += sign * cents(amount)
    return {k: v for k, v in out.items() if v != 0}


def trial_balance(engine: Engine | Connection, company_key: str, trial_balance_report: Report, *,
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
    df = as_frame(trial_balance_report)
    as_of = report_end(trial_balance_report, df)
    fiscal_month = fiscal_year_start_month or landed_fiscal_month(engine, company_key)
    ledger = ledger or build_ledger(engine, company_key, as_of)
    computed = computed_trial_balance(ledger, as_of, fiscal_month)
    reported = _reported_trial_balance(df)
    labels = _account_labels(ledger, df)
    mismatches = compare_amounts(computed, reported, key_name="account_id", labels=labels)
    mismatches = [{**m, "source": "TrialBalance (debit positive)"} for m in mismatches]
    mismatches += ledger.unbalanced
    debits = sum(v for v in computed.values() if v > 0)
    metadata = {"as_of": as_of, "accounts_compared": len(set(computed) | set(reported)),
                "warehouse_debits": dollars(debits), "qbo_debits": dollars(sum(v for v in reported.values() if v > 0)),
                "postings": ledger.postings, "unbalanced_transactions": len(ledger.unbalanced)}
    ok = not mismatches
    entities = sorted({m["entity"] for m in ledger.unbalanced}) or posting_entity_names()
    return make_outcome(
        ok,
        f"trial balance as of {as_of} from {ledger.postings} landed postings equals QBO's "
        f"({metadata['qbo_debits']:.2f} debits)",
        f"trial balance as of {as_of} from landed transactions differs from QBO's on {len(mismatches)} accounts",
        metadata, mismatches, full_refresh_fix(company_key, [*LEDGER_NAME_LISTS, *entities]),
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


def profit_and_loss(engine: Engine | Connection, company_key: str, profit_and_loss_report: Report, *,
                    ledger: LandedLedger | None = None) -> CheckOutcome:
    """Income, COGS, expenses, other income/expenses and net income computed from the landed
    transactions against QBO's ProfitAndLoss for the same period (its Total column).

    Returns:
        Failed when a total differs; mismatches name the totals and the accounts that differ.
    """
    import pandas as pd

    df = as_frame(profit_and_loss_report)
    head = header(profit_and_loss_report)
    start = head.get("StartPeriod")
    end = head.get("EndPeriod") or report_end(profit_and_loss_report, df)
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
    reported_accounts = cents_by_id(report_mod.data_amounts(df, column))
    labels = _account_labels(ledger, df)
    account_diffs = compare_amounts(per_account, reported_accounts, key_name="account_id", labels=labels)
    mismatches += [{**m, "source": "ProfitAndLoss account"} for m in account_diffs]
    metadata = {"start": start, "end": end, **{f"warehouse_{g.lower()}": dollars(v) for g, v in groups.items()},
                **{f"qbo_{g.lower()}": dollars(v) for g, v in reported_groups.items()}}
    ok = totals_ok and not account_diffs
    return make_outcome(
        ok,
        f"P&L {start}..{end} from landed transactions equals QBO's: income {dollars(groups['Income']):.2f}, "
        f"expenses {dollars(groups['Expenses']):.2f}, net income {dollars(groups['NetIncome']):.2f}",
        f"P&L {start}..{end} from landed transactions differs from QBO's: net income "
        f"{dollars(groups['NetIncome']):.2f} vs {dollars(reported_groups['NetIncome']):.2f}",
        metadata, mismatches, full_refresh_fix(company_key, ledger_sources()),
    )


def _natural(ledger: LandedLedger, account: str) -> int:
    """+1 when a debit raises the account (assets, expenses), -1 when a credit does: the sign
    QBO's GeneralLedger prints amounts in (``subt_nat_amount``)."""
    return 1 if ledger.chart.get(account).classification in ("Asset", "Expense") else -1


def computed_general_ledger(ledger: LandedLedger, start: str, end: str, fiscal_month: int
                            ) -> tuple[dict[str, int], dict[str, int]]:
    """(activity in ``start..end``, balance the day before ``start``) per account, debit positive.

    The beginning balance of an income or expense account counts the fiscal year only (as QBO's
    GeneralLedger and TrialBalance do); a balance-sheet account's counts everything before.
    """
    day_before = (date.fromisoformat(start) - timedelta(days=1)).isoformat()
    fy_start = fiscal_year_start(date.fromisoformat(start), fiscal_month).isoformat()
    activity = {k: v for k, v in ledger.net(start, end).items() if v != 0}
    beginning: dict[str, int] = {}
    for account, amount in ledger.net(None, day_before).items():
        if ledger.chart.pl_group(account) is not None:
            continue
        beginning[account] = amount
    for account, amount in ledger.net(fy_start, day_before).items():
        if ledger.chart.pl_group(account) is not None:
            beginning[account] = amount
    return activity, {k: v for k, v in beginning.items() if v != 0}


def general_ledger(engine: Engine | Connection, company_key: str, general_ledger_report: Report, *,
                   fiscal_year_start_month: int | None = None, ledger: LandedLedger | None = None) -> CheckOutcome:
    """Each account's activity and beginning balance in QBO's GeneralLedger against the ledger
    rebuilt from the landed transactions for the same period.

    The report prints amounts in each account's natural sign; both sides are compared debit
    positive. An account the report leaves out had no activity and no balance.

    Returns:
        Failed when an account's activity or beginning balance differs; mismatches name the
        account, the figure (``source``) and both amounts. Landed transactions whose lines do
        not balance are listed too.
    """
    df = as_frame(general_ledger_report)
    head = header(general_ledger_report)
    end = head.get("EndPeriod") or report_end(general_ledger_report, df)
    start = head.get("StartPeriod") or f"{end[:8]}01"
    fiscal_month = fiscal_year_start_month or landed_fiscal_month(engine, company_key)
    ledger = ledger or build_ledger(engine, company_key, end)
    activity, beginning = computed_general_ledger(ledger, start, end, fiscal_month)
    accounts = report_mod.ledger_activity(df)
    reported_activity = {a: _natural(ledger, a) * cents(v.activity) for a, v in accounts.items()}
    reported_beginning = {a: _natural(ledger, a) * cents(v.beginning) for a, v in accounts.items()
                          if v.beginning is not None}
    labels = _account_labels(ledger, df)
    mismatches = [{**m, "source": "GeneralLedger activity (debit positive)"}
                  for m in compare_amounts(activity, {k: v for k, v in reported_activity.items() if v != 0},
                                           key_name="account_id", labels=labels)]
    mismatches += [{**m, "source": "GeneralLedger beginning balance (debit positive)"}
                   for m in compare_amounts(beginning, {k: v for k, v in reported_beginning.items() if v != 0},
                                            key_name="account_id", labels=labels)]
    mismatches += ledger.unbalanced
    metadata = {"start": start, "end": end, "accounts_compared": len(set(activity) | set(reported_activity)),
                "warehouse_debits": dollars(sum(v for v in activity.values() if v > 0)),
                "qbo_debits": dollars(sum(v for v in reported_activity.values() if v > 0)),
                "qbo_posting_rows": sum(v.postings for v in accounts.values()),
                "unbalanced_transactions": len(ledger.unbalanced)}
    ok = not mismatches
    entities = sorted({m["entity"] for m in ledger.unbalanced}) or posting_entity_names()
    return make_outcome(
        ok,
        f"general ledger {start}..{end}: activity of {metadata['accounts_compared']} accounts "
        f"({metadata['qbo_debits']:.2f} debits) and their beginning balances equal QBO's",
        f"general ledger {start}..{end} from landed transactions differs from QBO's on {len(mismatches)} "
        "accounts/figures",
        metadata, mismatches, full_refresh_fix(company_key, [*LEDGER_NAME_LISTS, *entities]),
    )
