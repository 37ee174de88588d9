"""Partitions shared by the QuickBooks assets.

One dynamic partition per connected QuickBooks company: a company is the unit a data engineer
backfills, reruns and limits, and companies come and go at run time, so the set cannot be
static. A sensor keeps the partitions in step with the connections store; a disconnected
company keeps its partition so its history stays visible.
"""

from __future__ import annotations

import dagster as dg

QBO_COMPANY_PARTITIONS_NAME = "qbo_company"

qbo_company_partitions = dg.DynamicPartitionsDefinition(name=QBO_COMPANY_PARTITIONS_NAME)
"""Partition key: the connection's company key (unique across sandbox and production realms)."""
