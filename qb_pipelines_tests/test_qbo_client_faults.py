"""The client under the faults QBO really produces, injected by the emulator over real HTTP.

Retries with backoff (delays recorded through the injectable ``sleep``, so a 60 s Retry-After
costs no wall time, while every request still goes to the emulator), the rate limit kept with
many threads on one company, a 401 in the middle of a run recovered by one refresh, and a write
whose answer was lost retried with its requestid without posting twice.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.qbo.environments import environment
from qb_pipelines.qbo.errors import (
    AuthenticationError,
    InvalidGrantError,
    OutcomeUnknownError,
    TransientServerError,
)
from qb_pipelines.qbo.ratelimit import CompanyRateLimiter, set_limiter
from qb_pipelines_tests.qbo_helpers import Recorder, counters, make_client, token_source


def inject(running: RunningEmulator, body: dict[str, Any]) -> None:
    with EmulatorControl(running.url) as control:
        control.set_faults(body)


@pytest.fixture
def realm(emulator: RunningEmulator) -> str:
    return emulator.emu.engine.create_company("Fault Tolerant Co")


def _jitter_bounds_hold(delays: list[float], base: float, cap: float) -> bool:
    return all(0 <= d <= min(cap, base * 2**i) for i, d in enumerate(delays))


# --------------------------------------------------------------------------------------------- retries
@pytest.mark.parametrize("fault", ["503", "500"])
def test_server_errors_are_retried_with_exponential_backoff_and_full_jitter(emulator: RunningEmulator, realm: str,
                                                                          fault: str) -> None:
    rec = Recorder()
    client = make_client(emulator, realm, recorder=rec, backoff_base_s=0.5, backoff_cap_s=3.0, max_retries=5)
    customer = client.create("Customer", {"DisplayName": "Retry Me"})
    inject(emulator, {"next": {"fault": fault, "count": 4, "scope": {"realms": [realm]}}})

    assert client.read("Customer", customer["Id"])["DisplayName"] == "Retry Me"

    assert counters(emulator, realm)["injected"][fault] == 4
    assert len(rec.delays) == 4 and client.stats.retries == 4
    assert _jitter_bounds_hold(rec.delays, 0.5, 3.0)  # uniform(0, min(cap, base * 2**attempt))


def test_backoff_delays_are_full_jitter_over_many_draws(emulator: RunningEmulator, realm: str) -> None:
    client = make_client(emulator, realm, backoff_base_s=1.0, backoff_cap_s=8.0)
    for attempt in range(6):
        draws = [client.backoff_delay(attempt) for _ in range(400)]
        bound = min(8.0, 2.0**attempt)
        assert all(0 <= d <= bound for d in draws)
        # full jitter spreads over the whole range, not around the bound
        assert min(draws) < bound * 0.1 and max(draws) > bound * 0.9
    assert client.backoff_delay(0, retry_after=30) >= 30


def test_throttled_requests_wait_at_least_retry_after(emulator: RunningEmulator, realm: str) -> None:
    rec = Recorder()
    client = make_client(emulator, realm, recorder=rec, backoff_base_s=0.5, backoff_cap_s=4.0)
    inject(emulator, {"next": {"fault": "429", "count": 2, "scope": {"realms": [realm]}}})

    assert client.count("Customer") == 0

    assert counters(emulator, realm)["injected"]["429"] == 2
    # the emulator's Retry-After for an injected 429 is the minute window: honoured, not the jitter
    assert rec.delays and all(d >= 60 for d in rec.delays) and len(rec.delays) == 2
    assert client.stats.throttled == 2


def test_retries_run_out_with_a_typed_error(emulator: RunningEmulator, realm: str) -> None:
    rec = Recorder()
    client = make_client(emulator, realm, recorder=rec, max_retries=2)
    inject(emulator, {"next": {"fault": "500", "count": 5, "scope": {"realms": [realm]}}})
    with pytest.raises(TransientServerError) as info:
        client.count("Customer")
    assert info.value.status == 500 and info.value.code == "10000" and info.value.intuit_tid
    assert "retry" in info.value.hint
    assert len(rec.delays) == 2


def test_dropped_connections_on_reads_are_retried(emulator: RunningEmulator, realm: str) -> None:
    rec = Recorder()
    client = make_client(emulator, realm, recorder=rec)
    inject(emulator, {"next": {"fault": "drop", "count": 2, "scope": {"realms": [realm]}}})
    assert client.count("Customer") == 0
    assert len(rec.delays) == 2


# --------------------------------------------------------------------------------------------- rate limit
def test_many_threads_sharing_a_company_cause_no_429(emulator: RunningEmulator, realm: str) -> None:
    # the emulator's real throttles, lowered so the test takes seconds instead of minutes
    limits = {"per_minute": 120, "window_s": 1.0, "concurrent": 5}
    with EmulatorControl(emulator.url) as control:
        control.set_limits(limits)
    # the process-wide limiter of this company, configured to match; every client below shares it
    shared = set_limiter(realm, CompanyRateLimiter(per_window=120, window_s=1.0, concurrent=5))
    tokens = token_source(emulator, realm)
    customer = make_client(emulator, realm, tokens=tokens, rate_limiter=shared).create("Customer",
                                                                                        {"DisplayName": "Shared"})
    with EmulatorControl(emulator.url) as control:
        control.call("POST", "counters/reset", {"realmId": realm})
    env = environment("emulator", emulator.url)
    delays: list[float] = []
    errors: list[BaseException] = []

    def worker(_: int) -> int:
        client = QBOClient(realm, tokens, env, sleep=delays.append, max_retries=0)  # no rate_limiter passed
        done = 0
        for _ in range(20):
            try:
                client.read("Customer", customer["Id"])
                done += 1
            except Exception as exc:  # collected: the assertion below names it
                errors.append(exc)
        return done

    try:
        with ThreadPoolExecutor(max_workers=30) as pool:
            done = sum(pool.map(worker, range(30)))
    finally:
        set_limiter(realm, CompanyRateLimiter())  # the registry is process-wide: leave QBO's numbers behind

    assert errors == []
    assert done == 600
    seen = counters(emulator, realm)
    assert seen["requests"]["read"] == 600
    assert seen["throttled"] == 0
    assert delays == []
    assert shared.waits > 0  # the limiter did hold threads back: 600 reads at 120/s take seconds


# --------------------------------------------------------------------------------------------- 401
def test_a_401_mid_run_is_recovered_by_exactly_one_refresh(emulator: RunningEmulator, realm: str) -> None:
    tokens = token_source(emulator, realm)
    client = make_client(emulator, realm, tokens=tokens)
    customer = client.create("Customer", {"DisplayName": "Mid Run"})
    for _ in range(3):
        client.read("Customer", customer["Id"])

    with EmulatorControl(emulator.url) as control:
        assert control.expire_tokens(realm, "access")["expired"]["access"] >= 1

    # eight threads hit the 401 together: the token source refreshes once for all of them
    barrier = threading.Barrier(8)

    def read(_: int) -> str:
        barrier.wait()
        return client.read("Customer", customer["Id"])["DisplayName"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(read, range(8))) == ["Mid Run"] * 8
    assert tokens.refresh_count == 1
    assert client.stats.refreshes >= 1
    for _ in range(3):
        client.read("Customer", customer["Id"])
    assert tokens.refresh_count == 1


def test_a_second_401_raises_and_a_revoked_grant_says_reconnect(emulator: RunningEmulator, realm: str) -> None:
    class Stuck:
        """Hands out a token that keeps failing, as a store would with a broken refresh."""

        refreshes = 0

        def access_token(self) -> str:
            return "AB01" + "x" * 40

        def refresh(self, stale: str) -> str:
            self.refreshes += 1
            return "AB01" + "y" * 40

    stuck = Stuck()
    client = make_client(emulator, realm, tokens=stuck)
    with pytest.raises(AuthenticationError) as info:
        client.count("Customer")
    assert stuck.refreshes == 1
    assert info.value.status == 401 and info.value.code == "3200" and info.value.intuit_tid
    # a token refused twice is not a dead connection: only a refused refresh says reconnect
    assert "try again" in info.value.hint and "reconnect only if it persists" in info.value.hint
    assert "AB01" not in str(info.value)  # nothing token-shaped from the answer reaches the message

    tokens = token_source(emulator, realm)
    client = make_client(emulator, realm, tokens=tokens)
    client.count("Customer")
    with EmulatorControl(emulator.url) as control:
        control.revoke_all(realm)
    with pytest.raises(InvalidGrantError) as gone:
        client.count("Customer")
    assert "reconnect from Accounting Integrations" in gone.value.hint
    assert gone.value.intuit_tid


# --------------------------------------------------------------------------------------------- lost answers
def test_a_write_whose_answer_was_dropped_is_retried_once_with_its_requestid(emulator: RunningEmulator,
                                                                             realm: str) -> None:
    rec = Recorder()
    client = make_client(emulator, realm, recorder=rec)
    inject(emulator, {"after_commit": "drop",
                      "next": {"fault": "timeout_after_commit", "count": 1, "scope": {"realms": [realm]}}})

    created = client.create("Customer", {"DisplayName": "Exactly Once"})

    assert counters(emulator, realm)["injected"]["timeout_after_commit"] == 1
    assert client.stats.retries == 1
    assert client.count("Customer", where="DisplayName = 'Exactly Once'") == 1
    posts = [r for r in rec.requests if r.method == "POST" and "/customer" in r.url]
    assert len(posts) == 2 and posts[0].url == posts[1].url  # same requestid both times
    assert created["DisplayName"] == "Exactly Once"


def test_a_timed_out_write_is_retried_with_its_requestid(emulator: RunningEmulator, realm: str) -> None:
    client = make_client(emulator, realm, timeout_s=0.5, recorder=Recorder())
    inject(emulator, {"after_commit": "delay", "after_commit_delay_s": 1.5,
                      "next": {"fault": "timeout_after_commit", "count": 1, "scope": {"realms": [realm]}}})
    created = client.create("Customer", {"DisplayName": "Slow But Once"})
    assert created["Id"]
    assert client.count("Customer", where="DisplayName = 'Slow But Once'") == 1


def test_a_write_still_unanswered_after_retries_is_outcome_unknown(emulator: RunningEmulator, realm: str) -> None:
    client = make_client(emulator, realm, max_retries=2, recorder=Recorder())
    inject(emulator, {"after_commit": "drop",
                      "next": {"fault": "timeout_after_commit", "count": 3, "scope": {"realms": [realm]}}})
    with pytest.raises(OutcomeUnknownError) as info:
        client.create("Customer", {"DisplayName": "Maybe Posted"})
    requestid = info.value.requestid
    assert requestid and requestid in info.value.hint

    # later, the caller retries with the same requestid: QBO replays, nothing is posted twice
    again = client.create("Customer", {"DisplayName": "Maybe Posted"}, requestid=requestid)
    assert again["DisplayName"] == "Maybe Posted"
    assert client.count("Customer", where="DisplayName = 'Maybe Posted'") == 1


def test_a_batch_with_the_callers_requestid_is_resumed_exactly_once(emulator: RunningEmulator, realm: str) -> None:
    """A push resends a batch after a crash or an unknown outcome: the same requestid replays the first answer."""
    client = make_client(emulator, realm, max_retries=1, recorder=Recorder())
    items = [{"bId": f"c{i}", "operation": "create", "Customer": {"DisplayName": f"Batch Once {i}"}} for i in range(3)]
    inject(emulator, {"after_commit": "drop",
                      "next": {"fault": "timeout_after_commit", "count": 2, "scope": {"realms": [realm]}}})
    with pytest.raises(OutcomeUnknownError) as info:
        client.batch(items, requestid="outbox-17-18-19")
    assert info.value.requestid == "outbox-17-18-19"

    first = client.batch(items, requestid="outbox-17-18-19")  # after a crash: the same batch again
    again = client.batch(items, requestid="outbox-17-18-19")

    assert [r["Customer"]["Id"] for r in first] == [r["Customer"]["Id"] for r in again]
    assert [r["bId"] for r in first] == ["c0", "c1", "c2"]
    assert client.count("Customer", where="DisplayName LIKE 'Batch Once%'") == 3  # each posted once


def test_a_long_batch_derives_one_requestid_per_call_and_replays_them(emulator: RunningEmulator, realm: str) -> None:
    rec = Recorder()
    client = make_client(emulator, realm, recorder=rec)
    items = [{"operation": "create", "Customer": {"DisplayName": f"Chunked {i:02d}"}} for i in range(35)]
    first = client.batch(items, requestid="push-run-1")
    second = client.batch(items, requestid="push-run-1")
    ids = [parse_qs(urlsplit(r.url).query)["requestid"][0] for r in rec.requests if "/batch" in r.url]
    assert len(ids) == 4 and ids[:2] == ids[2:] and ids[0] != ids[1]  # two calls each time, same two ids
    assert all(len(i) <= 36 for i in ids)
    assert [r["Customer"]["Id"] for r in first] == [r["Customer"]["Id"] for r in second]
    assert client.count("Customer", where="DisplayName LIKE 'Chunked%'") == 35


def test_batch_refuses_ids_longer_than_qbo_accepts(emulator: RunningEmulator, realm: str) -> None:
    client = make_client(emulator, realm)
    with pytest.raises(ValueError, match="36"):
        client.batch([{"operation": "create", "Customer": {"DisplayName": "X"}}], requestid="r" * 37)
    with pytest.raises(ValueError, match="10 characters"):
        client.batch([{"bId": "b" * 11, "operation": "create", "Customer": {"DisplayName": "X"}}], requestid="ok")
