"""Transfers between two accounts (``Lines.TRANSFER``: Transfer, CreditCardPayment).

No lines: the header names the account the money leaves and the one it arrives in (the
registry's ``transfer_accounts``) and the ``Amount``. QBO refuses a negative or zero amount and
the same account on both sides; which account types each side accepts is on the references
(``Ref.account_types``, checked with the other references before this step).
"""

from __future__ import annotations

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.values import money, number, ref_value
from qb_pipelines.qbo.registry import EntityDef


def compute_transfer(tx: Tx, ent: EntityDef, body: dict, old: dict | None) -> None:
    """Amount as money (positive), and two different accounts."""
    amount = money(number(body.get("Amount"), "Amount"))
    if amount <= 0:
        raise faults.business(f"The {ent.name} amount must be greater than zero.", "Amount")
    body["Amount"] = amount
    into, out_of = ent.transfer_accounts or ("", "")
    if ref_value(body.get(into)) == ref_value(body.get(out_of)):
        raise faults.business(f"{into} and {out_of} must be different accounts.", into)
