"""Partitions shared by the QuickBooks assets.

One dynamic partition per connected QuickBooks company: a company is the unit a data engineer
backfills, reruns and limits, and companies come and go at run time, so the set cannot be
static. A sensor keeps the partitions in step with the connections store; a disconnected
company keeps its partition so its history stays visible.

Reports are partitioned by company and month (a :class:`dagster.MultiPartitionsDefinition`):
QuickBooks reports are asked for one month at a time, a change dated in March re-materializes
March only, and a backfill of one company's year is twelve partitions.
"""

from __future__ import annotations

import dagster as dg

QBO_COMPANY_PARTITIONS_NAME = "qbo_company"
#: First month of the report partitions (``YYYY-MM``). Months before it are not landed as
#: reports; the transactions themselves land whatever their date.
REPORT_MONTHS_START = "2024-01"
#: Dimension names of the report partitions: keys read ``"<company>|<YYYY-MM>"``.
COMPANY_DIMENSION = "company"
MONTH_DIMENSION = "month"

qbo_company_partitions = dg.DynamicPartitionsDefinition(name=QBO_COMPANY_PARTITIONS_NAME)
"""Partition key: the company key ``<tenant key>-<realmId>`` (see :mod:`qb_pipelines.sync.companies`)."""

qbo_month_partitions = dg.MonthlyPartitionsDefinition(start_date=REPORT_MONTHS_START, fmt="%Y-%m", end_offset=1)
"""Calendar months ``YYYY-MM`` from :data:`REPORT_MONTHS_START`, the current month included
(``end_offset=1``): this month's reports are the ones people look at, and they change daily."""

qbo_company_month_partitions = dg.MultiPartitionsDefinition(
    {COMPANY_DIMENSION: qbo_company_partitions, MONTH_DIMENSION: qbo_month_partitions}
)
"""Report partitions: one per (company, month)."""


def report_partition_key(company: str, month: str) -> dg.MultiPartitionKey:
    """The report partition of ``company`` and ``month`` (``YYYY-MM``)."""
    return dg.MultiPartitionKey({COMPANY_DIMENSION: company, MONTH_DIMENSION: month})
