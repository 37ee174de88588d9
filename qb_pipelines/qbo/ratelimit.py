"""Stay under QuickBooks' per-company limits instead of bouncing off them.

QBO refuses, with 429 / fault 3001, a company's 501st request in a rolling minute, its 11th
concurrent request, and its 41st batch call in a minute (reference §6). Retrying after a 429
works, but many threads that all hit the limit and all retry make a storm that keeps the
company throttled. So every request first takes a slot from the company's
:class:`CompanyRateLimiter`, shared by all threads of the process through :func:`limiter_for`.

Why the window counts requests *from when they finish*: the limiter cannot know when QBO
registered a request, only that it happened between sending and receiving the answer. A slot
is held while the request is in flight and, once it completes, stays counted for a full window
from that moment. The server's record of the request is never later than our completion time,
so a new request sent once the window has passed can never make QBO count more than the limit.
This is conservative by one round trip per request, which is nothing next to a minute.

Several processes on one company (a landing run and a push run, the command line beside the
Dagster daemon) each have their own in-process limiter, and together they could send twice the
budget. The store-backed :class:`~qb_pipelines.store.rate_limits.SharedRateLimiter` (what
``Runtime.client_for`` gives every client) holds the same limits across processes, with this one
as its fast path. Throttles that still get through are retried by the client with backoff.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

#: QBO's production limits (reference §6).
DEFAULT_PER_MINUTE = 500
DEFAULT_CONCURRENT = 10
DEFAULT_BATCH_PER_MINUTE = 40

KINDS = ("read", "write", "batch")


class RateLimiter(Protocol):
    """What :class:`~qb_pipelines.qbo.client.QBOClient` needs from a limiter: one slot per request.

    Implemented by :class:`CompanyRateLimiter` (one process) and by the store-backed
    ``qb_pipelines.store.rate_limits.SharedRateLimiter`` (every process of a deployment).
    """

    def acquire(self, kind: str = "read") -> AbstractContextManager[None]:
        """Hold one request slot of ``kind`` (``read``, ``write`` or ``batch``) for the ``with`` body."""
        ...

    def snapshot(self) -> dict[str, float]:
        """Current use, for logs and stats."""
        ...


class CompanyRateLimiter:
    """Sliding-window and concurrency limits for one company (thread-safe).

    Args:
        per_window: Requests allowed in any ``window_s`` (batch calls included).
        window_s: The window length in seconds (60: QBO's minute).
        concurrent: Requests in flight at once.
        batch_per_window: Batch calls allowed in any ``window_s`` (QBO: 40 per company and app).
        clock: Monotonic clock (seconds); injectable for tests of the limiter itself.
    """

    def __init__(
        self,
        per_window: int = DEFAULT_PER_MINUTE,
        window_s: float = 60.0,
        concurrent: int = DEFAULT_CONCURRENT,
        batch_per_window: int = DEFAULT_BATCH_PER_MINUTE,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_window < 1 or concurrent < 1 or batch_per_window < 1 or window_s <= 0:
            raise ValueError("rate limits must be positive")
        self.per_window = per_window
        self.window_s = window_s
        self.concurrent = concurrent
        self.batch_per_window = batch_per_window
        self._clock = clock
        self._cond = threading.Condition()
        self._done: deque[float] = deque()  # completion times of requests still in the window
        self._batch_done: deque[float] = deque()
        self._in_flight = 0
        self._batch_in_flight = 0
        #: How many acquisitions had to wait, and for how long in total (seconds): for stats.
        self.waits = 0
        self.waited_s = 0.0

    def _prune(self, now: float) -> None:
        horizon = now - self.window_s
        for window in (self._done, self._batch_done):
            while window and window[0] <= horizon:
                window.popleft()

    def _wait_needed(self, kind: str, now: float) -> float | None:
        """Seconds until a slot may free (``None``: a slot is free now)."""
        self._prune(now)
        waits: list[float] = []
        if self._in_flight >= self.concurrent:
            waits.append(self.window_s)  # woken by a release, not by the timer
        used = len(self._done) + self._in_flight
        if used >= self.per_window:
            if len(self._done) > used - self.per_window:
                waits.append(self._done[used - self.per_window] + self.window_s - now)
            else:
                waits.append(self.window_s)
        if kind == "batch":
            used_b = len(self._batch_done) + self._batch_in_flight
            if used_b >= self.batch_per_window:
                if len(self._batch_done) > used_b - self.batch_per_window:
                    waits.append(self._batch_done[used_b - self.batch_per_window] + self.window_s - now)
                else:
                    waits.append(self.window_s)
        return max(waits) if waits else None

    @contextmanager
    def acquire(self, kind: str = "read") -> Iterator[None]:
        """Hold one request slot of ``kind`` (``read``, ``write`` or ``batch``) for the ``with`` body.

        Blocks until the company is under every limit; the slot counts against the window from
        the moment the body ends.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        started = self._clock()
        waited = False
        with self._cond:
            while (wait := self._wait_needed(kind, self._clock())) is not None:
                waited = True
                self._cond.wait(timeout=max(0.001, wait))
            self._in_flight += 1
            if kind == "batch":
                self._batch_in_flight += 1
            if waited:
                self.waits += 1
                self.waited_s += self._clock() - started
        try:
            yield
        finally:
            with self._cond:
                now = self._clock()
                self._in_flight -= 1
                self._done.append(now)
                if kind == "batch":
                    self._batch_in_flight -= 1
                    self._batch_done.append(now)
                self._cond.notify_all()

    def snapshot(self) -> dict[str, float]:
        """Current use: requests in flight and counted in the window (for logs and stats)."""
        with self._cond:
            self._prune(self._clock())
            return {
                "in_flight": self._in_flight,
                "in_window": len(self._done) + self._in_flight,
                "batch_in_window": len(self._batch_done) + self._batch_in_flight,
                "waits": self.waits,
                "waited_s": round(self.waited_s, 3),
            }


_registry: dict[str, CompanyRateLimiter] = {}
_registry_lock = threading.Lock()


def limiter_for(realm_id: str) -> CompanyRateLimiter:
    """The process-wide limiter of company ``realm_id`` (created with QBO's limits on first use).

    Every :class:`~qb_pipelines.qbo.client.QBOClient` of the same company in this process shares
    it, whichever thread created the client.
    """
    with _registry_lock:
        limiter = _registry.get(str(realm_id))
        if limiter is None:
            limiter = _registry[str(realm_id)] = CompanyRateLimiter()
        return limiter


def set_limiter(realm_id: str, limiter: CompanyRateLimiter) -> CompanyRateLimiter:
    """Install ``limiter`` as company ``realm_id``'s shared limiter (e.g. a share of the budget per process)."""
    with _registry_lock:
        _registry[str(realm_id)] = limiter
    return limiter
