"""AgedPayables, VendorBalance and GeneralLedger as Dagster report assets, with their blocking checks.

The same real parts as ``test_defs_ingest`` (its environment is reused): the demo company landed
through the entity asset, then report partitions materialized with every report check, as the
UI or ``qbo_reports_job`` does. A month before the company's books gives an empty GeneralLedger,
which lands as zero rows and still checks (nothing landed for it means nothing to compare, not
a missing report); a tampered bill fails the payables check of the current month.
"""

from __future__ import annotations

from datetime import UTC, datetime

import dagster as dg
import sqlalchemy as sa

from qb_pipelines.defs.checks import REPORT_CHECKS
from qb_pipelines.defs.partitions import REPORT_MONTHS_START, report_partition_key
from qb_pipelines.defs.reports import REPORT_ASSETS, report_asset_key
from qb_pipelines.emulator.seed import seed_demo_company
from qb_pipelines.store.warehouse import tables_for
from qb_pipelines_tests import test_defs_ingest
from qb_pipelines_tests.test_defs_ingest import Env, _materialize

# test_defs_ingest's environment (a module's emulator, a SQLite store and warehouse, a Dagster instance)
emulator = test_defs_ingest.emulator
sqlite_env = test_defs_ingest.sqlite_env


def _reports(env: Env, key: str, month: str) -> dg.ExecuteInProcessResult:
    return dg.materialize([*REPORT_ASSETS, *REPORT_CHECKS], partition_key=str(report_partition_key(key, month)),
                          resources=env.resources, instance=env.instance, raise_on_error=False)


def test_payables_and_general_ledger_report_assets_and_their_blocking_checks(sqlite_env: Env) -> None:
    env = sqlite_env
    key = env.connect(seed_demo_company(env.emulator.emu))
    assert _materialize(env, key).success

    # before the books start: the general ledger is empty, lands as no row, and checks as empty
    first = REPORT_MONTHS_START  # the first report month, before the demo's year of books
    early = _reports(env, key, first)
    assert early.success
    mats = {e.materialization.asset_key: e.materialization for e in early.get_asset_materialization_events()}
    assert mats[report_asset_key("GeneralLedger")].metadata["rows_inserted"].value == 0
    checks = {e.check_name: e for e in early.get_asset_check_evaluations()}
    assert checks["general_ledger"].passed, checks["general_ledger"].description
    assert checks["general_ledger"].description.startswith(f"general ledger {first}-01..")
    assert checks["payables"].passed and checks["payables"].metadata["compared"].value is False

    # the current month: every check compares, and passes
    month = datetime.now(UTC).strftime("%Y-%m")
    current = _reports(env, key, month)
    assert current.success
    checks = {e.check_name: e for e in current.get_asset_check_evaluations()}
    assert {"payables", "vendor_balances", "general_ledger"} <= set(checks)
    assert all(e.passed for e in checks.values()), {k: e.description for k, e in checks.items()}
    assert checks["payables"].metadata["compared"].value is True

    # a bill's balance changed in the warehouse: the payables check fails, naming vendor and bill
    bills, _ = tables_for("Bill")
    with env.engine.begin() as conn:
        ident, vendor = conn.execute(sa.select(bills.c.id, bills.c.vendor_ref_id).where(
            bills.c.company_key == key, bills.c.balance > 0).order_by(bills.c.id).limit(1)).one()
        conn.execute(sa.update(bills).where(bills.c.company_key == key, bills.c.id == ident)
                     .values(balance=bills.c.balance + 12))
    blocked = _reports(env, key, month)
    payables = {e.check_name: e for e in blocked.get_asset_check_evaluations()}["payables"]
    assert not payables.passed
    mismatches = payables.metadata["mismatches"].value
    assert any(m.get("vendor_id") == vendor and ident in m.get("open_bill_ids", []) for m in mismatches), mismatches
    assert "full refresh" in payables.metadata["fix"].value
