"""Partitions shared by the QuickBooks assets.

One dynamic partition per connected QuickBooks company: a company is the unit a data engineer
backfills, reruns and limits, and companies come and go at run time, so the set cannot be
static. A sensor keeps the partitions in step with the connections store; a disconnected
company keeps its partition so its history stays visible.

Reports are partitioned by company and month (a :class:`dagster.MultiPartitionsDefinition`):
QuickBooks reports are asked for one month at a time, a change dated in March re-materializes
March only, and a backfill of one company's year is twelve partitions (in one run: the report
assets have a single-run backfill policy).

The months are dynamic too (``qbo_report_month``), and cover the companies' own data: from the
month of the earliest transaction landed (the landing runs record the months they touched; a
first load touches every month with a transaction) to the current month, without gaps. The
report sensor adds them (:func:`months_to_add`), so no month before the books start is ever
offered to a backfill. Dagster crosses the two dimensions, so with several companies the months
run from the earliest company's first transaction; a later company's earlier months land as
empty reports, one call each.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime

import dagster as dg

QBO_COMPANY_PARTITIONS_NAME = "qbo_company"
QBO_REPORT_MONTHS_NAME = "qbo_report_month"
#: Dimension names of the report partitions: keys read ``"<company>|<YYYY-MM>"``.
COMPANY_DIMENSION = "company"
MONTH_DIMENSION = "month"

qbo_company_partitions = dg.DynamicPartitionsDefinition(name=QBO_COMPANY_PARTITIONS_NAME)
"""Partition key: the company key ``<tenant key>-<realmId>`` (see :mod:`qb_pipelines.sync.companies`)."""

qbo_month_partitions = dg.DynamicPartitionsDefinition(name=QBO_REPORT_MONTHS_NAME)
"""Calendar months ``YYYY-MM`` from the earliest landed transaction's month to the current month
(this month's reports are the ones people look at, and they change daily): see :func:`months_to_add`."""

_MONTH = re.compile(r"^[0-9]{4}-(0[1-9]|1[0-2])$")

qbo_company_month_partitions = dg.MultiPartitionsDefinition(
    {COMPANY_DIMENSION: qbo_company_partitions, MONTH_DIMENSION: qbo_month_partitions}
)
"""Report partitions: one per (company, month)."""


def report_partition_key(company: str, month: str) -> dg.MultiPartitionKey:
    """The report partition of ``company`` and ``month`` (``YYYY-MM``)."""
    return dg.MultiPartitionKey({COMPANY_DIMENSION: company, MONTH_DIMENSION: month})


def current_month(now: datetime | None = None) -> str:
    """The current month ``YYYY-MM`` (UTC)."""
    return (now or datetime.now(UTC)).strftime("%Y-%m")


def month_range(first: str, last: str) -> list[str]:
    """Every month ``YYYY-MM`` from ``first`` to ``last``, both included."""
    year, month = int(first[:4]), int(first[5:7])
    out: list[str] = []
    while f"{year:04d}-{month:02d}" <= last:
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def months_to_add(existing: Iterable[str], wanted: Iterable[str], today: str) -> list[str]:
    """The report months to add so that they run, without gaps, over the data.

    Args:
        existing: the month partitions already there.
        wanted: months with data (the months landing runs touched); malformed values are ignored.
        today: the current month; the months always reach it once any data exists.

    Returns:
        The missing months from the earliest existing or wanted month to the later of ``today``
        and the latest wanted month (a transaction dated ahead); none while no data is landed.
    """
    have = set(existing)
    every = have | {m for m in wanted if _MONTH.match(m)}
    if not every:
        return []
    return [m for m in month_range(min(every), max(*every, today)) if m not in have]


def is_month(value: str) -> bool:
    """Whether ``value`` is a month ``YYYY-MM``."""
    return bool(_MONTH.match(value))
