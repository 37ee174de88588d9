"""Shared fixtures: a real emulator over real HTTP on a free port, in-process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.server import RunningEmulator, start_in_thread
from qb_pipelines_tests.dates import DEMO_NOW, pinned_emulator


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    """A fresh, empty emulator (in-memory) served over HTTP for one test."""
    running = start_in_thread(Emulator(EmulatorSettings()))
    try:
        yield running
    finally:
        running.stop()


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
