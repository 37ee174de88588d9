"""Great Expectations suites on the landed tables: pass on a faithful load, fail naming ids.

The demo company is landed once per dialect (SQLite and a throwaway PostgreSQL: the ``landed``
fixture); each tamper test changes the warehouse inside a transaction that is rolled back
afterwards.
"""

from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from qb_pipelines.qbo import registry
from qb_pipelines.sync import quality
from qb_pipelines_tests.databases import migrated_engine
from qb_pipelines_tests.harness import DEMO_KEY as COMPANY
from qb_pipelines_tests.harness import EmulatorCompany, Landed, land_demo

LINED = ("Invoice", "Estimate", "SalesReceipt", "CreditMemo", "RefundReceipt", "Payment", "Bill", "BillPayment",
         "VendorCredit", "Purchase", "Deposit", "JournalEntry")


def test_every_landed_entity_meets_its_suite(landed: Landed) -> None:
    for ent in registry.ENTITIES:
        outcome = quality.run_suite(landed.engine, ent.name, COMPANY)
        assert outcome.passed, outcome.as_dict()
        assert outcome.mismatches == [] and outcome.fix == ""
    invoice = quality.run_suite(landed.engine, "Invoice", COMPANY)
    checked = {(e["expectation"], e["column"]) for e in invoice.metadata["expectations"]}
    assert {("expect_column_values_to_not_be_null", "id"),
            ("expect_compound_columns_to_be_unique", "company_key,id"),
            ("expect_column_values_to_match_strftime_format", "txn_date"),
            ("expect_column_values_to_match_regex", "currency"),
            ("expect_column_values_to_be_between", "line_total_difference")} <= checked
    assert invoice.metadata["rows"] > 50


def test_line_sums_tie_out_for_every_transaction_type(landed: Landed) -> None:
    for entity in LINED:
        frame = quality.load_frame(landed.engine, entity, COMPANY)
        assert len(frame) > 0, entity
        assert (frame["line_total_difference"].abs() < quality.AMOUNT_TOLERANCE).all(), entity


def test_total_that_its_lines_do_not_explain_fails_naming_the_invoice(landed: Landed) -> None:
    with landed.tampered() as conn:
        ident = conn.execute(sa.text("SELECT MIN(id) FROM qbo_invoice WHERE company_key = :c AND total_amt > 0"),
                             {"c": COMPANY}).scalar_one()
        conn.execute(sa.text("UPDATE qbo_invoice SET total_amt = total_amt + 10 WHERE company_key = :c AND id = :i"),
                     {"c": COMPANY, "i": ident})
        outcome = quality.run_suite(conn, "Invoice", COMPANY)
    assert not outcome.passed
    assert outcome.mismatches == [{"expectation": "expect_column_values_to_be_between",
                                   "column": "line_total_difference", "id": ident, "value": 10.0}]
    assert "--full --entities Invoice" in outcome.fix


def test_bad_currency_missing_date_and_wrong_line_fail_with_their_ids(landed: Landed) -> None:
    with landed.tampered() as conn:
        bill = conn.execute(sa.text("SELECT MIN(id) FROM qbo_bill WHERE company_key = :c"), {"c": COMPANY}).scalar_one()
        conn.execute(sa.text("UPDATE qbo_bill SET currency = 'usd', txn_date = NULL WHERE company_key = :c AND id = :i"),
                     {"c": COMPANY, "i": bill})
        conn.execute(sa.text("UPDATE qbo_bill_line SET amount = amount + 1 WHERE company_key = :c AND txn_id = :i "
                             "AND line_no = 1"), {"c": COMPANY, "i": bill})
        outcome = quality.run_suite(conn, "Bill", COMPANY)
    assert not outcome.passed
    found = {(m["column"], m["id"]) for m in outcome.mismatches}
    assert found == {("currency", bill), ("txn_date", bill), ("line_total_difference", bill)}
    assert {m["value"] for m in outcome.mismatches if m["column"] == "currency"} == {"usd"}
    assert outcome.metadata["failed_expectations"] == 3


def test_unbalanced_journal_entry_fails(landed: Landed) -> None:
    with landed.tampered() as conn:
        ident = conn.execute(sa.text("SELECT MIN(txn_id) FROM qbo_journal_entry_line WHERE company_key = :c"),
                             {"c": COMPANY}).scalar_one()
        conn.execute(sa.text("UPDATE qbo_journal_entry_line SET amount = amount + 0.5 WHERE company_key = :c "
                             "AND txn_id = :i AND posting_type = 'Debit'"), {"c": COMPANY, "i": ident})
        outcome = quality.run_suite(conn, "JournalEntry", COMPANY)
    assert not outcome.passed
    assert [(m["id"], m["column"]) for m in outcome.mismatches] == [(ident, "line_total_difference")]


def test_invalid_date_text_is_reported_not_crashed_on(tmp_path_factory: pytest.TempPathFactory,
                                                       shared_demo: EmulatorCompany) -> None:
    """SQLite stores dates as text: a malformed one must reach the expectation."""
    with migrated_engine("sqlite", tmp_path_factory.mktemp("quality_dates"), "qbp_dates") as engine:
        land_demo(shared_demo, engine)
        with engine.begin() as conn:
            ident = conn.execute(sa.text("SELECT MIN(id) FROM qbo_invoice")).scalar_one()
            conn.execute(sa.text("UPDATE qbo_invoice SET due_date = '2024-13-45' WHERE id = :i"), {"i": ident})
        outcome = quality.run_suite(engine, "Invoice", COMPANY)
    assert not outcome.passed
    assert outcome.mismatches == [{"expectation": "expect_column_values_to_match_strftime_format",
                                   "column": "due_date", "id": ident, "value": "2024-13-45"}]


def test_duplicate_keys_and_null_ids_in_a_frame_fail() -> None:
    frame = pd.DataFrame({"company_key": ["c", "c", "c", None], "id": ["1", "2", "2", None],
                          "currency": ["USD", "USD", "EUR", "USD"]})
    outcome = quality.validate_frame("Customer", frame, "c")
    assert not outcome.passed
    by_column = {}
    for m in outcome.mismatches:
        by_column.setdefault((m["expectation"], m["column"]), []).append(m["id"])
    assert by_column[("expect_compound_columns_to_be_unique", "company_key,id")] == ["2", "2"]
    assert ("expect_column_values_to_not_be_null", "id") in by_column
    assert ("expect_column_values_to_not_be_null", "company_key") in by_column
