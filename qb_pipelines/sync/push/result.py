"""What a push run did, for logs, Dagster metadata, the CLI and the benchmark."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["PushResult"]


@dataclass
class PushResult:
    """Counts of one push run of one company.

    Attributes:
        created, updated, matched, linked, deleted, voided: objects written or linked in QBO
            (``matched``: found in QuickBooks before create; ``linked``: linked by the app's qbo_id).
        unchanged: rows that needed no write (nothing changed, or already equal).
        dropped: app changes dropped because QuickBooks won a conflict.
        failed, retrying, blocked, review: rows that did not go, by why.
        waiting: rows held back by a gate (``gate`` says which, when it was the whole company).
        in_flight: rows whose batch got no definite answer (the next run resumes them).
        resumed: rows of batches re-sent from a previous run.
        api_calls, batches, throttled: QuickBooks calls made, batch calls among them, 429s met.
        told_app: feed entries written because QuickBooks kept values the app did not send.
        batch_seconds: how long each batch call took.
    """

    company_key: str
    started_at: datetime
    finished_at: datetime | None = None
    created: int = 0
    updated: int = 0
    matched: int = 0
    linked: int = 0
    deleted: int = 0
    voided: int = 0
    unchanged: int = 0
    dropped: int = 0
    failed: int = 0
    retrying: int = 0
    blocked: int = 0
    review: int = 0
    waiting: int = 0
    in_flight: int = 0
    resumed: int = 0
    api_calls: int = 0
    batches: int = 0
    throttled: int = 0
    told_app: int = 0
    gate: str | None = None
    batch_seconds: list[float] = field(default_factory=list)

    @property
    def written(self) -> int:
        """Objects created, updated, deleted or voided in QuickBooks."""
        return self.created + self.updated + self.deleted + self.voided

    @property
    def seconds(self) -> float:
        return (self.finished_at - self.started_at).total_seconds() if self.finished_at else 0.0

    def absorb(self, later: PushResult) -> None:
        """Add a later push of the same run (a push run following its outbox) to these counts."""
        for name in ("created", "updated", "matched", "linked", "deleted", "voided", "unchanged", "dropped", "failed",
                     "retrying", "blocked", "review", "waiting", "in_flight", "resumed", "api_calls", "batches",
                     "throttled", "told_app"):
            setattr(self, name, getattr(self, name) + getattr(later, name))
        self.batch_seconds.extend(later.batch_seconds)
        self.finished_at = later.finished_at or self.finished_at
        self.gate = later.gate or self.gate

    def as_dict(self) -> dict[str, Any]:
        """Plain counts (JSON-ready)."""
        keys = ("created", "updated", "matched", "linked", "deleted", "voided", "unchanged", "dropped", "failed",
                "retrying", "blocked", "review", "waiting", "in_flight", "resumed", "api_calls", "batches", "throttled",
                "told_app")
        out: dict[str, Any] = {k: getattr(self, k) for k in keys}
        out.update(company=self.company_key, written=self.written, seconds=round(self.seconds, 3), gate=self.gate)
        return out
