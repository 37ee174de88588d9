"""The emulator's clock pinned to a chosen instant: it runs on from there, freezes on request, only
moves forward, and the seed, MetaData times, tokens and the control API all follow it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
import requests

from qb_pipelines.emulator.clock import PACIFIC, Clock
from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines_tests.dates import DEMO_NOW, pinned_emulator

LEAP_DAY = datetime(2028, 2, 29, 23, 59, 0, tzinfo=UTC)


def test_a_pinned_clock_starts_at_the_instant_and_runs_on() -> None:
    clock = Clock(start=LEAP_DAY)
    first = clock.timestamp()
    assert abs(first - LEAP_DAY.timestamp()) < 1
    time.sleep(0.05)
    assert clock.timestamp() > first  # time moves: tokens expire, CDC windows move
    assert clock.today(PACIFIC) == "2028-02-29" and clock.today(UTC) == "2028-02-29"
    assert Clock(start=datetime(2028, 3, 1, 8, 0)).now().tzinfo == UTC  # naive means UTC
    assert abs(Clock(start=datetime(2028, 3, 1, 8, 0)).timestamp() - datetime(2028, 3, 1, 8, tzinfo=UTC).timestamp()) < 1


def test_lifetimes_scale_and_advance_from_the_pinned_instant() -> None:
    clock = Clock(scale=0.001, start=LEAP_DAY)
    lifetime = clock.lifetime_now()
    assert abs(lifetime - LEAP_DAY.timestamp()) < 1
    time.sleep(0.02)
    assert clock.lifetime_now() - lifetime >= 19  # 20 ms of real time is 20 s of lifetime at scale 0.001
    clock.advance(3600)
    assert clock.timestamp() - LEAP_DAY.timestamp() >= 3600
    assert clock.lifetime_now() - lifetime >= 3600


def test_a_frozen_clock_stands_still_until_advanced_and_resumes_where_it_stood() -> None:
    clock = Clock(start=LEAP_DAY, frozen=True)
    assert clock.frozen and clock.timestamp() == LEAP_DAY.timestamp()
    life = clock.lifetime_now()
    time.sleep(0.05)
    assert clock.timestamp() == LEAP_DAY.timestamp() and clock.lifetime_now() == life
    clock.advance(90)
    assert clock.now() == LEAP_DAY + timedelta(seconds=90)
    assert clock.today() == "2028-02-29"  # 00:00:30 UTC on 1 March is still 29 February in Pacific
    time.sleep(0.05)
    clock.unfreeze()
    resumed = clock.timestamp()
    assert 0 <= resumed - (LEAP_DAY.timestamp() + 90) < 0.04  # the 50 ms spent frozen are not counted


def test_advance_to_moves_forward_only() -> None:
    clock = Clock(start=LEAP_DAY, frozen=True)
    assert clock.advance_to(LEAP_DAY + timedelta(days=1)) == 86400
    assert clock.today() == "2028-03-01"
    with pytest.raises(ValueError, match="only moves forward"):
        clock.advance_to(LEAP_DAY)


def test_the_seed_and_metadata_follow_the_pinned_clock() -> None:
    from qb_pipelines.emulator.seed import seed_demo_company

    with pinned_emulator(DEMO_NOW) as running:
        emu = running.emu
        realm = seed_demo_company(emu)
        with emu.db.read() as c:
            rows = c.execute("SELECT body FROM objects WHERE realm=? AND entity='Invoice'", (realm,)).fetchall()
        invoices = [orjson.loads(body) for (body,) in rows]
        assert len(invoices) > 50
        dates = sorted(o["TxnDate"] for o in invoices)
        assert dates[0] >= "2025-06-16" and dates[-1] <= "2026-06-17"
        created = {o["MetaData"]["CreateTime"][:10] for o in invoices}
        assert created == {"2026-06-17"}  # the day the seed ran, on the emulator's clock


def test_the_control_api_reads_moves_and_freezes_the_clock(emulator_pinned: RunningEmulator) -> None:
    url = f"{emulator_pinned.url}/_emulator/clock"
    state = requests.get(url, timeout=10).json()
    assert state["frozen"] is False and state["scale"] == 1.0
    assert abs(datetime.fromisoformat(state["now"]) - DEMO_NOW) < timedelta(seconds=30)

    target = "2026-07-01T07:00:00Z"  # midnight Pacific on 1 July
    frozen = requests.post(url, json={"now": target, "frozen": True}, timeout=10).json()
    assert frozen["frozen"] is True and datetime.fromisoformat(frozen["now"]) == datetime(2026, 7, 1, 7, tzinfo=UTC)
    assert emulator_pinned.emu.clock.today() == "2026-07-01"
    assert requests.post(url, json={"advance_seconds": 60}, timeout=10).json()["now"] == "2026-07-01T07:01:00+00:00"

    back = requests.post(url, json={"now": "2026-06-01T00:00:00Z"}, timeout=10)
    assert back.status_code == 400 and "only moves forward" in back.json()["message"]
    assert requests.post(url, json={"now": "not a date"}, timeout=10).status_code == 400
    assert requests.post(url, json={"frozen": "yes"}, timeout=10).status_code == 400
    running = requests.post(url, json={"frozen": False}, timeout=10).json()
    assert running["frozen"] is False and running["now"].startswith("2026-07-01T07:01:00")


def test_a_data_file_keeps_the_pinned_timeline_and_refuses_to_go_back(tmp_path: Path) -> None:
    path = str(tmp_path / "qbo.sqlite")
    first = Emulator(EmulatorSettings(data_file=path, now=DEMO_NOW))
    try:
        first.engine.create_company("Pinned Co")
    finally:
        first.close()
    # restarted without `now`: the clock carries on from the pinned timeline, not the machine's date
    second = Emulator(EmulatorSettings(data_file=path))
    try:
        assert abs(second.clock.timestamp() - DEMO_NOW.timestamp()) < 60
    finally:
        second.close()
    later = Emulator(EmulatorSettings(data_file=path, now=DEMO_NOW + timedelta(days=30)))
    try:
        assert later.clock.today() == "2026-07-17"
    finally:
        later.close()
    with pytest.raises(ValueError, match="only moves forward"):
        Emulator(EmulatorSettings(data_file=path, now=DEMO_NOW))
