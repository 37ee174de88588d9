"""Traffic control: QBO's throttles, fault injection, request counters and metering.

What QBO enforces (reference §6, §11 item 8), with the same defaults here:

* 500 requests per rolling minute per company (batch calls included, each counting once);
* 10 requests in flight at once per company **and app** (the 11th concurrent one gets a 429);
* batch calls: 40 per minute per company+app and 120 per minute per company;
* optionally (off by default) the Builder tier's monthly CorePlus cap, past which reads get 429.

Over any limit the request is refused with HTTP 429, Fault code 3001, type ``SERVICE``
(:func:`faults.throttled`), before it runs. QBO's own ``Retry-After`` is unconfirmed (§12); the
emulator always sends one, in seconds until the window that refused the request frees a slot
(1 for the concurrency limit, which frees when a request finishes). Windows are measured on
``emu.clock.lifetime_now()``: real time divided by the clock scale, plus ``advance()`` jumps, so
tests shrink a minute with ``clock_scale`` or skip it with ``advance_clock(61)``.

Metering (§6, App Partner Program): reads (query, read, CDC, reports, CompanyInfo, PDF) are
**CorePlus** and metered; writes are **Core**. Both are counted per company per calendar month
(company time zone) in table ``metering``, so they survive a restart with ``--data-file``.
``admit`` meters read and write requests; a batch call is metered by its items, which the batch
route reports with :meth:`Traffic.meter` (``meter(realm, "read", n_queries)``).

Fault injection (for client tests) is decided **before** the request runs, so a write that gets
an injected 500 was not applied, with one deliberate exception, ``timeout_after_commit``: the
request runs and commits, then the response is dropped or delayed, which is how a client proves
that retrying a timed-out write with the same ``requestid`` does not duplicate it.

API for the v3 routes (``api.py``)::

    with emu.traffic.admit(realm, kind="read", app_key=client_id, path=request.url.path,
                           method=request.method) as ticket:
        response = execute_the_request()
    return response

``admit`` is a sync context manager for handlers running in the thread pool (it sleeps with
``time.sleep``); async handlers use ``async with emu.traffic.admit_async(...)`` with the same
arguments. On entry it counts the request, then raises instead of admitting:

* :class:`faults.QBOFault`: 429 with a ``Retry-After`` in ``fault.headers``, an injected
  500/10000, or an injected 503 marked ``x-emulator-raw: 1`` (the front end's non-JSON page):
  render it like any fault, *including* ``fault.headers`` (minus ``x-emulator-*``);
* :class:`faults.AuthFailure` (injected expired token): render the lower-case 401;
* :class:`DropConnection`: let it propagate (never catch it in a broad ``except Exception``);
  :class:`TrafficMiddleware` turns it into a dropped connection.

A slow-response injection sleeps before the body runs. On a clean exit, a
``timeout_after_commit`` injection sleeps after the body (``"delay"``) or raises
:class:`DropConnection` (``"drop"``). The :class:`Ticket` yielded describes the decisions.

Wiring in ``app.py``: add ``Middleware(TrafficMiddleware)`` to the Starlette middleware list (any
position: it only needs to sit inside Starlette's ``ServerErrorMiddleware``, which all user
middleware does).

How a dropped connection looks: the middleware sends a ``200`` status line with a
``Content-Length`` larger than the bytes that follow, then returns; uvicorn closes the socket
when an ASGI app ends without completing its response. Clients see the connection break while
reading the body: ``requests.exceptions.ChunkedEncodingError`` (urllib3 ``ProtocolError``
"IncompleteRead") or ``httpx.RemoteProtocolError``. ASGI has no way to close before the status
line; for a timeout-shaped failure use the ``"delay"`` after-commit action with a delay longer
than the client's read timeout (the client sees a read timeout).

Control API (under ``/_emulator``): ``GET/POST /faults``, ``GET/POST /limits``,
``GET /companies/{realmId}/counters``, ``GET /metering?realmId=&month=``,
``POST /counters/reset``. Delays in the fault configuration are in real seconds (they shape
what a client experiences, not emulated time).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import random
import re
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.oauth import new_token_id

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator

KINDS = ("read", "write", "batch")

#: Faults that replace the response (at most one per request), in the order rates are banded.
EXCLUSIVE_FAULTS = ("429", "500", "503", "drop", "expired_token", "timeout_after_commit")
#: Every fault name the configuration accepts (``slow`` combines with the others).
FAULT_NAMES = (*EXCLUSIVE_FAULTS, "slow")


class DropConnection(Exception):
    """Raised to make :class:`TrafficMiddleware` break the connection without a full response."""


# --- dropped connections ------------------------------------------------------------------

# Set while the middleware deliberately leaves a response incomplete, so uvicorn's log line
# about it ("returned without completing response") is not reported as an application error.
_dropping: contextvars.ContextVar[bool] = contextvars.ContextVar("qbo_emulator_dropping", default=False)


class _DeliberateDropFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (_dropping.get() and "without completing response" in str(record.msg))


_drop_filter = _DeliberateDropFilter()


class TrafficMiddleware:
    """ASGI middleware that turns a :class:`DropConnection` raised by a route into a broken connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        logger = logging.getLogger("uvicorn.error")
        if _drop_filter not in logger.filters:
            logger.addFilter(_drop_filter)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except DropConnection:
            _dropping.set(True)
            if not started:
                # Promise more bytes than we send, then return: the server must close the socket.
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"application/json;charset=UTF-8"), (b"content-length", b"4096")],
                    }
                )
                await send({"type": "http.response.body", "body": b'{"', "more_body": True})


