"""The demo load reconciles on every calendar day: the dates where months and years turn.

The demo company's year of activity is dated back from the emulator's "today", and the checks
read "the current month". On the 1st of a month that month has almost nothing yet; on 1 January
last year's income has moved into Retained Earnings; 1 March of a leap year follows 29 February;
the 31st is a month's last day. For each of those dates an emulator is pinned there (its clock
runs on from that instant), the demo company is seeded once, landed with the project's ingest
into a real SQLite warehouse over real HTTP, and every reconciliation check must pass: for the
current month, and the ledger checks (trial balance, profit and loss) for the month before too:
a whole month of activity, so they compare real amounts, not two zeros. (The A/R and customer
checks compare today's balances, so they apply to the current month only: see ``reconcile``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine

from qb_pipelines.emulator.seed import seed_demo_company
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.emulator_control import EmulatorControlTokens
from qb_pipelines.qbo.environments import environment
from qb_pipelines.qbo.ratelimit import CompanyRateLimiter
from qb_pipelines.store.warehouse import WarehouseWriter
from qb_pipelines.sync import reconcile, reports
from qb_pipelines.sync.ingest import land
from qb_pipelines_tests.databases import migrated_engine
from qb_pipelines_tests.dates import pinned_emulator

COMPANY = "calendar-co"
PACIFIC = ZoneInfo("America/Los_Angeles")  # the demo company's time zone (the emulator's company_tz)

#: Pacific wall times (the company's "today"), each far enough from midnight that seeding and
#: landing finish on the same day although the pinned clock runs on.
DATES = {
    "new-year": datetime(2027, 1, 1, 0, 30, tzinfo=PACIFIC),
    "leap-year-march-1st": datetime(2028, 3, 1, 8, 0, tzinfo=PACIFIC),
    "first-of-month": datetime(2027, 7, 1, 9, 0, tzinfo=PACIFIC),
    "thirty-first": datetime(2027, 5, 31, 22, 30, tzinfo=PACIFIC),
    "new-years-eve": datetime(2026, 12, 31, 22, 0, tzinfo=PACIFIC),
}
#: Every entity the landing and the completeness check cover (CompanyInfo and Preferences are
#: settings, not rows QBO counts).
ROW_ENTITIES = tuple(e.name for e in registry.ENTITIES if e.name not in ("CompanyInfo", "Preferences"))


@dataclass
class Loaded:
    running: RunningEmulator
    realm: str
    engine: Engine
    client: QBOClient

    @property
    def today(self) -> date:
        return date.fromisoformat(self.running.emu.clock.today(self.running.emu.company_tz(self.realm)))


@pytest.fixture(scope="module", params=list(DATES), ids=list(DATES))
def loaded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loaded]:
    """The demo company seeded at the date, fully landed into SQLite (once per date)."""
    with pinned_emulator(DATES[request.param].astimezone(UTC)) as running:
        realm = seed_demo_company(running.emu)
        # each date's emulator is its own QuickBooks: its own request budget (the demo realm id is
        # the same everywhere, and the process-wide limiter would make the dates queue for it)
        client = QBOClient(realm, EmulatorControlTokens(running.url, realm), environment("emulator", running.url),
                           rate_limiter=CompanyRateLimiter())
        tmp: Path = tmp_path_factory.mktemp(f"calendar-{request.param}")
        with migrated_engine("sqlite", tmp, "qbp_calendar") as engine:
            land(client, WarehouseWriter(engine), COMPANY, full=True,
                 now=lambda: datetime.fromtimestamp(running.emu.clock.timestamp(), UTC))
            yield Loaded(running, realm, engine, client)


def _month_checks(loaded: Loaded, month: str, *, balances: bool) -> dict[str, reconcile.CheckOutcome]:
    """The report checks of one month on QBO's reports of that month (``balances``: the A/R and
    customer checks too, which hold for the current month only)."""
    fetched = {name: reports.fetch_month(loaded.client, name, month) for name in reports.REPORTS}
    ledger = reconcile.build_ledger(loaded.engine, COMPANY, reports.parse_month(month).end.isoformat())
    checks = {
        "trial_balance": reconcile.trial_balance(loaded.engine, COMPANY, fetched["TrialBalance"], ledger=ledger),
        "profit_and_loss": reconcile.profit_and_loss(loaded.engine, COMPANY, fetched["ProfitAndLoss"], ledger=ledger),
    }
    if balances:
        checks["open_receivables"] = reconcile.open_receivables(loaded.engine, COMPANY, fetched["AgedReceivables"],
                                                                fetched["BalanceSheet"])
        checks["customer_balances"] = reconcile.customer_balances(loaded.engine, COMPANY, fetched["CustomerBalance"])
    return checks


def test_the_emulator_and_the_seed_live_on_the_pinned_date(loaded: Loaded, request: pytest.FixtureRequest) -> None:
    pinned = DATES[request.node.callspec.id]
    assert loaded.today == pinned.date()
    with loaded.engine.connect() as conn:
        latest = conn.exec_driver_sql("SELECT MAX(txn_date) FROM qbo_payment WHERE company_key = ?",
                                      (COMPANY,)).scalar()
    assert str(latest) == pinned.date().isoformat()  # the demo's "deposit on job" is dated today


def test_every_row_lands_and_every_total_matches(loaded: Loaded) -> None:
    for entity in ROW_ENTITIES:
        outcome = reconcile.completeness(loaded.engine, loaded.client, COMPANY, entity)
        assert outcome.passed, (entity, outcome.as_dict())
        assert outcome.metadata["warehouse_rows"] == outcome.metadata["qbo_rows"]
    for ent in registry.posting_entities():
        outcome = reconcile.transaction_totals(loaded.engine, loaded.client, COMPANY, ent.name)
        assert outcome.passed, (ent.name, outcome.as_dict())


def test_current_month_reconciles(loaded: Loaded) -> None:
    month = loaded.today.strftime("%Y-%m")
    checks = _month_checks(loaded, month, balances=True)
    assert len(checks) == 4
    for name, outcome in checks.items():
        assert outcome.passed, (month, name, outcome.as_dict())
    ar = checks["open_receivables"].metadata
    assert ar["warehouse_open_ar"] == ar["aged_receivables_total"] == ar["balance_sheet_ar"] > 0
    tb = checks["trial_balance"].metadata
    assert tb["warehouse_debits"] == tb["qbo_debits"] > 0 and tb["unbalanced_transactions"] == 0
    pl = checks["profit_and_loss"].metadata
    assert pl["warehouse_netincome"] == pl["qbo_netincome"]


def test_previous_month_reconciles_with_real_income(loaded: Loaded) -> None:
    month = (loaded.today.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    checks = _month_checks(loaded, month, balances=False)
    for name, outcome in checks.items():
        assert outcome.passed, (month, name, outcome.as_dict())
    assert checks["trial_balance"].metadata["qbo_debits"] > 0
    pl = checks["profit_and_loss"].metadata
    assert pl["warehouse_income"] == pl["qbo_income"] > 0
    assert pl["warehouse_netincome"] == pl["qbo_netincome"]
