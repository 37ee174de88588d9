"""Admission of a v3 request: throttles, injected faults, counting and metering (see :mod:`qb_pipelines.emulator.traffic`).

:class:`Traffic` is the emulator's one traffic object; its ``admit`` / ``admit_async`` context
managers wrap every v3 request. May touch: the traffic state (under its lock), the ``metering``
table, the emulator clock.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.oauth import new_token_id
from qb_pipelines.emulator.traffic.config import (
    EXCLUSIVE_FAULTS,
    KINDS,
    FaultConfig,
    Limits,
    Ticket,
    endpoint_of,
    retry_after,
)
from qb_pipelines.emulator.traffic.control import TrafficControl
from qb_pipelines.emulator.traffic.middleware import DropConnection

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator


class Traffic(TrafficControl):
    """Throttles, injected faults, counters and metering for one emulator. Thread-safe."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self._lock = threading.Lock()
        self.limits = Limits()
        self.config = FaultConfig()
        self._rng = random.Random(self.config.seed)
        # rolling windows: lifetime-clock times of admitted requests
        self._realm_hits: dict[str, deque[float]] = defaultdict(deque)
        self._batch_app: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._batch_realm: dict[str, deque[float]] = defaultdict(deque)
        self._in_flight: Counter[tuple[str, str]] = Counter()
        self._counters: dict[str, dict[str, Any]] = {}
        self._metering_cache: dict[tuple[str, str, str], int] = {}

    @contextmanager
    def admit(
        self,
        realm: str,
        *,
        kind: str,
        app_key: str = "app",
        path: str = "",
        method: str = "GET",
        token_id: str | None = None,
    ) -> Iterator[Ticket]:
        """Admit one v3 request (sync handlers). See the module docstring for what it raises.

        Args:
            realm: the company addressed.
            kind: ``"read"`` (CorePlus), ``"write"`` (Core) or ``"batch"``.
            app_key: the calling app (OAuth client id): the concurrency and batch caps are per app.
            path: the URL path (counters per endpoint, path-scoped injections).
            method: the HTTP method (method-scoped injections).
            token_id: the access token's internal id (``oauth.Bearer.token_id``): an injected
                expired token names it as a natural 401 does (never the bearer value).
        """
        ticket = self.enter(realm, kind=kind, app_key=app_key, path=path, method=method, token_id=token_id)
        try:
            if ticket.pre_delay:
                time.sleep(ticket.pre_delay)
            yield ticket
            if ticket.post_delay:
                time.sleep(ticket.post_delay)
            if ticket.after_commit == "drop":
                raise DropConnection()
        finally:
            self.leave(ticket)

    @asynccontextmanager
    async def admit_async(
        self,
        realm: str,
        *,
        kind: str,
        app_key: str = "app",
        path: str = "",
        method: str = "GET",
        token_id: str | None = None,
    ) -> AsyncIterator[Ticket]:
        """:meth:`admit` for async handlers (sleeps without blocking the event loop)."""
        ticket = self.enter(realm, kind=kind, app_key=app_key, path=path, method=method, token_id=token_id)
        try:
            if ticket.pre_delay:
                await asyncio.sleep(ticket.pre_delay)
            yield ticket
            if ticket.post_delay:
                await asyncio.sleep(ticket.post_delay)
            if ticket.after_commit == "drop":
                raise DropConnection()
        finally:
            self.leave(ticket)

    def enter(
        self,
        realm: str,
        *,
        kind: str,
        app_key: str = "app",
        path: str = "",
        method: str = "GET",
        token_id: str | None = None,
    ) -> Ticket:
        """Count, throttle and decide injections for one request; pair with :meth:`leave`.

        Prefer :meth:`admit`; this is its first half, for callers that cannot use a ``with``.

        Raises:
            faults.QBOFault: 429/3001 when over a limit (or injected), 500/10000 when injected.
            faults.AuthFailure: injected expired token.
            DropConnection: injected dropped connection (before running).
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
        ticket = Ticket(realm, kind, app_key, path, method, endpoint_of(path))
        month = self._month(realm)
        # read before taking the traffic lock: never wait for the DB lock while holding it
        used = self._metered(realm, month, "read") if kind == "read" and self.limits.coreplus_per_month else 0
        with self._lock:
            stats = self._stats(realm)
            stats["requests"][kind] += 1
            stats["requests"]["total"] += 1
            if ticket.endpoint:
                stats["endpoints"][ticket.endpoint] += 1
            wait = self._over_limit(ticket, used)
            if wait is not None:
                stats["throttled"] += 1
                fault = faults.throttled()
                fault.headers["Retry-After"] = retry_after(wait)
                raise fault
            self._record(ticket)
            injected, slow = self._decide(ticket)
            for name in (injected, "slow" if slow else None):
                if name:
                    stats["injected"][name] += 1
            if injected in ("429", "500", "503", "drop", "expired_token"):
                # decided before running: the request never executes and never holds a slot
                raise self._fault(injected, token_id)
            self._in_flight[(realm, app_key)] += 1
            ticket._slot = True
            if slow:
                ticket.pre_delay = self.config.slow_delay_s
            if injected == "timeout_after_commit":
                ticket.after_commit = self.config.after_commit
                if ticket.after_commit == "delay":
                    ticket.post_delay = self.config.after_commit_delay_s
        if kind in ("read", "write"):
            # batch items are metered by the API through meter(), one per item kind
            self.meter(realm, kind, month=month)
        return ticket

    def leave(self, ticket: Ticket) -> None:
        """Release the request's concurrency slot (second half of :meth:`enter`)."""
        with self._lock:
            if ticket._slot:
                ticket._slot = False
                key = (ticket.realm, ticket.app_key)
                self._in_flight[key] -= 1
                if self._in_flight[key] <= 0:
                    del self._in_flight[key]

    def meter(self, realm: str, kind: str, count: int = 1, *, month: str | None = None) -> None:
        """Add ``count`` metered calls of ``kind`` (``read`` = CorePlus, ``write`` = Core).

        ``admit`` meters read and write requests itself; the batch route calls this per item.
        """
        if kind not in ("read", "write"):
            raise ValueError("metering kind must be 'read' or 'write'")
        month = month or self._month(realm)
        with self.emu.db.tx() as c:
            c.execute(
                "INSERT INTO metering(realm, month, kind, count) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(realm, month, kind) DO UPDATE SET count = count + excluded.count",
                (realm, month, kind, count),
            )
            row = c.execute(
                "SELECT count FROM metering WHERE realm=? AND month=? AND kind=?", (realm, month, kind)
            ).fetchone()
        with self._lock:
            self._metering_cache[(realm, month, kind)] = int(row[0])

    # --- internals ------------------------------------------------------------------------

    def _month(self, realm: str) -> str:
        return self.emu.clock.now().astimezone(self.emu.company_tz(realm)).strftime("%Y-%m")

    def _stats(self, realm: str) -> dict[str, Any]:
        stats = self._counters.get(realm)
        if stats is None:
            stats = {"requests": Counter(), "endpoints": Counter(), "throttled": 0, "injected": Counter()}
            self._counters[realm] = stats
        return stats

    def _metered(self, realm: str, month: str, kind: str) -> int:
        """Metered calls so far this month (cached; the DB is read once per key)."""
        key = (realm, month, kind)
        with self._lock:
            cached = self._metering_cache.get(key)
        if cached is not None:
            return cached
        with self.emu.db.read() as c:
            row = c.execute("SELECT count FROM metering WHERE realm=? AND month=? AND kind=?", key).fetchone()
        with self._lock:
            return self._metering_cache.setdefault(key, int(row[0]) if row else 0)

    def _over_limit(self, t: Ticket, reads_this_month: int) -> float | None:
        """Seconds until the refusing window frees a slot, or ``None`` when under every limit."""
        lim = self.limits
        if not lim.enabled:
            return None
        now = self.emu.clock.lifetime_now()
        horizon = now - lim.window_s
        windows: list[tuple[deque[float], int]] = [(self._realm_hits[t.realm], lim.per_minute)]
        if t.kind == "batch":
            windows.append((self._batch_app[(t.realm, t.app_key)], lim.batch_per_minute_app))
            windows.append((self._batch_realm[t.realm], lim.batch_per_minute_realm))
        waits = []
        for hits, cap in windows:
            while hits and hits[0] <= horizon:
                hits.popleft()
            if len(hits) >= cap:
                # the slot frees when the (len - cap + 1)-th oldest hit leaves the window
                waits.append(hits[len(hits) - cap] + lim.window_s - now if cap > 0 else lim.window_s)
        if waits:
            return max(waits)
        if self._in_flight[(t.realm, t.app_key)] >= lim.concurrent:
            return 1.0
        cap = lim.coreplus_per_month
        if cap is not None and t.kind == "read" and reads_this_month >= cap:
            # blocked until the next calendar month starts (company time)
            local = self.emu.clock.now().astimezone(self.emu.company_tz(t.realm))
            first = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            nxt = (first + timedelta(days=32)).replace(day=1)
            return (nxt - local).total_seconds()
        return None

    def _record(self, t: Ticket) -> None:
        now = self.emu.clock.lifetime_now()
        self._realm_hits[t.realm].append(now)
        if t.kind == "batch":
            self._batch_app[(t.realm, t.app_key)].append(now)
            self._batch_realm[t.realm].append(now)

    def _decide(self, t: Ticket) -> tuple[str | None, bool]:
        """(exclusive fault or None, slow?) for a request, queue first, then seeded rates."""
        cfg = self.config
        for item in cfg.queue:
            if item.remaining > 0 and (item.scope or cfg.scope).matches(t):
                item.remaining -= 1
                cfg.queue = [q for q in cfg.queue if q.remaining > 0]
                if item.fault == "slow":
                    return None, True
                return item.fault, False
        if not cfg.rates or not cfg.scope.matches(t):
            return None, False
        # One draw banded over the exclusive faults (their rates sum to <= 1), one for slowness:
        # the same seed and the same request sequence always give the same outcomes.
        draw = self._rng.random()
        chosen = None
        edge = 0.0
        for name in EXCLUSIVE_FAULTS:
            edge += cfg.rates.get(name, 0.0)
            if draw < edge:
                chosen = name
                break
        slow_rate = cfg.rates.get("slow", 0.0)
        slow = bool(slow_rate) and self._rng.random() < slow_rate
        return chosen, slow

    def _fault(self, name: str, token_id: str | None) -> Exception:
        if name == "429":
            fault = faults.throttled()
            fault.headers["Retry-After"] = retry_after(self.limits.window_s)
            return fault
        if name == "500":
            return faults.system_error()
        if name == "503":
            # the front end's 503 is an HTML page, not a Fault (§4.7); api.py renders this marker raw
            return faults.QBOFault(503, "SERVICE", [], headers={"x-emulator-raw": "1"})
        if name == "drop":
            return DropConnection()
        # exactly the natural 401 (oauth.bearer): the token named by its id, never by its value
        expiry = int(self.emu.clock.timestamp())
        return faults.token_expired(token_id or new_token_id(expiry, self._rng))
