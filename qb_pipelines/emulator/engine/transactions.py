"""What every transaction gets (TxnDate, CurrencyRef, DocNumber), then the compute step of its line family.

The registry's ``lines`` picks the step: sales forms, expense forms, settlements, deposits,
journal entries and transfers each have their own module; a transaction without lines
(TimeActivity) is checked here. RecurringTransaction templates go through ``templates``.
"""

from __future__ import annotations

from collections.abc import Callable

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.engine.deposits import compute_deposit
from qb_pipelines.emulator.engine.expenses import compute_expense
from qb_pipelines.emulator.engine.journals import compute_journal
from qb_pipelines.emulator.engine.sales import compute_sales
from qb_pipelines.emulator.engine.settlements import compute_settlement
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.transfers import compute_transfer
from qb_pipelines.emulator.engine.values import USD, check_date, invalid_enum, ref_value
from qb_pipelines.qbo.registry import EntityDef, Lines

Step = Callable[[Tx, EntityDef, dict, "dict | None"], None]


def _compute_time(tx: Tx, ent: EntityDef, body: dict, old: dict | None) -> None:
    """Time entries: who worked (an employee or a vendor) and for how long."""
    name_of = body.get("NameOf")
    if name_of not in ("Employee", "Vendor"):
        raise invalid_enum(str(name_of), "NameOf")
    ref = f"{name_of}Ref"
    if not ref_value(body.get(ref)):
        raise faults.required(ref)
    if body.get("Hours") is None and not body.get("StartTime"):
        raise faults.required("Hours")
    body.setdefault("Hours", 0)
    body.setdefault("Minutes", 0)
    body.setdefault("BillableStatus", "NotBillable")
    body.setdefault("Taxable", False)


#: The compute step of each line family.
STEPS: dict[Lines, Step] = {
    Lines.SALES: compute_sales,
    Lines.EXPENSE: compute_expense,
    Lines.LINKS: compute_settlement,
    Lines.DEPOSIT: compute_deposit,
    Lines.JOURNAL: compute_journal,
    Lines.TRANSFER: compute_transfer,
    Lines.NONE: _compute_time,
}


def compute_transaction(tx: Tx, ent: EntityDef, body: dict, old: dict | None, *, template: bool = False) -> None:
    """TxnDate (today by default), CurrencyRef for money-carrying forms, DocNumber, then the family's
    step, and the open state of a document that another is made from (the registry's ``status``).

    A ``template`` (the transaction a RecurringTransaction schedules) is computed like the real
    thing but gets no DocNumber: each transaction made from it is numbered when it is made.
    """
    body.setdefault("TxnDate", tx.today())
    check_date(body.get("TxnDate"), "TxnDate")
    if ent.lines is not Lines.NONE:
        body.setdefault("CurrencyRef", USD)
    if ent.doc_number and not body.get("DocNumber") and not template:
        if old and old.get("DocNumber"):
            body["DocNumber"] = old["DocNumber"]
        else:
            body["DocNumber"] = str(tx.next_value(f"doc:{ent.name}", start=1001))
    STEPS[ent.lines](tx, ent, body, old)
    if ent.status:
        body.setdefault(ent.status[0], ent.status[1])
