"""The emulator's clock: real time plus an offset, and a scale for lifetimes and retry delays.

Tests need to expire tokens, age a CDC cursor past the 30-day look-back or replay a webhook
retry schedule without waiting. Two knobs do it:

* ``advance(seconds)`` moves emulator time forward (everything dated by the emulator, MetaData
  times, token expiries, the CDC look-back, sees the jump);
* ``scale`` multiplies every *duration* the emulator enforces in real time (token lifetimes,
  refresh-token grace, webhook retry delays, grouping windows). ``scale=0.001`` makes a
  3600 s access token lapse after 3.6 real seconds while ``expires_in`` still says 3600, as
  QBO does.

Tests that depend on the calendar (the demo seed dates twelve months back from "today", reports
and reconciliation look at the current month) pin the clock instead of reading the machine's:

* ``Clock(start=datetime(2028, 3, 1, 16, tzinfo=UTC))`` starts emulator time at that instant and
  lets it run on from there at real speed, so tokens still expire, webhooks still fire and CDC
  windows still move (the offset is simply ``start - real now``);
* ``frozen=True`` (or :meth:`Clock.freeze`) stops emulator time: only ``advance`` moves it. Use it
  only when a test needs exact timestamps; a frozen clock never expires a token on its own.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")


class Clock:
    """Emulator time. Thread-safe; ``now()`` never goes backwards.

    Args:
        scale: multiplier of every duration the emulator enforces in real time.
        offset_s: seconds emulator time runs ahead of real time.
        start: the emulator's wall time at construction (aware; a naive datetime is read as UTC).
            Overrides ``offset_s``; time then runs on from there.
        frozen: emulator time stands still (only :meth:`advance` moves it).
    """

    def __init__(self, scale: float = 1.0, offset_s: float = 0.0, *, start: datetime | None = None,
                 frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self.scale = float(scale)
        # Real seconds spent frozen are subtracted, so time resumes where it stopped.
        self._paused = 0.0
        self._frozen_at: float | None = time.time() if frozen else None
        run = self._run()
        self._offset = float(offset_s) if start is None else instant(start) - run
        # While frozen, wall time is kept exactly (a sum of floats could read 11:59:59.9999999).
        self._frozen_ts = run + self._offset if start is None else instant(start)
        # Lifetimes run on a virtual clock that advances by running time / scale.
        self._real_base = run
        self._virt_base = run

    def _run(self) -> float:
        """Real time minus the time spent frozen (stands still while frozen)."""
        real = time.time() if self._frozen_at is None else self._frozen_at
        return real - self._paused

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def freeze(self) -> None:
        """Stop emulator time (wall and lifetime); ``advance`` still moves it."""
        with self._lock:
            if self._frozen_at is None:
                self._frozen_ts = self._run() + self._offset
                self._frozen_at = time.time()

    def unfreeze(self) -> None:
        """Let emulator time run again from where it stood."""
        with self._lock:
            if self._frozen_at is not None:
                self._paused += time.time() - self._frozen_at
                self._frozen_at = None

    def set_scale(self, scale: float) -> None:
        """Change the scale; the lifetime clock stays continuous."""
        with self._lock:
            now = self._run()
            self._virt_base += (now - self._real_base) / self.scale
            self._real_base = now
            self.scale = float(scale)

    def advance(self, seconds: float) -> None:
        """Jump emulator time forward (moves both wall time and lifetime time)."""
        with self._lock:
            self._offset += float(seconds)
            self._frozen_ts += float(seconds)

    def advance_to(self, when: datetime) -> float:
        """Jump emulator time forward to ``when``; returns the seconds advanced.

        Raises:
            ValueError: ``when`` is before the emulator's now (the clock only moves forward).
        """
        seconds = instant(when) - self.timestamp()
        if seconds < 0:
            raise ValueError(f"the clock only moves forward: {when.isoformat()} is before {self.now().isoformat()}")
        self.advance(seconds)
        return seconds

    @property
    def offset(self) -> float:
        return self._offset

    def timestamp(self) -> float:
        """Emulator wall time as a UTC epoch (dates objects, CDC windows, reports)."""
        if self._frozen_at is not None:
            return self._frozen_ts
        return self._run() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def lifetime_now(self) -> float:
        """Time used for lifetimes (tokens, grace periods): scaled running time plus offset.

        Compare expiries stored from this clock only against this clock.
        """
        return self._virt_base + (self._run() - self._real_base) / self.scale + self._offset

    def real_delay(self, emulated_seconds: float) -> float:
        """Real seconds to wait for a delay of ``emulated_seconds`` (webhook retries, windows)."""
        return emulated_seconds * self.scale

    def today(self, tz: ZoneInfo = PACIFIC) -> str:
        return self.now().astimezone(tz).date().isoformat()


def instant(when: datetime) -> float:
    """A datetime as a UTC epoch; a naive one is read as UTC."""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def qbo_timestamp(ts: float, tz: ZoneInfo = PACIFIC) -> str:
    """MetaData time as QBO writes it: seconds and a numeric offset, ``2023-02-18T13:13:33-08:00``."""
    return datetime.fromtimestamp(int(ts), tz).isoformat()


def qbo_envelope_time(ts: float, tz: ZoneInfo = PACIFIC) -> str:
    """Envelope ``time``: milliseconds and an offset, ``2017-03-14T11:25:54.133-07:00``."""
    dt = datetime.fromtimestamp(ts, tz)
    return dt.isoformat(timespec="milliseconds")


def parse_instant(value: str) -> float:
    """Parse an ISO date or datetime (any offset, ``Z``, or none) to a UTC epoch.

    QBO compares query and CDC timestamps as instants whatever offset they carry. A ``+`` that
    arrived URL-decoded as a space (``2024-01-01T10:00:00 08:00``) is repaired. A bare date
    means midnight Pacific, a datetime without offset is read as Pacific too.

    Raises:
        ValueError: when the text is not a date or datetime.
    """
    text = value.strip()
    if len(text) > 10 and text[10] in "T ":
        head, tail = text[:19], text[19:]
        if tail.startswith(" "):
            tail = "+" + tail[1:]
        text = head.replace(" ", "T", 1) + tail
    if text.endswith("Z") or text.endswith("z"):
        text = text[:-1] + "+00:00"
    # offsets written without a colon: -0700
    if len(text) >= 5 and text[-5] in "+-" and text[-4:].isdigit() and "T" in text:
        text = text[:-2] + ":" + text[-2:]
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=PACIFIC)
    return dt.timestamp()


def add_days(date_text: str, days: int) -> str:
    return (datetime.fromisoformat(date_text) + timedelta(days=days)).date().isoformat()
