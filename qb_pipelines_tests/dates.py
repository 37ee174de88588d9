"""Fixed instants for tests that depend on the calendar, and an emulator whose clock is pinned.

The emulator dates what it stores by its own clock, and the demo company's year of activity is
dated back from the emulator's "today". A test reading "the current month" of an emulator on the
machine's clock passes or fails by calendar date (on the 1st of a month the demo company has no
sales yet), so such a test pins the emulator's clock. The pinned clock still runs (tokens,
webhooks and CDC windows behave as usual); it just starts at a chosen instant.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.server import RunningEmulator, start_in_thread

#: "Now" of tests that read the demo company's current month: noon Pacific on a Wednesday in the
#: middle of a month, when the month already has invoices, sales and payments.
DEMO_NOW = datetime(2026, 6, 17, 19, 0, tzinfo=UTC)


@contextmanager
def pinned_emulator(now: datetime = DEMO_NOW, **settings: object) -> Iterator[RunningEmulator]:
    """An in-memory emulator over HTTP whose clock starts at ``now`` (and runs on from there).

    Args:
        now: the emulator's time at start (aware).
        **settings: other ``EmulatorSettings`` fields.
    """
    running = start_in_thread(Emulator(EmulatorSettings(now=now, **settings)))  # type: ignore[arg-type]
    try:
        yield running
    finally:
        running.stop()
