"""How registry fields become warehouse column names and SQL types (see the package docstring)."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef

#: QBO flags that land as booleans.
BOOLEAN_FIELDS = frozenset({"Active", "Job", "Taxable", "Credit", "Adjustment", "BillWithParent", "Sparse",
                            "TaxTrackedOnSales", "TaxTrackedOnPurchases"})
#: Whole numbers (an attachment's Size is in bytes).
INTEGER_FIELDS = frozenset({"Level", "DueDays", "Hours", "Minutes", "DiscountDays", "Size", "NumInterval"})
#: Per-unit prices, quantities and rates (exchange rates too): QBO accepts up to 7 decimals there.
PRECISE_FIELDS = frozenset({"UnitPrice", "PurchaseCost", "Qty", "QtyOnHand", "RateValue", "Rate"})
#: Money, by suffix of the last path segment.
MONEY_SUFFIXES = ("Amt", "Amount", "Balance", "BalanceWithJobs", "RemainingCredit")
#: Entities whose lines are allocations to other transactions (LinkedTxn), not item lines.
LINK_ENTITIES = frozenset(e.name for e in registry.ENTITIES if e.link_lines)

_SPECIAL_NAMES = {
    "Id": "id",
    "SyncToken": "sync_token",
    "Active": "is_active",
    "MetaData.CreateTime": "qbo_created_at",
    "MetaData.LastUpdatedTime": "qbo_updated_at",
    "CurrencyRef.value": "currency",
    "PrimaryEmailAddr.Address": "primary_email",
}
#: Typed fields that map onto the bookkeeping columns every table has.
_COMMON_FIELDS = frozenset({"Id", "SyncToken", "Active"})
_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")

MONEY = sa.Numeric(18, 2)
PRECISE = sa.Numeric(20, 7)
TIMESTAMP = sa.DateTime(timezone=True)
#: The raw object: JSONB on PostgreSQL (indexable, compact), JSON (text) elsewhere.
RAW_JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def snake(name: str) -> str:
    """``TxnDate`` -> ``txn_date``, ``APAccountRef`` -> ``ap_account_ref``."""
    return _SNAKE.sub("_", name).lower()


def table_name(entity: str | EntityDef) -> str:
    """``Invoice`` -> ``qbo_invoice``, ``CompanyInfo`` -> ``qbo_company_info``."""
    name = entity.name if isinstance(entity, EntityDef) else registry.get(entity).name
    return f"qbo_{snake(name)}"


def column_name(path: str) -> str:
    """The warehouse column of a typed field (see the module docstring for the rule)."""
    if path in _SPECIAL_NAMES:
        return _SPECIAL_NAMES[path]
    parts = path.split(".")
    if len(parts) == 2 and parts[0].endswith("Ref") and parts[1] == "value":
        return f"{snake(parts[0])}_id"
    return "_".join(snake(p) for p in parts)


def column_type(path: str) -> sa.types.TypeEngine:
    """The SQL type of a typed field, by the last segment of its path (module docstring)."""
    leaf = path.split(".")[-1]
    if path == "CurrencyRef.value":
        return sa.String(3)
    if leaf == "value":  # a reference: the referenced object's Id
        return sa.String(32)
    if leaf.endswith("Time"):
        return TIMESTAMP
    if leaf.endswith("Date"):
        return sa.Date()
    if leaf in BOOLEAN_FIELDS:
        return sa.Boolean()
    if leaf in INTEGER_FIELDS:
        return sa.Integer()
    if leaf in PRECISE_FIELDS:
        return PRECISE
    if leaf.endswith(MONEY_SUFFIXES):
        return MONEY
    return sa.String()
