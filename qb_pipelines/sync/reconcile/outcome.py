"""What every check returns, and the money arithmetic they share.

A :class:`CheckOutcome` says passed or failed in one line a data engineer reads in the Dagster
UI, with the figures of both sides, the first :data:`MAX_MISMATCHES` mismatching ids and amounts,
and what would fix it. Amounts are compared as integer cents: exact sums, no float drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

#: How many mismatching ids/amounts a failed check lists.
MAX_MISMATCHES = 20
#: Money tolerance: amounts are compared in cents, so equal means within half a cent.
TOLERANCE_CENTS = 0


@dataclass
class CheckOutcome:
    """The result of one reconciliation or quality check.

    Attributes:
        passed: True when the warehouse agrees with QBO.
        description: one line a data engineer reads in the Dagster UI.
        metadata: figures on both sides (counts, totals), JSON-serialisable.
        mismatches: the first :data:`MAX_MISMATCHES` mismatching ids and amounts.
        fix: what would fix a failure (empty when passed).
    """

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Plain dict (for logs, JSON and Dagster metadata)."""
        return {"passed": self.passed, "description": self.description, "metadata": self.metadata,
                "mismatches": self.mismatches, "fix": self.fix}


def full_refresh_fix(company_key: str, entities: Iterable[str]) -> str:
    """The fix for landed rows that drifted from QBO: a full refresh of that partition."""
    names = ",".join(dict.fromkeys(entities))
    return (f"run a full refresh of partition {company_key} for {names}: "
            f"qb-pipelines sync --company {company_key} --full --entities {names}")


def make_outcome(ok: bool, passed_text: str, failed_text: str, metadata: dict[str, Any],
            mismatches: list[dict[str, Any]], fix: str) -> CheckOutcome:
    """The outcome of a comparison: the text and fix that fit, the mismatch count, the first mismatches."""
    metadata = {**metadata, "mismatch_count": len(mismatches)}
    return CheckOutcome(ok, passed_text if ok else failed_text, metadata, mismatches[:MAX_MISMATCHES],
                        "" if ok else fix)


def cents(value: Any) -> int:
    """Money as integer cents (QBO sends floats or decimal strings; blanks are 0)."""
    if value is None or value == "":
        return 0
    if isinstance(value, Decimal):
        return int((value * 100).to_integral_value())
    try:
        if isinstance(value, float) and value != value:  # NaN
            return 0
        return round(float(value) * 100)
    except (TypeError, ValueError):
        return 0


def dollars(value_cents: int) -> float:
    """Cents back to a two-decimal amount for metadata and messages."""
    return round(value_cents / 100, 2)


def compare_amounts(warehouse: Mapping[str, int], qbo: Mapping[str, int], *, key_name: str = "id",
                    tolerance: int = TOLERANCE_CENTS, labels: Mapping[str, str] | None = None
                    ) -> list[dict[str, Any]]:
    """Ids whose amounts (in cents) differ between the two sides; a missing side counts as 0.

    Returns mismatches sorted by the size of the difference (largest first), each
    ``{key_name, "warehouse", "qbo", "difference"}`` in dollars (plus ``name`` when labelled).
    """
    out = []
    for ident in set(warehouse) | set(qbo):
        w, q = warehouse.get(ident, 0), qbo.get(ident, 0)
        if abs(w - q) > tolerance:
            row: dict[str, Any] = {key_name: ident, "warehouse": dollars(w), "qbo": dollars(q),
                                   "difference": dollars(w - q)}
            if labels and ident in labels:
                row["name"] = labels[ident]
            out.append(row)
    out.sort(key=lambda r: (-abs(r["difference"]), str(r[key_name])))
    return out



def cents_by_id(amounts: Mapping[str, Any]) -> dict[str, int]:
    """Amounts by id as cents, leaving out the zeros (a side that omits an id means 0 too)."""
    return {k: v for k, v in ((k, cents(a)) for k, a in amounts.items()) if v != 0}


def id_order(ident: str) -> tuple[int, str]:
    """QBO ids are numbers in strings: sort them as numbers, any others after them."""
    return (int(ident), "") if str(ident).isdigit() else (1 << 62, str(ident))
