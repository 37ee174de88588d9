"""The emulator's clock: real time plus an offset, and a scale for lifetimes and retry delays.

Tests need to expire tokens, age a CDC cursor past the 30-day look-back or replay a webhook
retry schedule without waiting. Two knobs do it:

* ``advance(seconds)`` moves emulator time forward (everything dated by the emulator, MetaData
  times, token expiries, the CDC look-back, sees the jump);
* ``scale`` multiplies every *duration* the emulator enforces in real time (token lifetimes,
  refresh-token grace, webhook retry delays, grouping windows). ``scale=0.001`` makes a
  3600 s access token lapse after 3.6 real seconds while ``expires_in`` still says 3600, as
  QBO does.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

PACIFIC = ZoneInfo("America/Los_Angeles")


class Clock:
    """Emulator time. Thread-safe; ``now()`` never goes backwards after ``advance``."""

    def __init__(self, scale: float = 1.0, offset_s: float = 0.0) -> None:
        self._lock = threading.Lock()
        self.scale = float(scale)
        self._offset = float(offset_s)
        # Lifetimes run on a virtual clock that advances by real elapsed time / scale.
        self._real_base = time.time()
        self._virt_base = self._real_base

    def set_scale(self, scale: float) -> None:
        """Change the scale; the lifetime clock stays continuous."""
        with self._lock:
            now = time.time()
            self._virt_base += (now - self._real_base) / self.scale
            self._real_base = now
            self.scale = float(scale)

    def advance(self, seconds: float) -> None:
        """Jump emulator time forward (moves both wall time and lifetime time)."""
        with self._lock:
            self._offset += float(seconds)

    @property
    def offset(self) -> float:
        return self._offset

    def timestamp(self) -> float:
        """Emulator wall time as a UTC epoch (dates objects, CDC windows, reports)."""
        return time.time() + self._offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.timestamp(), UTC)

    def lifetime_now(self) -> float:
        """Time used for lifetimes (tokens, grace periods): scaled real time plus offset.

        Compare expiries stored from this clock only against this clock.
        """
        return self._virt_base + (time.time() - self._real_base) / self.scale + self._offset

    def real_delay(self, emulated_seconds: float) -> float:
        """Real seconds to wait for a delay of ``emulated_seconds`` (webhook retries, windows)."""
        return emulated_seconds * self.scale

    def today(self, tz: ZoneInfo = PACIFIC) -> str:
        return self.now().astimezone(tz).date().isoformat()


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
