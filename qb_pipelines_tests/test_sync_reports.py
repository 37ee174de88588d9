"""Reports: month parameters, flattening every real sample and the emulator's live reports, and the
partition writer on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from qb_pipelines.store import report_tables
from qb_pipelines.sync import reports
from qb_pipelines_tests.databases import migrated_engine
from qb_pipelines_tests.harness import EmulatorCompany
from qb_pipelines_tests.samples import SAMPLES

REPORT_SAMPLES = sorted(SAMPLES.glob("report_*.json"))


def _sample(name: str) -> dict:
    return json.loads((SAMPLES / name).read_text())


def _row(df: pd.DataFrame, **where: object) -> pd.Series:
    mask = pd.Series(True, index=df.index)
    for column, value in where.items():
        mask &= df[column] == value
    rows = df[mask]
    assert len(rows) == 1, (where, rows)
    return rows.iloc[0]


# --------------------------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------------------------


def test_month_params_ask_for_exactly_one_month() -> None:
    assert reports.month_params("ProfitAndLoss", "2024-02") == {
        "start_date": "2024-02-01", "end_date": "2024-02-29", "accounting_method": "Accrual",
        "summarize_column_by": "Month"}
    assert reports.month_params("BalanceSheet", "2025-12")["end_date"] == "2025-12-31"
    assert reports.month_params("TrialBalance", "2025-04") == {
        "start_date": "2025-04-01", "end_date": "2025-04-30", "accounting_method": "Accrual"}
    assert reports.month_params("AgedReceivables", "2025-04") == {"report_date": "2025-04-30"}
    assert reports.month_params("CustomerBalance", "2025-04") == {"report_date": "2025-04-30",
                                                                  "accounting_method": "Accrual"}
    assert reports.month_params("AgedPayables", "2025-04") == {"report_date": "2025-04-30"}
    assert reports.month_params("VendorBalance", "2025-04") == {"report_date": "2025-04-30",
                                                                "accounting_method": "Accrual"}
    assert reports.month_params("GeneralLedger", "2025-04") == {
        "start_date": "2025-04-01", "end_date": "2025-04-30", "accounting_method": "Accrual"}
    with pytest.raises(ValueError, match="YYYY-MM"):
        reports.parse_month("2025-13")
    with pytest.raises(ValueError, match="ProfitAndLoss"):
        reports.month_params("CashFlow", "2025-01")


# --------------------------------------------------------------------------------------------
# Samples captured from QuickBooks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", REPORT_SAMPLES, ids=lambda p: p.stem)
def test_every_sample_flattens_to_tidy_rows(path: Path) -> None:
    df = reports.flatten(json.loads(path.read_text()))
    assert list(df.columns) == list(reports.COLUMNS)
    assert len(df) > 0
    assert set(df["row_type"]) <= {"Data", "Summary", "Header"}
    assert not df.duplicated(["row_no", "column_key"]).any()  # the table's key holds
    money = df[df["raw_value"] != ""]
    assert all(isinstance(a, Decimal) and a == Decimal(v) for a, v in zip(money["amount"], money["raw_value"],
                                                                          strict=True))
    assert df[df["raw_value"] == ""]["amount"].isna().all()


def test_balance_sheet_sample_keeps_nesting_groups_and_totals() -> None:
    df = reports.flatten(_sample("report_balancesheet_converted.json"))
    cost = _row(df, label="Original Cost")
    assert cost["section_path"] == "ASSETS > Fixed Assets > Truck"
    assert cost["group"] == "FixedAssets"  # inherited: the Truck sub-section has no group
    assert (cost["account_id"], cost["amount"], cost["row_type"]) == ("38", Decimal("13495.00"), "Data")
    truck = _row(df, label="Truck")
    assert truck["row_type"] == "Header" and truck["account_id"] == "37"
    assert reports.summary_amount(df, "AR") == Decimal("5281.52")
    assert reports.summary_amount(df, "TotalAssets") == reports.summary_amount(df, "TotalLiabilitiesAndEquity")
    assert _row(df, label="Net Income")["group"] == "NetIncome"
    assert pd.isna(_row(df, label="Retained Earnings")["amount"])  # an empty cell
    assert (cost["period_start"], cost["period_end"]) == (date(2014, 1, 1), date(2014, 12, 18))
    assert df.attrs["report_name"] == "BalanceSheet"


def test_customer_balance_sample_rows_without_type_or_metadata() -> None:
    df = reports.flatten(_sample("report_customerbalance.json"))
    amy = _row(df, row_type="Data")
    assert (amy["account_id"], amy["label"], amy["amount"]) == ("1", "Amy's Bird Sanctuary", Decimal("1593.50"))
    assert (amy["column_key"], amy["period_end"]) == ("Total", date(2016, 3, 10))  # no ColKey; report_date
    assert reports.data_amounts(df) == {"1": Decimal("1593.50")}
    assert reports.summary_amount(df, "GrandTotal") == Decimal("1593.50")


def test_empty_profit_and_loss_by_days_sample() -> None:
    df = reports.flatten(_sample("report_profitandloss_days.json"))
    assert df.attrs["no_report_data"] is True
    assert sorted(set(df["column_key"])) == ["Jul 20, 2021", "Jul 21, 2021", "total"]
    day = _row(df, label="Gross Profit", column_key="Jul 21, 2021")
    assert (day["period_start"], day["period_end"]) == (date(2021, 7, 21), date(2021, 7, 21))
    assert day["section_path"] == "Gross Profit"  # a summary-only section is named by its summary
    total = _row(df, label="Total Income", column_key="total")
    assert (total["period_start"], total["period_end"]) == (date(2021, 7, 20), date(2021, 7, 21))
    assert total["amount"] == Decimal("0.00")
    assert pd.isna(_row(df, label="Total Income", column_key="Jul 20, 2021")["amount"])
    assert reports.summary_amount(df, "NetIncome") == Decimal("0")


def test_edge_shapes_flatten() -> None:
    assert reports.flatten({"Header": {"ReportName": "X"}, "Columns": {"Column": []}}).empty
    report = {"Columns": {"Column": [{"ColTitle": "", "ColType": "Account"},
                                     {"ColTitle": "Total", "ColType": "Money"},
                                     {"ColTitle": "Total", "ColType": "Money"},
                                     {"ColTitle": "Memo", "ColType": "String"}]},
              "Rows": {"Row": [
                  {"ColData": [{"value": "Plain row"}, {"value": "1,234.50"}, {"value": ""}, {"value": "note"}]},
                  {"type": "Section", "Rows": {"Row": [{"ColData": [{"value": "Inner", "id": "9"},
                                                                     {"value": "-2.00"}]}]}},
              ]}}
    df = reports.flatten(report)
    assert list(dict.fromkeys(df["column_key"])) == ["Total", "Total#2", "Memo"]
    plain = df[df["label"] == "Plain row"].set_index("column_key")
    assert plain.loc["Total", "amount"] == Decimal("1234.50")
    assert pd.isna(plain.loc["Total#2", "amount"]) and plain.loc["Memo", "raw_value"] == "note"
    assert pd.isna(plain.loc["Memo", "amount"])  # not a money column
    inner = df[df["label"] == "Inner"]
    assert inner.iloc[0]["amount"] == Decimal("-2.00") and inner.iloc[0]["section_path"] == ""
    assert list(inner["raw_value"]) == ["-2.00", "", ""]  # short ColData padded


# --------------------------------------------------------------------------------------------
# The emulator's live reports, and the partition writer
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live(shared_demo: EmulatorCompany) -> dict[str, dict]:
    client = shared_demo.token_client()
    return {name: reports.fetch_month(client, name, shared_demo.month) for name in reports.REPORTS}


def test_live_reports_flatten_with_month_columns(shared_demo: EmulatorCompany, live: dict[str, dict]) -> None:
    month = reports.parse_month(shared_demo.month)
    pl = reports.flatten(live["ProfitAndLoss"])
    month_rows = pl[pl["column_key"] != "total"]
    assert set(month_rows["period_start"]) == {month.start} and set(month_rows["period_end"]) == {month.end}
    assert set(pl[pl["column_key"] == "total"]["period_end"]) == {month.end}
    key = month_rows["column_key"].iloc[0]
    income = reports.summary_amount(pl, "Income", key)
    assert income == reports.summary_amount(pl, "Income") > 0
    net = reports.summary_amount(pl, "NetIncome")
    parts = {g: reports.summary_amount(pl, g) or Decimal(0)
             for g in ("Income", "COGS", "Expenses", "OtherIncome", "OtherExpenses")}
    assert net == parts["Income"] - parts["COGS"] - parts["Expenses"] + parts["OtherIncome"] - parts["OtherExpenses"]
    income_rows = pl[(pl["group"] == "Income") & (pl["row_type"] == "Data") & (pl["column_key"] == "total")]
    assert all(p.startswith("Income") for p in income_rows["section_path"])
    assert sum(income_rows["amount"].dropna()) == income

    bs = reports.flatten(live["BalanceSheet"])
    assert set(bs["period_end"]) == {month.end}
    assert reports.summary_amount(bs, "TotalAssets") == reports.summary_amount(bs, "TotalLiabilitiesAndEquity")

    tb = reports.flatten(live["TrialBalance"])
    debit = reports.summary_amount(tb, "GrandTotal", "Debit")
    assert debit == reports.summary_amount(tb, "GrandTotal", "Credit") > 0

    aged = reports.flatten(live["AgedReceivables"])
    assert {"current", "total"} <= set(aged["column_key"])
    customers = reports.flatten(live["CustomerBalance"])
    assert sum(reports.data_amounts(customers).values()) == reports.summary_amount(customers, "GrandTotal")
    assert reports.summary_amount(aged, "GrandTotal") == reports.summary_amount(customers, "GrandTotal")


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_partition_is_replaced_atomically(dialect: str, shared_demo: EmulatorCompany, live: dict[str, dict],
                                          tmp_path_factory: pytest.TempPathFactory) -> None:
    with migrated_engine(dialect, tmp_path_factory.mktemp("reports"), "qbp_reports") as engine:
        frames = {name: reports.flatten(body) for name, body in live.items()}
        for name, frame in frames.items():
            assert report_tables.replace_partition(engine, "co", name, shared_demo.month, frame) == {
                "deleted": 0, "inserted": len(frame)}
        # a rerun replaces, never duplicates
        pl = frames["ProfitAndLoss"]
        assert report_tables.replace_partition(engine, "co", "ProfitAndLoss", shared_demo.month, pl) == {
            "deleted": len(pl), "inserted": len(pl)}
        back = report_tables.read_partition(engine, "co", "ProfitAndLoss", shared_demo.month)
        assert len(back) == len(pl)
        assert reports.summary_amount(back, "NetIncome") == reports.summary_amount(pl, "NetIncome")
        assert list(back["section_path"]) == list(pl.sort_values(["row_no", "column_key"])["section_path"])
        # a failing write (a row without row_type) leaves the previous report in place
        broken = pl.copy()
        broken.loc[broken.index[-1], "row_type"] = None
        with pytest.raises(sa.exc.IntegrityError):
            report_tables.replace_partition(engine, "co", "ProfitAndLoss", shared_demo.month, broken)
        assert len(report_tables.read_partition(engine, "co", "ProfitAndLoss", shared_demo.month)) == len(pl)
        assert report_tables.periods(engine, "co") == [shared_demo.month]
        assert report_tables.read_partition(engine, "other", "ProfitAndLoss", shared_demo.month).empty
