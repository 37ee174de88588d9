"""What the emulator derives from the entity registry, named once for the engine, ledger, reports and seed.

The registry (``qbo/registry.py``) says per entity what its lines are, which party it names, how it
moves that party's balance and stock, whether it posts and whether it keeps an open balance. The
emulator's groupings follow from those fields; nothing here lists entities by name.
"""

from __future__ import annotations

from functools import cache

from qb_pipelines.emulator import chart
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef, Lines


@cache
def balance_holders() -> tuple[EntityDef, ...]:
    """Name lists QBO keeps an open ``Balance`` on (customers: A/R, vendors: A/P)."""
    return tuple(e for e in registry.ENTITIES if e.is_name_list and e.balance_field)


def holds_balance(entity: str) -> bool:
    """Whether ``entity`` is a name list with an open balance (its Balance follows its sub-ledger)."""
    return any(e.name == entity for e in balance_holders())


@cache
def open_documents() -> tuple[EntityDef, ...]:
    """Transactions that stay open with a ``Balance`` until settled (invoices, credit memos, bills...)."""
    return tuple(e for e in registry.ENTITIES if e.is_transaction and e.balance_field)


@cache
def settlements() -> tuple[EntityDef, ...]:
    """Transactions whose lines only settle open documents (``Lines.LINKS``: payments, bill payments)."""
    return registry.with_lines(Lines.LINKS)


@cache
def settlement_of(party: str) -> EntityDef | None:
    """The settlement that pays a party's open documents (Customer -> Payment, Vendor -> BillPayment)."""
    return next((e for e in settlements() if e.party == party), None)


@cache
def settled_by(settlement: str) -> tuple[EntityDef, ...]:
    """The open documents a settlement applies to: its party's documents that keep a balance."""
    party = registry.get(settlement).party
    return tuple(e for e in open_documents() if e.party == party)


def sources_of(ent: EntityDef) -> tuple[EntityDef, ...]:
    """The non-posting documents ``ent`` may be made from: same party, same line family, with a
    ``status`` to close (Invoice <- Estimate, Bill <- PurchaseOrder); none unless ``ent`` is an open charge."""
    if not (ent.is_transaction and ent.balance_field and ent.party_sign > 0):
        return ()
    return tuple(e for e in registry.ENTITIES if e.status and not e.posts_to_ledger
                 and e.party == ent.party and e.lines is ent.lines)


@cache
def deposited() -> tuple[str, ...]:
    """Transactions a deposit banks from Undeposited Funds: the ones a ``Lines.DEPOSIT`` entity depends on."""
    return tuple(dict.fromkeys(dep for e in registry.with_lines(Lines.DEPOSIT) for dep in e.depends_on
                               if registry.get(dep).is_transaction))


@cache
def control_accounts() -> dict[str, str]:
    """Balance holder -> the AccountType of the control account its Balance is the sub-ledger of."""
    by_party = {party: account_type for account_type, party in chart.SUBLEDGERS.items()}
    return {e.name: by_party[e.name] for e in balance_holders()}


def postings_column(party: str) -> str:
    """The ``postings`` column naming a party's sub-ledger rows (``customer_id``, ``vendor_id``)."""
    return f"{party.lower()}_id"


def non_posting(entity: str) -> bool:
    """Whether a known entity never touches the books (estimates, time, name lists)."""
    ent = registry.find(entity)
    return ent is not None and not ent.posts_to_ledger