#: The name the task brief used; same class.
DropConnectionMiddleware = TrafficMiddleware


# --- configuration ------------------------------------------------------------------------


@dataclass
class Limits:
    """QBO's throttles (defaults are QBO's production values, §6)."""

    per_minute: int = 500
    concurrent: int = 10
    batch_per_minute_app: int = 40
    batch_per_minute_realm: int = 120
    window_s: float = 60.0
    coreplus_per_month: int | None = None
    enabled: bool = True


@dataclass
class InjectionScope:
    """Which requests an injection applies to (``None`` = any)."""

    kinds: list[str] | None = None
    methods: list[str] | None = None
    paths: list[str] | None = None  # regular expressions searched in the URL path
    realms: list[str] | None = None

    def matches(self, req: Ticket) -> bool:
        if self.kinds is not None and req.kind not in self.kinds:
            return False
        if self.methods is not None and req.method.upper() not in {m.upper() for m in self.methods}:
            return False
        if self.realms is not None and req.realm not in self.realms:
            return False
        return self.paths is None or any(re.search(p, req.path) for p in self.paths)

    def to_json(self) -> dict | None:
        out = {k: v for k, v in asdict(self).items() if v is not None}
        return out or None

    @classmethod
    def from_json(cls, data: object) -> InjectionScope:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError("scope must be an object")
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown scope keys: {sorted(unknown)}")
        out = cls()
        for key, value in data.items():
            if value is None:
                continue
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
                raise ValueError(f"scope.{key} must be a string or a list of strings")
            if key == "kinds" and set(items) - set(KINDS):
                raise ValueError(f"scope.kinds must be among {KINDS}")
            if key == "paths":
                for p in items:
                    re.compile(p)
            setattr(out, key, items)
        return out


@dataclass
class QueuedFault:
    """Deterministic injection: fail the next ``remaining`` matching requests with ``fault``."""

    fault: str
    remaining: int
    scope: InjectionScope | None = None  # None: the configuration's global scope


@dataclass
class FaultConfig:
    seed: int = 0
    rates: dict[str, float] = field(default_factory=dict)
    slow_delay_s: float = 2.0
    after_commit: str = "drop"  # what timeout_after_commit does: "drop" or "delay"
    after_commit_delay_s: float = 5.0
    scope: InjectionScope = field(default_factory=InjectionScope)
    queue: list[QueuedFault] = field(default_factory=list)


# --- admission ----------------------------------------------------------------------------


@dataclass
class Ticket:
    """One admitted request and what fault injection decided for it.

    Attributes:
        pre_delay: real seconds the request waits before running (slow-response injection).
        after_commit: ``"drop"`` or ``"delay"`` when ``timeout_after_commit`` was injected.
        post_delay: real seconds to wait after the request ran (``after_commit == "delay"``).
    """

    realm: str
    kind: str
    app_key: str
    path: str = ""
    method: str = "GET"
    endpoint: str = ""
    pre_delay: float = 0.0
    after_commit: str | None = None
    post_delay: float = 0.0
    _slot: bool = False


