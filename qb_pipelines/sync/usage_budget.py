"""The monthly read-call budget of a company: how much of Intuit's metered allowance is used.

Intuit meters an app's read calls ("CorePlus": queries, reads, CDC, reports) per calendar month
and blocks them with HTTP 429 once the tier's allowance is spent, until the next month (Builder,
the free tier, allows 500,000; reference §6). The store counts every read per company and month
(:mod:`qb_pipelines.store.usage`); this module says where a count stands against the budget set
in ``QB_READ_BUDGET``: ``ok``, ``warn`` from 80 %, ``over`` at 100 %. The admin card and the
Dagster asset check ``read_budget`` (:mod:`qb_pipelines.defs.usage`) both read it from here.

The budget is per company. Intuit's allowance is per developer workspace, across every company
the app serves: with several companies, set ``QB_READ_BUDGET`` to each one's share.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from qb_pipelines.config import SettingsError

__all__ = ["DEFAULT_READ_BUDGET", "READ_BUDGET_ENV", "WARN_FRACTION", "BudgetStatus", "budget_status", "read_budget"]

READ_BUDGET_ENV = "QB_READ_BUDGET"
#: Intuit's Builder tier: 500,000 metered reads a month.
DEFAULT_READ_BUDGET = 500_000
#: From this share of the budget on, the card and the check warn.
WARN_FRACTION = 0.8

OK, WARN, OVER = "ok", "warn", "over"


def read_budget(env: Mapping[str, str] | None = None) -> int:
    """The monthly read budget per company from ``QB_READ_BUDGET`` (500,000 when unset).

    Raises:
        SettingsError: the value is not a positive whole number.
    """
    env = os.environ if env is None else env
    raw = (env.get(READ_BUDGET_ENV) or "").strip().replace("_", "").replace(",", "")
    if not raw:
        return DEFAULT_READ_BUDGET
    if not raw.isdigit() or int(raw) <= 0:
        raise SettingsError(
            f"{READ_BUDGET_ENV}={env.get(READ_BUDGET_ENV)!r} is not a positive whole number: set the monthly "
            f"read calls your Intuit tier allows per company (Builder: {DEFAULT_READ_BUDGET})."
        )
    return int(raw)


@dataclass(frozen=True)
class BudgetStatus:
    """Where a company's reads of the month stand against the budget.

    Attributes:
        reads: Metered reads this month.
        budget: The monthly budget.
        level: ``ok``, ``warn`` (80 % and more) or ``over`` (100 % and more).
    """

    reads: int
    budget: int
    level: str

    @property
    def percent(self) -> int:
        """Share of the budget used, in whole percent (rounded down: 79.9 % is not yet 80 %)."""
        return self.reads * 100 // self.budget

    @property
    def message(self) -> str:
        """One sentence for people: the count, the budget, and what happens next."""
        used = f"{self.reads:,} of {self.budget:,} read calls this month ({self.percent}%)"
        if self.level == OVER:
            return (f"{used}: the monthly read budget is spent. Intuit blocks further reads until next month; "
                    "reduce polling or move to a higher Intuit tier.")
        if self.level == WARN:
            return f"{used}: over {int(WARN_FRACTION * 100)}% of the monthly read budget."
        return used


def budget_status(reads: int, budget: int) -> BudgetStatus:
    """The status of ``reads`` against ``budget`` (see :class:`BudgetStatus`)."""
    level = OVER if reads >= budget else WARN if reads >= budget * WARN_FRACTION else OK
    return BudgetStatus(reads=reads, budget=budget, level=level)
