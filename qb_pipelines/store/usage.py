"""Metered QuickBooks API calls per company and calendar month.

Intuit meters an app's read calls (queries, reads, CDC, reports, PDFs: "CorePlus" calls) per
company and month and caps them by the app's tier, so every read is counted where it is made:
:meth:`UsageMeter.record_read` fits the QBO client's ``on_read`` callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from qb_pipelines.store.models import ApiUsage, utcnow
from qb_pipelines.store.repository import Repository

__all__ = ["ApiUsageCounts", "UsageMeter", "month_of"]


@dataclass(frozen=True)
class ApiUsageCounts:
    """Metered calls of one company in one calendar month (UTC)."""

    realm_id: str
    month: str
    reads: int
    writes: int


def month_of(when: datetime | None) -> str:
    """``"YYYY-MM"`` of ``when`` in UTC (now when ``None``)."""
    when = (when or utcnow()).astimezone(UTC)
    return f"{when.year:04d}-{when.month:02d}"


class UsageMeter(Repository):
    """Counts reads and writes per company and month, atomically across processes."""

    def _count(self, realm_id: str, when: datetime | None, *, reads: int, writes: int) -> None:
        table = ApiUsage.__table__
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif self.engine.dialect.name == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - only the two tested dialects are supported
            raise NotImplementedError(f"API usage counting supports sqlite and postgresql, not {self.engine.dialect.name}")
        stmt = insert(table).values(
            realm_id=realm_id, month=month_of(when), reads=reads, writes=writes, updated_at=self._now()
        )
        # One atomic statement: concurrent callers add up, never overwrite each other.
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.realm_id, table.c.month],
            set_={
                "reads": table.c.reads + stmt.excluded.reads,
                "writes": table.c.writes + stmt.excluded.writes,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        with self._write() as session:
            session.execute(stmt)

    def record_read(self, realm_id: str, when: datetime | None = None) -> None:
        """Count one metered read (query, read, CDC, report, PDF) for the company's month.

        Fits the QBO client's ``on_read`` callback: ``QBOClient(..., on_read=usage.record_read)``.
        """
        self._count(realm_id, when, reads=1, writes=0)

    def record_write(self, realm_id: str, when: datetime | None = None) -> None:
        """Count one write (create, update, delete, void) for the company's month."""
        self._count(realm_id, when, reads=0, writes=1)

    def counts(self, realm_id: str, month: str | None = None) -> ApiUsageCounts:
        """Reads and writes of the company in ``month`` (``"YYYY-MM"``, UTC; this month by default)."""
        month = month or month_of(self._now())
        with self._read() as session:
            row = session.get(ApiUsage, (realm_id, month))
            return ApiUsageCounts(realm_id, month, int(row.reads) if row else 0, int(row.writes) if row else 0)

    def reads(self, realm_id: str, month: str | None = None) -> int:
        """Metered reads of the company in ``month`` (``"YYYY-MM"``; this month by default)."""
        return self.counts(realm_id, month).reads
