"""What traffic control is told and what it decides per request: limits, fault injection, tickets.

Plain data (QBO's limits, the fault configuration and its scopes, the :class:`Ticket` of one
admitted request) and small pure helpers. No locks, no database.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass


KINDS = ("read", "write", "batch")

#: Faults that replace the response (at most one per request), in the order rates are banded.
EXCLUSIVE_FAULTS = ("429", "500", "503", "drop", "expired_token", "timeout_after_commit")
#: Every fault name the configuration accepts (``slow`` combines with the others).
FAULT_NAMES = (*EXCLUSIVE_FAULTS, "slow")


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


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))


def copy_config(cfg: FaultConfig) -> FaultConfig:
    return FaultConfig(
        seed=cfg.seed,
        rates=dict(cfg.rates),
        slow_delay_s=cfg.slow_delay_s,
        after_commit=cfg.after_commit,
        after_commit_delay_s=cfg.after_commit_delay_s,
        scope=cfg.scope,
        queue=[QueuedFault(q.fault, q.remaining, q.scope) for q in cfg.queue],
    )
