"""Sign-in throttling: slow down, then lock, password guessing per account and per client address.

Two counters meet every attempt, one for the account (the e-mail typed, whether or not such a
user exists, so the answers never tell which e-mails are real) and one for the client address.
Each counts failures in a 15-minute window that starts at the first failure:

============ ============================= ========================== ===========================
counter      slowed down after             locked after               lock
============ ============================= ========================== ===========================
account      5 failures: wait 1, 2, 4, 8,  10 failures in 15 minutes  15 minutes, or until an
             16 s before the next attempt                             admin unlocks it
address      10 failures: 1, 2, 4... s,    20 failures in 15 minutes  15 minutes, or until an
             at most 30 s                                             admin unlocks it
============ ============================= ========================== ===========================

So one account gets at most 10 guesses per half hour or so, from any number of addresses; one
address at most 20 in 15 minutes over any number of accounts (a shared office network stays
usable). An attempt refused for a delay or a lock does not check the password and counts nothing.

Why these rules hold across processes and under parallel requests: the counters live in the
store (every web worker sees them), and an attempt is counted as a failure *before* its password
is checked, in one short write transaction that also checks the limits (``BEGIN IMMEDIATE`` on
SQLite, row locks on PostgreSQL). Forty parallel guesses therefore meet the limit exactly; a
success then takes its own count back. A success clears the account's counter and never the
address's (an attacker who signs in to an account of their own does not get fresh guesses at
others'); it only removes its own provisional count there.

An admin unlocks an account (or an address) with ``qb-pipelines users unlock``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from qb_pipelines.store.models import SigninThrottle
from qb_pipelines.store.repository import Repository
from qb_pipelines.store.users import normalize_email

__all__ = ["ACCOUNT", "ADDRESS", "Claim", "Refusal", "SigninThrottleStore", "ThrottleRule"]

#: Counters untouched for this long (and not locked) are deleted.
FORGET_AFTER = timedelta(days=1)


@dataclass(frozen=True)
class ThrottleRule:
    """When one counter slows attempts down and when it locks them out.

    Attributes:
        scope: ``account`` or ``address``.
        slow_after: From this many failures in the window, each attempt waits ``2**(failures -
            slow_after)`` seconds (at most ``max_delay_s``) after the previous one.
        lock_after: This many failures in the window lock the counter for ``lock_for``.
        window: How long failures are counted, from the first one.
        lock_for: How long a lock lasts (an admin may unlock sooner).
        max_delay_s: The longest delay between two attempts, in seconds.
    """

    scope: str
    slow_after: int
    lock_after: int
    window: timedelta = timedelta(minutes=15)
    lock_for: timedelta = timedelta(minutes=15)
    max_delay_s: int = 30

    def delay_after(self, failures: int) -> timedelta:
        """How long the next attempt waits after the last one, with ``failures`` counted."""
        if failures < self.slow_after:
            return timedelta(0)
        return timedelta(seconds=min(2 ** min(failures - self.slow_after, 16), self.max_delay_s))


ACCOUNT = ThrottleRule("account", slow_after=5, lock_after=10)
"""Per account (e-mail): 5 free failures, then 1, 2, 4, 8, 16 s; the 10th failure locks for 15 minutes."""
ADDRESS = ThrottleRule("address", slow_after=10, lock_after=20)
"""Per client address: 10 free failures, then 1 s doubling to 30 s; the 20th locks for 15 minutes."""


@dataclass(frozen=True)
class Refusal:
    """An attempt refused without checking the password: wait, or the counter is locked.

    Attributes:
        scope: Which counter refused (``account`` or ``address``).
        locked: A lock (minutes, or an admin) rather than a delay (seconds).
        retry_after: How long until the next attempt may be checked.
    """

    scope: str
    locked: bool
    retry_after: timedelta

    @property
    def retry_after_s(self) -> int:
        """Whole seconds to wait (rounded up; at least 1): the ``Retry-After`` header."""
        return max(1, math.ceil(self.retry_after.total_seconds()))

    @property
    def message(self) -> str:
        """What the sign-in page says."""
        if not self.locked:
            seconds = self.retry_after_s
            return f"Too many failed sign-ins. Try again in {seconds} second{'s' if seconds != 1 else ''}."
        minutes = max(1, math.ceil(self.retry_after.total_seconds() / 60))
        wait = f"{minutes} minute{'s' if minutes != 1 else ''}"
        if self.scope == ADDRESS.scope:
            return (f"Too many failed sign-ins from your network. Try again in {wait} or ask an admin to unlock "
                    "your network address.")
        return f"Too many failed sign-ins. Try again in {wait} or ask an admin to unlock your account."


@dataclass(frozen=True)
class Claim:
    """An attempt allowed to check its password, already counted as a failure until :meth:`succeeded`."""

    email: str
    address: str
    at: datetime
    previous_address_attempt: datetime | None


class SigninThrottleStore(Repository):
    """The sign-in counters (see the module docstring)."""

    rules = (ACCOUNT, ADDRESS)

    def claim(self, email: str, address: str) -> Claim | Refusal:
        """Ask to check one sign-in attempt of ``email`` from ``address``.

        Returns:
            A :class:`Claim` (the attempt is counted as a failure now; call :meth:`succeeded` if
            the password was right), or a :class:`Refusal` (nothing counted, nothing to check).
        """
        keys = (normalize_email(email)[:320], (address or "unknown")[:320])
        now = self._now()
        with self._write() as session:
            session.execute(sa.delete(SigninThrottle).where(
                SigninThrottle.last_attempt_at < now - FORGET_AFTER,
                sa.or_(SigninThrottle.locked_until.is_(None), SigninThrottle.locked_until < now)))
            rows = [self._row(session, rule.scope, key, now) for rule, key in zip(self.rules, keys, strict=True)]
            refusals = [r for r in (self._refusal(rule, row, now) for rule, row in zip(self.rules, rows, strict=True))
                        if r is not None]
            if refusals:
                # A lock before a delay, then the longest wait: the answer the user can act on.
                return max(refusals, key=lambda r: (r.locked, r.retry_after))
            previous = rows[1].last_attempt_at if rows[1].failures else None
            for rule, row in zip(self.rules, rows, strict=True):
                if row.failures == 0:
                    row.window_started_at = now
                row.failures += 1
                row.last_attempt_at = now
                if row.failures >= rule.lock_after:
                    row.locked_until = now + rule.lock_for
            return Claim(email=keys[0], address=keys[1], at=now, previous_address_attempt=previous)

    def succeeded(self, claim: Claim) -> None:
        """The claimed attempt signed in: clear the account's counter and take back the address's count."""
        with self._write() as session:
            session.execute(sa.delete(SigninThrottle).where(SigninThrottle.scope == ACCOUNT.scope,
                                                            SigninThrottle.key == claim.email))
            row = self._locked_row(session, ADDRESS.scope, claim.address)
            if row is None:
                return
            row.failures = max(0, row.failures - 1)
            if row.failures < ADDRESS.lock_after:
                row.locked_until = None
            if row.last_attempt_at == claim.at and claim.previous_address_attempt is not None:
                row.last_attempt_at = claim.previous_address_attempt

    def unlock(self, email: str | None = None, address: str | None = None) -> bool:
        """Forget the failures of an account and/or an address (an admin's unlock).

        Returns:
            Whether there was anything to forget.
        """
        wanted = [(ACCOUNT.scope, normalize_email(email)[:320]) if email else None,
                  (ADDRESS.scope, address[:320]) if address else None]
        with self._write() as session:
            found = 0
            for scope, key in filter(None, wanted):
                found += int(session.execute(sa.delete(SigninThrottle).where(
                    SigninThrottle.scope == scope, SigninThrottle.key == key)).rowcount or 0)
            return found > 0

    def locked(self) -> list[tuple[str, str, datetime]]:
        """Every counter locked now: ``(scope, key, locked_until)``, soonest unlock first."""
        now = self._now()
        with self._read() as session:
            rows = session.execute(sa.select(SigninThrottle.scope, SigninThrottle.key, SigninThrottle.locked_until)
                                   .where(SigninThrottle.locked_until > now)
                                   .order_by(SigninThrottle.locked_until)).all()
            return [(scope, key, until) for scope, key, until in rows]

    # -- helpers ------------------------------------------------------------------------------------
    @staticmethod
    def _refusal(rule: ThrottleRule, row: SigninThrottle, now: datetime) -> Refusal | None:
        if row.locked_until is not None:
            if row.locked_until > now:
                return Refusal(rule.scope, True, row.locked_until - now)
            row.failures, row.locked_until = 0, None  # the lock is over: start afresh
        elif row.failures and now - row.window_started_at >= rule.window:
            row.failures = 0  # the window is over
        wait_until = row.last_attempt_at + rule.delay_after(row.failures)
        if row.failures and now < wait_until:
            return Refusal(rule.scope, False, wait_until - now)
        return None

    def _row(self, session: Session, scope: str, key: str, now: datetime) -> SigninThrottle:
        """The counter, created when missing, locked for this transaction."""
        table = SigninThrottle.__table__
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - only the two tested dialects are supported
            raise NotImplementedError(f"sign-in throttling supports sqlite and postgresql, not {dialect}")
        session.execute(insert(table).values(scope=scope, key=key, failures=0, window_started_at=now,
                                             last_attempt_at=now).on_conflict_do_nothing())
        row = self._locked_row(session, scope, key)
        assert row is not None  # inserted just above, or there already
        return row

    @staticmethod
    def _locked_row(session: Session, scope: str, key: str) -> SigninThrottle | None:
        # FOR UPDATE: parallel attempts on one counter queue here (PostgreSQL); SQLite's
        # BEGIN IMMEDIATE already serialises every writer.
        return session.scalars(sa.select(SigninThrottle).where(SigninThrottle.scope == scope, SigninThrottle.key == key)
                               .with_for_update()).one_or_none()
