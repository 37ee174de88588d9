"""The demo company: QBO's sandbox company "Craig's Design and Landscaping Services", filled with a year."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from qb_pipelines.emulator.clock import add_days
from qb_pipelines.emulator.seed.demo_lists import Demo, create_lists
from qb_pipelines.emulator.seed.demo_more import demo_more
from qb_pipelines.emulator.seed.demo_year import demo_finish, demo_month

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator

DEMO_COMPANY_NAME = "Craig's Design and Landscaping Services"


def seed_demo_company(emu: Emulator, seed: int = 7) -> str:
    """Create (once) and fill QBO's sandbox company, "Craig's Design and Landscaping Services".

    Everything goes through the engine API, as a QuickBooks user would enter it: ~30 customers
    with sub-customers two levels deep, 14 vendors, 3 employees, 22 items (services, inventory
    with opening stock, non-inventory, two categories with sub-items), classes, departments, and
    twelve months of activity dated back from ``emu.clock.today()``: invoices (taxed with tax code
    2, discounted, made from estimates), payments (full, partial, across two invoices, applying a
    credit memo, unapplied), sales receipts, credit memos, refund receipts, bills and bill payments
    (check and credit card), vendor credits, expenses, deposits, month-end journal entries and
    time activities; then a voided invoice, a deleted expense, two inactive customers and two
    inactive items; and last (so the Ids above never move) purchase orders, transfers, credit card
    payments, a second tax agency, a budget, recurring templates, exchange rates (multicurrency on)
    and attachments.

    Args:
        emu: the emulator.
        seed: random seed; the same seed on the same emulator day gives the same company.

    Returns:
        The company's realmId (the existing one when a company of that name already exists).
    """
    for company in emu.engine.companies():
        if company["name"] == DEMO_COMPANY_NAME:
            return company["realmId"]
    realm = emu.engine.create_company(DEMO_COMPANY_NAME)
    tz = emu.company_tz(realm)
    d = Demo(emu, realm, random.Random(seed), emu.clock.today(tz))
    start = add_days(d.today, -365)
    create_lists(d, inv_start=add_days(start, -1))
    months = [add_days(start, 30 * m + 5) for m in range(12)]
    for m, month_start in enumerate(months):
        demo_month(d, m, month_start, last=(m == len(months) - 1))
    demo_finish(d)
    demo_more(d)
    return realm
