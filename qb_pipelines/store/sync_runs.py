"""The record of each company's landings: when, how many objects, ok or failed, and why.

Whoever lands a company (the Dagster asset, ``qb-pipelines sync``) records the outcome here when
the landing ends (:func:`qb_pipelines.sync.runs.recorded_landing` does it for them); the admin
web app's QuickBooks Online card shows the latest. The landing itself never writes here: one row
per run, after the run, off the hot path.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from qb_pipelines.store.models import SyncRun
from qb_pipelines.store.repository import Repository

__all__ = ["SyncRunStore", "SyncRunView"]

#: Runs older than this are deleted when the company records a new one.
KEEP_FOR = timedelta(days=90)
#: Longest error text kept (one line for a card, not a traceback).
MAX_ERROR = 500


@dataclass(frozen=True)
class SyncRunView:
    """One recorded landing of a company."""

    company_key: str
    started_at: datetime
    finished_at: datetime
    ok: bool
    mode: str | None
    objects: int
    api_calls: int
    error: str | None
    source: str
    run_id: str | None


def _view(row: SyncRun) -> SyncRunView:
    return SyncRunView(row.company_key, row.started_at, row.finished_at, bool(row.ok), row.mode, int(row.objects),
                       int(row.api_calls), row.error, row.source, row.run_id)


class SyncRunStore(Repository):
    """Records landings and answers "how did the last one go?"."""

    def now(self) -> datetime:
        """The store's "now" (a landing's start, on the same clock as its end)."""
        return self._now()

    def record(self, company_key: str, *, started_at: datetime, ok: bool, objects: int = 0, api_calls: int = 0,
               mode: str | None = None, error: str | None = None, source: str, run_id: str | None = None,
               finished_at: datetime | None = None) -> SyncRunView:
        """Record one finished landing (ok or failed) of ``company_key``.

        Args:
            company_key: The company partition key ``<tenant>-<realmId>``.
            started_at: When the landing started (aware).
            ok: Whether it landed everything it was asked to.
            objects: Objects inserted, updated or flagged deleted.
            api_calls: QuickBooks calls it made.
            mode: ``incremental`` or ``full``.
            error: What went wrong (one line, no secret); cut to 500 characters.
            source: Who landed: ``dagster`` or ``cli``.
            run_id: The Dagster run id, if any.
            finished_at: When it ended; now by default.
        """
        finished = finished_at or self._now()
        row = SyncRun(company_key=company_key, started_at=started_at, finished_at=finished, ok=ok, mode=mode,
                      objects=objects, api_calls=api_calls, error=(error or None) and error[:MAX_ERROR],
                      source=source, run_id=run_id)
        with self._write() as session:
            session.execute(sa.delete(SyncRun).where(SyncRun.company_key == company_key,
                                                     SyncRun.started_at < finished - KEEP_FOR))
            session.add(row)
            session.flush()
            return _view(row)

    def latest(self, company_key: str) -> SyncRunView | None:
        """The most recent landing of the company (by start), or ``None`` before the first."""
        with self._read() as session:
            row = session.scalars(sa.select(SyncRun).where(SyncRun.company_key == company_key)
                                  .order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(1)).one_or_none()
            return _view(row) if row else None

    def history(self, company_key: str, limit: int = 20) -> list[SyncRunView]:
        """The company's latest landings, newest first."""
        with self._read() as session:
            rows = session.scalars(sa.select(SyncRun).where(SyncRun.company_key == company_key)
                                   .order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(limit)).all()
            return [_view(r) for r in rows]
