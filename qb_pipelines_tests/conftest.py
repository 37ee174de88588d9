"""Shared fixtures: real emulators over real HTTP, headless Chromium, and the no-skip rule.

* ``emulator``: a fresh, empty emulator for one test (nothing leaks between tests).
* ``shared_emulator``: one emulator for a whole test module, for modules whose tests each make
  their own companies in it (starting an emulator per test would only cost time).
* ``shared_demo`` and ``landed``: QBO's demo company alone in its own emulator for a whole module,
  and that company fully landed in a migrated SQLite file and a throwaway PostgreSQL database.
* ``chromium``: headless Chromium from Debian's package, driven by Playwright, one per module.

The helpers behind them (companies, connections, landings, Dagster resources) are in
:mod:`qb_pipelines_tests.harness`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.server import RunningEmulator, start_in_thread
from qb_pipelines_tests.databases import migrated_engine
from qb_pipelines_tests.dates import DEMO_NOW, pinned_emulator
from qb_pipelines_tests.harness import EmulatorCompany, Landed, demo_company, land_demo

# A push run (a webhook's landing) ends right after its work in the tests (it would otherwise stay
# 15 s (10 s) following the outbox (the inbox), and every test that waits for its runs would wait that
# long); the processes the tests
# start inherit it. The tests of following set the window themselves (``follow_s``).
os.environ.setdefault("QB_PUSH_FOLLOW_S", "0")
os.environ.setdefault("QB_LANDING_FOLLOW_S", "0")

#: Chromium from Debian's package (``apt-get install -y chromium``); Playwright drives it.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    """A fresh, empty emulator (in-memory) served over HTTP for one test."""
    with start_in_thread(Emulator(EmulatorSettings())) as running:
        yield running


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[RunningEmulator]:
    """One emulator (in-memory, over HTTP) for a whole module: each test makes its own companies."""
    with start_in_thread(Emulator(EmulatorSettings())) as running:
        yield running


@pytest.fixture(scope="module")
def shared_demo() -> Iterator[EmulatorCompany]:
    """QBO's demo company (every transaction type, voided and deleted documents) in its own emulator."""
    with demo_company() as company:
        yield company


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def landed(request: pytest.FixtureRequest, shared_demo: EmulatorCompany, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Landed]:
    """The demo company fully landed with the project's ingest, its current month's reports fetched.

    Tests that tamper with the warehouse do it in ``landed.tampered()`` (rolled back), so the load
    stays faithful for the module's next test.
    """
    with migrated_engine(request.param, tmp_path_factory.mktemp("landed"), "qbp_landed") as engine:
        yield land_demo(shared_demo, engine)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Headless Chromium driven by Playwright, one per module; fails (never skips) when it is absent."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium is required at {CHROMIUM} for browser tests. Install it with: "
                    "sudo apt-get update && sudo apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Dagster 1.13 leaks an instance's context into the thread: close it when the instance closes.

    ``DagsterInstance.__enter__`` makes the instance's definitions-state storage the thread's
    current one and ``__exit__`` disposes the instance without restoring the previous one; the
    restore happens whenever the garbage collector gets to it, out of order, and may bring back
    the storage of an instance already gone. Every code location resolved afterwards (a
    ``Definitions``, ``dg.materialize``) then fails with "Attempted to resolve undefined
    DagsterInstance weakref", depending on which test modules ran before. Closing what
    ``__enter__`` opened, when the instance is exited, restores the storage in order. (Schedule and
    sensor contexts open an instance too: use them in a ``with`` block so it is exited.)
    """
    if "dagster" not in sys.modules:  # no collected test uses Dagster
        return
    from dagster import DagsterInstance

    exit_instance = DagsterInstance.__exit__
    if getattr(exit_instance, "closes_its_context", False):
        return

    def __exit__(self: DagsterInstance, *exc: object) -> None:
        try:
            exit_instance(self, *exc)
        finally:
            stack = getattr(self, "_exit_stack", None)
            if stack is not None:
                stack.close()

    __exit__.closes_its_context = True  # type: ignore[attr-defined]
    DagsterInstance.__exit__ = __exit__  # type: ignore[method-assign]


@pytest.fixture
def emulator_pinned() -> Iterator[RunningEmulator]:
    """A fresh, empty emulator whose clock starts at ``dates.DEMO_NOW``: for tests that read dates."""
    with pinned_emulator(DEMO_NOW) as running:
        yield running


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """A skipped test is a failed test here: CI must prove PostgreSQL and Chromium paths run."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skips are not allowed in this suite (install what is missing): {report.longrepr}"
