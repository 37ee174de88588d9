"""Server-side web sessions and sign-in throttling in the store, on real SQLite and PostgreSQL.

The web tests (``test_web_signin``) show what a browser sees; these pin the store's rules: what
is stored (a hash, never the session id), when a session ends, and that the sign-in limits hold
under parallel attempts from two engines (two web workers) at once.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.engine import Engine

from qb_pipelines.store.db import make_engine, session_factory
from qb_pipelines.store.signin_throttle import ACCOUNT, ADDRESS, Claim, Refusal, SigninThrottleStore
from qb_pipelines.store.users import AdminUserStore
from qb_pipelines.store.web_sessions import WebSessionStore, session_hash
from qb_pipelines_tests.databases import migrated_engine
from qb_pipelines_tests.web_fixtures import MovableClock

CHEAP = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with migrated_engine(request.param, tmp_path_factory.mktemp("websec")) as eng:
        yield eng


@pytest.fixture
def clock() -> MovableClock:
    return MovableClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def users(engine: Engine, clock: MovableClock) -> AdminUserStore:
    return AdminUserStore(session_factory(engine), hasher=CHEAP, clock=clock)


@pytest.fixture
def sessions(engine: Engine, clock: MovableClock) -> WebSessionStore:
    return WebSessionStore(session_factory(engine), clock=clock)


def _email() -> str:
    return f"u-{uuid.uuid4().hex[:8]}@example.com"


# ------------------------------------------------------------------------------------------------
# sessions
# ------------------------------------------------------------------------------------------------
def test_only_the_hash_of_a_session_id_is_stored(engine: Engine, users: AdminUserStore,
                                                 sessions: WebSessionStore) -> None:
    user = users.create(_email(), "long enough password", "admin")
    sid = sessions.start(user.id, 8 * HOUR)
    assert len(sid) >= 43  # 256 random bits
    with engine.connect() as conn:
        ids = conn.execute(sa.text("SELECT id FROM qb_web_sessions WHERE user_id = :u"), {"u": user.id}).scalars().all()
    assert ids == [session_hash(sid)] and sid not in ids
    active = sessions.resolve(sid, HOUR)
    assert active is not None and (active.email, active.role) == (user.email, "admin")
    assert sessions.resolve(session_hash(sid), HOUR) is None  # the stored value opens nothing
    assert sessions.resolve("", HOUR) is None and sessions.resolve("made-up", HOUR) is None


def test_idle_timeout_absolute_expiry_and_sign_out(users: AdminUserStore, sessions: WebSessionStore,
                                                   clock: MovableClock) -> None:
    user = users.create(_email(), "long enough password", "viewer")
    sid = sessions.start(user.id, 5 * HOUR)
    for _ in range(5):  # 50 minutes between requests: never idle for an hour
        clock.advance(50 * 60)
        assert sessions.resolve(sid, HOUR) is not None, clock.now
    clock.advance(50 * 60)  # 5 h after sign-in: the end of its lifetime however active
    assert sessions.resolve(sid, HOUR) is None

    idle = sessions.start(user.id, 3 * HOUR)
    clock.advance(HOUR.total_seconds() + 1)
    assert sessions.resolve(idle, HOUR) is None
    clock.advance(-HOUR.total_seconds())  # even if the clock came back: it was revoked as idle
    assert sessions.resolve(idle, HOUR) is None

    out = sessions.start(user.id, 3 * HOUR)
    sessions.end(out)
    assert sessions.resolve(out, HOUR) is None


def test_password_change_and_removal_end_every_session_of_that_user_only(users: AdminUserStore,
                                                                        sessions: WebSessionStore) -> None:
    alice, bob = users.create(_email(), "alice's password", "admin"), users.create(_email(), "bob's password", "admin")
    alice_sids = [sessions.start(alice.id, 8 * HOUR) for _ in range(3)]
    bob_sid = sessions.start(bob.id, 8 * HOUR)
    users.set_password(alice.email, "alice's new password")
    assert [sessions.resolve(s, HOUR) for s in alice_sids] == [None, None, None]
    assert sessions.live_count(alice.id) == 0
    assert sessions.resolve(bob_sid, HOUR) is not None

    users.remove(bob.email)
    assert users.get(bob.email) is None and users.authenticate(bob.email, "bob's password") is None
    assert sessions.resolve(bob_sid, HOUR) is None
    # SQLite may even give the new user the removed one's id: the sessions went with the user
    users.create(bob.email, "bob's new password", "viewer")
    assert sessions.resolve(bob_sid, HOUR) is None


def test_removing_an_unknown_user_says_so(users: AdminUserStore) -> None:
    from qb_pipelines.store.users import UnknownUserError

    with pytest.raises(UnknownUserError, match=r"ghost@example\.com"):
        users.remove("ghost@example.com")


# ------------------------------------------------------------------------------------------------
# throttling
# ------------------------------------------------------------------------------------------------
@pytest.fixture
def throttle(engine: Engine, clock: MovableClock) -> SigninThrottleStore:
    return SigninThrottleStore(session_factory(engine), clock=clock)


def test_the_account_slows_down_after_5_and_locks_after_10(throttle: SigninThrottleStore,
                                                          clock: MovableClock) -> None:
    email, address = _email(), f"192.0.2.{uuid.uuid4().int % 250}"
    waits = []
    for failures in range(1, ACCOUNT.lock_after):
        assert isinstance(throttle.claim(email, address), Claim), failures
        if failures < ACCOUNT.slow_after:
            continue  # the next attempt may come at once
        refusal = throttle.claim(email, address)  # at once: refused, and not counted
        assert isinstance(refusal, Refusal) and refusal.scope == "account" and not refusal.locked
        waits.append(refusal.retry_after_s)
        clock.advance(refusal.retry_after_s)
    assert waits == [1, 2, 4, 8, 16]
    assert isinstance(throttle.claim(email, address), Claim)  # the 10th guess is checked...
    locked = throttle.claim(email, address)  # ...and locks the account
    assert isinstance(locked, Refusal) and locked.locked and locked.retry_after == ACCOUNT.lock_for
    assert locked.message == "Too many failed sign-ins. Try again in 15 minutes or ask an admin to unlock your account."
    # an unlock by e-mail (any case) opens it again, afresh (the address, at 10 failures, waits 1 s)
    assert throttle.unlock(email.upper()) is True
    assert isinstance(throttle.claim(email, address), Refusal)
    clock.advance(1)
    assert isinstance(throttle.claim(email, address), Claim)
    assert throttle.unlock(_email()) is False


def test_a_success_clears_its_account_but_not_the_address(throttle: SigninThrottleStore, clock: MovableClock) -> None:
    address = f"198.51.100.{uuid.uuid4().int % 250}"
    victim, mine = _email(), _email()
    for _ in range(ACCOUNT.slow_after - 1):
        throttle.claim(victim, address)
    claim = throttle.claim(mine, address)
    assert isinstance(claim, Claim)
    throttle.succeeded(claim)  # the attacker's own account
    for _ in range(ADDRESS.slow_after - ACCOUNT.slow_after + 1):
        assert isinstance(throttle.claim(_email(), address), Claim)
    # 10 failures from the address now (the success took back only its own count): slowed down
    refusal = throttle.claim(_email(), address)
    assert isinstance(refusal, Refusal) and refusal.scope == "address" and not refusal.locked


def test_parallel_attempts_from_two_workers_meet_the_limit_exactly(engine: Engine, clock: MovableClock) -> None:
    """40 guesses at once, through two engines (two web workers): exactly 5 get their password checked."""
    other = make_engine(engine.url)
    try:
        stores = [SigninThrottleStore(session_factory(e), clock=clock) for e in (engine, other)]
        email = _email()
        results: list[object] = []
        lock = threading.Lock()
        start = threading.Barrier(8)

        def guess(store: SigninThrottleStore, n: int) -> None:
            start.wait()
            for i in range(n):
                verdict = store.claim(email, f"203.0.113.{i % 5}")
                with lock:
                    results.append(verdict)

        threads = [threading.Thread(target=guess, args=(stores[i % 2], 5)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert len(results) == 40
        assert sum(isinstance(r, Claim) for r in results) == ACCOUNT.slow_after
        assert all(r.scope == "account" for r in results if isinstance(r, Refusal))
    finally:
        other.dispose()


def test_old_counters_are_forgotten(engine: Engine, throttle: SigninThrottleStore, clock: MovableClock) -> None:
    stale = _email()
    throttle.claim(stale, "192.0.2.77")
    clock.advance(2 * 24 * 3600)
    throttle.claim(_email(), "192.0.2.78")
    with engine.connect() as conn:
        keys = set(conn.execute(sa.text("SELECT key FROM qb_signin_throttle")).scalars())
    assert stale not in keys and "192.0.2.77" not in keys


def test_the_store_tables_exist_after_migrating(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 's.sqlite'}")
    try:
        from qb_pipelines.store.db import migrate

        migrate(engine)
        assert {"qb_web_sessions", "qb_signin_throttle", "qb_sync_runs"} <= set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
