"""Traffic's configuration, counters and metering, and their control API under ``/_emulator``.

``GET/POST /faults``, ``GET/POST /limits``, ``GET /companies/{realmId}/counters``,
``GET /metering``, ``POST /counters/reset``. May touch: the traffic state (under its lock) and
the ``metering`` table.
"""

from __future__ import annotations

import random
import threading
from collections import Counter, deque
from dataclasses import asdict, fields
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qb_pipelines.emulator.traffic.config import (
    EXCLUSIVE_FAULTS,
    FAULT_NAMES,
    KINDS,
    FaultConfig,
    InjectionScope,
    Limits,
    QueuedFault,
    copy_config,
)

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator


class TrafficControl:
    """Read and change what :class:`~qb_pipelines.emulator.traffic.admission.Traffic` enforces; count and meter."""

    emu: Emulator
    limits: Limits
    config: FaultConfig
    _lock: threading.Lock
    _rng: random.Random
    _realm_hits: dict[str, deque[float]]
    _batch_app: dict[tuple[str, str], deque[float]]
    _batch_realm: dict[str, deque[float]]
    _in_flight: Counter[tuple[str, str]]
    _counters: dict[str, dict[str, Any]]
    _metering_cache: dict[tuple[str, str, str], int]

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
            new = FaultConfig() if body.get("clear") else copy_config(self.config)
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