def endpoint_of(path: str) -> str:
    """The counter label of a v3 path: the segment after the realm (``query``, ``invoice``...)."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 4 and parts[0] == "v3" and parts[1] == "company":
        return parts[3].lower()
    return parts[-1].lower() if parts else ""


def _retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


class Traffic:
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

    # --- the hook the API uses --------------------------------------------------------

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
                fault.headers["Retry-After"] = _retry_after(wait)
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
            fault.headers["Retry-After"] = _retry_after(self.limits.window_s)
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

    # --- configuration ----------------------------------------------------------------

    def faults_json(self) -> dict:
        """The fault-injection configuration, as ``GET /_emulator/faults`` shows it."""
        with self._lock:
            cfg = self.config
            return {
                "seed": cfg.seed,
                "rates": {name: cfg.rates.get(name, 0.0) for name in FAULT_NAMES},
                "slow_delay_s": cfg.slow_delay_s,
                "after_commit": cfg.after_commit,
                "after_commit_delay_s": cfg.after_commit_delay_s,
                "scope": cfg.scope.to_json(),
                "next": [
                    {"fault": q.fault, "count": q.remaining, "scope": q.scope.to_json() if q.scope else None}
                    for q in cfg.queue
                ],
            }

    def configure_faults(self, body: dict) -> dict:
        """Apply a ``POST /_emulator/faults`` body; returns the new configuration.

        Keys (all optional): ``clear`` (true: reset everything first), ``seed`` (reseeds the
        random source), ``rates`` ({fault: 0..1}, merged; exclusive faults must sum to <= 1),
        ``slow_delay_s``, ``after_commit`` ("drop"/"delay"), ``after_commit_delay_s``, ``scope``
        ({kinds, methods, paths (regex), realms}; null clears), ``next`` (an item or a list of
        items ``{"fault": NAME, "count": N, "scope": {...}}`` appended to the queue).

        Raises:
            ValueError: on an unknown key, fault name or out-of-range value (nothing applied).
        """
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        known = {"clear", "seed", "rates", "slow_delay_s", "after_commit", "after_commit_delay_s", "scope", "next"}
        unknown = set(body) - known
        if unknown:
            raise ValueError(f"unknown keys: {sorted(unknown)}")
        with self._lock:
            new = FaultConfig() if body.get("clear") else _copy_config(self.config)
            reseed = bool(body.get("clear"))
            if "seed" in body:
                new.seed = int(body["seed"])
                reseed = True
            if "rates" in body:
                rates = body["rates"] or {}
                if not isinstance(rates, dict):
                    raise ValueError("rates must be an object")
                for name, value in rates.items():
                    if name not in FAULT_NAMES:
                        raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
                    rate = float(value)
                    if not 0.0 <= rate <= 1.0:
                        raise ValueError(f"rate of {name} must be within 0..1")
                    new.rates[name] = rate
                if sum(new.rates.get(n, 0.0) for n in EXCLUSIVE_FAULTS) > 1.0 + 1e-9:
                    raise ValueError(f"rates of {', '.join(EXCLUSIVE_FAULTS)} must sum to at most 1")
            for key in ("slow_delay_s", "after_commit_delay_s"):
                if key in body:
                    value = float(body[key])
                    if value < 0:
                        raise ValueError(f"{key} must be >= 0")
                    setattr(new, key, value)
            if "after_commit" in body:
                if body["after_commit"] not in ("drop", "delay"):
                    raise ValueError("after_commit must be 'drop' or 'delay'")
                new.after_commit = body["after_commit"]
            if "scope" in body:
                new.scope = InjectionScope.from_json(body["scope"])
            if "next" in body:
                items = body["next"]
                for item in items if isinstance(items, list) else [items]:
                    if not isinstance(item, dict) or item.get("fault") not in FAULT_NAMES:
                        raise ValueError(f"next items need a fault among {', '.join(FAULT_NAMES)}")
                    count = int(item.get("count", 1))
                    if count < 1:
                        raise ValueError("next.count must be >= 1")
                    scope = InjectionScope.from_json(item["scope"]) if item.get("scope") is not None else None
                    new.queue.append(QueuedFault(item["fault"], count, scope))
            self.config = new
            if reseed:
                self._rng = random.Random(new.seed)
        return self.faults_json()

    def limits_json(self) -> dict:
        with self._lock:
            return asdict(self.limits)

    def configure_limits(self, body: dict) -> dict:
        """Apply a ``POST /_emulator/limits`` body (partial; ``"reset": true`` restores QBO's).

        Raises:
            ValueError: on an unknown key or a negative limit (nothing applied).
        """
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        names = {f.name for f in fields(Limits)}
        unknown = set(body) - names - {"reset"}
        if unknown:
            raise ValueError(f"unknown keys: {sorted(unknown)}")
        with self._lock:
            new = Limits() if body.get("reset") else Limits(**asdict(self.limits))
            for key in names & set(body):
                value = body[key]
                if key == "enabled":
                    new.enabled = bool(value)
                elif key == "coreplus_per_month" and value is None:
                    new.coreplus_per_month = None
                else:
                    number = float(value) if key == "window_s" else int(value)
                    if number < 0 or (key == "window_s" and number == 0):
                        raise ValueError(f"{key} must be positive")
                    setattr(new, key, number)
            self.limits = new
        return self.limits_json()

    # --- counters and metering -----------------------------------------------------------

    def counters(self, realm: str) -> dict:
        """Request, throttle and injection counters of one company, plus its metering by month."""
        with self._lock:
            stats = self._stats(realm)
            out = {
                "realmId": realm,
                "requests": {"total": 0, **dict.fromkeys(KINDS, 0), **stats["requests"]},
                "endpoints": dict(stats["endpoints"]),
                "throttled": stats["throttled"],
                "injected": dict(stats["injected"]),
                "in_flight": sum(n for (r, _), n in self._in_flight.items() if r == realm),
            }
        out["metering"] = {row["month"]: {"read": row["read"], "write": row["write"]} for row in self.metering(realm)}
        return out

    def metering(self, realm: str | None = None, month: str | None = None) -> list[dict]:
        """Metered calls per company and month: ``read`` (CorePlus) and ``write`` (Core)."""
        sql = "SELECT realm, month, kind, count FROM metering WHERE 1=1"
        args: list[str] = []
        if realm:
            sql += " AND realm=?"
            args.append(realm)
        if month:
            sql += " AND month=?"
            args.append(month)
        with self.emu.db.read() as c:
            rows = c.execute(sql + " ORDER BY realm, month", args).fetchall()
        merged: dict[tuple[str, str], dict] = {}
        for r, m, kind, count in rows:
            entry = merged.setdefault((r, m), {"realmId": r, "month": m, "read": 0, "write": 0})
            entry[kind] = count
        return list(merged.values())

    def reset_counters(self, realm: str | None = None, *, metering: bool = False, windows: bool = False) -> None:
        """Zero the in-memory counters (one company or all); optionally metering and windows too."""
        with self._lock:
            if realm is None:
                self._counters.clear()
            else:
                self._counters.pop(realm, None)
            if windows:
                for store in (self._realm_hits, self._batch_realm):
                    for key in [k for k in store if realm is None or k == realm]:
                        del store[key]
                for key in [k for k in self._batch_app if realm is None or k[0] == realm]:
                    del self._batch_app[key]
            if metering:
                self._metering_cache = {
                    k: v for k, v in self._metering_cache.items() if realm is not None and k[0] != realm
                }
        if metering:
            with self.emu.db.tx() as c:
                if realm is None:
                    c.execute("DELETE FROM metering")
                else:
                    c.execute("DELETE FROM metering WHERE realm=?", (realm,))

    # --- control API ----------------------------------------------------------------------

    def control_routes(self) -> list[Route]:
        """Routes under ``/_emulator`` for faults, limits, counters and metering."""

        async def get_faults(request: Request) -> JSONResponse:
            return JSONResponse(self.faults_json())

        async def post_faults(request: Request) -> JSONResponse:
            body = await _json_body(request)
            try:
                return JSONResponse(self.configure_faults(body))
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        async def get_limits(request: Request) -> JSONResponse:
            return JSONResponse(self.limits_json())

        async def post_limits(request: Request) -> JSONResponse:
            body = await _json_body(request)
            try:
                return JSONResponse(self.configure_limits(body))
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        async def get_counters(request: Request) -> JSONResponse:
            realm = request.path_params["realmId"]
            return JSONResponse(await run_in_threadpool(self.counters, realm))

        async def get_metering(request: Request) -> JSONResponse:
            realm = request.query_params.get("realmId")
            month = request.query_params.get("month")
            rows = await run_in_threadpool(self.metering, realm, month)
            return JSONResponse({"metering": rows})

        async def post_reset(request: Request) -> JSONResponse:
            body = await _json_body(request)
            if not isinstance(body, dict):
                return JSONResponse({"error": "body must be a JSON object"}, status_code=400)
            await run_in_threadpool(
                lambda: self.reset_counters(
                    body.get("realmId"), metering=bool(body.get("metering")), windows=bool(body.get("windows"))
                )
            )
            return JSONResponse({"reset": True})

        return [
            Route("/_emulator/faults", get_faults, methods=["GET"]),
            Route("/_emulator/faults", post_faults, methods=["POST"]),
            Route("/_emulator/limits", get_limits, methods=["GET"]),
            Route("/_emulator/limits", post_limits, methods=["POST"]),
            Route("/_emulator/companies/{realmId}/counters", get_counters, methods=["GET"]),
            Route("/_emulator/metering", get_metering, methods=["GET"]),
            Route("/_emulator/counters/reset", post_reset, methods=["POST"]),
        ]


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except ValueError:
        return None


def _copy_config(cfg: FaultConfig) -> FaultConfig:
    return FaultConfig(
        seed=cfg.seed,
        rates=dict(cfg.rates),
        slow_delay_s=cfg.slow_delay_s,
        after_commit=cfg.after_commit,
        after_commit_delay_s=cfg.after_commit_delay_s,
        scope=cfg.scope,
        queue=[QueuedFault(q.fault, q.remaining, q.scope) for q in cfg.queue],
    )
