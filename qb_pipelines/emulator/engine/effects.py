"""Side effects of a transaction on other objects: party balances, stock, links, document status.

When a transaction is written, voided or deleted, QBO keeps related objects true in the same
commit: the party's ``Balance`` (and a customer's ancestors' ``BalanceWithJobs``) moves by the
registry's ``party_sign`` times TotalAmt; tracked items' ``QtyOnHand`` by ``stock_sign`` times the
quantity; settled documents, deposited payments, estimates turned into invoices and purchase
orders turned into bills get their ``LinkedTxn`` (and the source document its closed ``status``).
A document something links to cannot be deleted or voided (6000, 6540).
"""

from __future__ import annotations

from collections.abc import Callable

from qb_pipelines.emulator import chart, entities, faults
from qb_pipelines.emulator.engine import deposits, settlements
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.values import get_path, is_voided, money, ref_value
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef, Lines

#: How deep BalanceWithJobs climbs a customer's ancestors (jobs nest at most four levels).
_MAX_ANCESTORS = 5


def apply_side_effects(tx: Tx, ent: EntityDef, old: dict | None, new: dict | None) -> None:
    """Move everything ``old`` (the stored version, or None) did to what ``new`` (or None) does."""
    if not ent.is_transaction:
        return
    _party_delta(tx, ent, old, -1)
    _party_delta(tx, ent, new, +1)
    _stock_delta(tx, ent, old, new)
    _relink(tx, ent, old, new)


def _relink(tx: Tx, ent: EntityDef, old: dict | None, new: dict | None) -> None:
    if ent.lines is Lines.LINKS:
        settlements.relink(tx, ent, old, new)
    elif ent.lines is Lines.DEPOSIT:
        deposits.relink(tx, ent, old, new)
    else:
        for source in entities.sources_of(ent):
            _source_links(tx, source, ent, old, new)


def party_contributions(ent: EntityDef, body: dict, account: Callable[[str | None], dict | None]
                        ) -> list[tuple[str, str, float]]:
    """How a transaction moves party balances: ``[(party entity, party Id, amount)]``.

    A document moves its party's Balance by ``party_sign`` x TotalAmt; a journal entry moves the
    party named on each control-account line (A/R debits raise a customer's, A/P credits a vendor's).
    """
    if is_voided(body) or body.get("status") == "Deleted":
        return []
    if ent.lines is Lines.JOURNAL:
        return _journal_contributions(body, account)
    party_id = ref_value(body.get(f"{ent.party}Ref")) if ent.party else None
    if not party_id or not ent.party_sign:
        return []
    return [(ent.party or "", party_id, ent.party_sign * float(body.get("TotalAmt", 0) or 0))]


def _journal_contributions(body: dict, account: Callable[[str | None], dict | None]
                           ) -> list[tuple[str, str, float]]:
    out = []
    for line in body.get("Line") or []:
        d = line.get("JournalEntryLineDetail") or {}
        acc = account(ref_value(d.get("AccountRef")))
        party_type = get_path(d, "Entity.Type")
        party_id = ref_value(get_path(d, "Entity.EntityRef"))
        if not acc or not party_id:
            continue
        party = chart.SUBLEDGERS.get(acc.get("AccountType", ""))
        if party is None or party_type != party:
            continue
        debit = float(line.get("Amount", 0)) * (1 if d.get("PostingType") == "Debit" else -1)
        # a party's Balance has its control account's natural sign (A/R debit, A/P credit)
        out.append((party, party_id, chart.DEBIT_NORMAL.get(acc.get("Classification", "Asset"), 1) * debit))
    return out


def _party_delta(tx: Tx, ent: EntityDef, body: dict | None, sign: int) -> None:
    if body is None:
        return
    for party, party_id, amount in party_contributions(ent, body, lambda i: tx.get("Account", i)):
        if abs(amount) < 1e-9:
            continue
        adjust_balance(tx, party, party_id, sign * amount)


def adjust_balance(tx: Tx, party: str, party_id: str, delta: float) -> None:
    """Move a party's Balance (and, up a hierarchy, its ancestors' BalanceWithJobs) by ``delta``."""
    node = tx.get(party, party_id)
    if node is None:
        return
    ent = registry.get(party)
    node[ent.balance_field or "Balance"] = money(float(node.get(ent.balance_field or "Balance", 0)) + delta)
    if ent.hierarchical:
        node["BalanceWithJobs"] = money(float(node.get("BalanceWithJobs", 0)) + delta)
    # QBO moves LastUpdatedTime but not SyncToken when only the balance changes (§7.2)
    tx.touch(party, node, bump_token=False)
    if not ent.hierarchical:
        return
    parent = ref_value(node.get("ParentRef"))
    for _ in range(_MAX_ANCESTORS):
        p = tx.get(party, parent) if parent else None
        if p is None:
            break
        p["BalanceWithJobs"] = money(float(p.get("BalanceWithJobs", 0)) + delta)
        tx.touch(party, p, bump_token=False)
        parent = ref_value(p.get("ParentRef"))


def item_quantities(body: dict | None) -> list[tuple[str, float]]:
    """``[(item Id, quantity)]`` of a transaction's item lines (none when voided)."""
    out: list[tuple[str, float]] = []
    if not body or is_voided(body):
        return out
    for line in body.get("Line") or []:
        for key in ("SalesItemLineDetail", "ItemBasedExpenseLineDetail"):
            d = line.get(key)
            item_id = ref_value(d.get("ItemRef")) if isinstance(d, dict) else None
            if item_id:
                out.append((item_id, float(d.get("Qty", 1) or 0)))
    return out


def _stock_delta(tx: Tx, ent: EntityDef, old: dict | None, new: dict | None) -> None:
    """QtyOnHand of tracked items moves by ``stock_sign`` x the quantity (sold -1, bought +1)."""
    if not ent.stock_sign:
        return
    qty: dict[str, float] = {}
    for body, factor in ((old, -1), (new, 1)):
        for item_id, q in item_quantities(body):
            qty[item_id] = qty.get(item_id, 0.0) + factor * ent.stock_sign * q
    for item_id, delta in qty.items():
        if abs(delta) < 1e-9:
            continue
        item = tx.get("Item", item_id)
        if item is None or not item.get("TrackQtyOnHand"):
            continue
        item["QtyOnHand"] = round(float(item.get("QtyOnHand", 0)) + delta, 4)
        tx.touch("Item", item, bump_token=True)


def _source_links(tx: Tx, source: EntityDef, ent: EntityDef, old: dict | None, new: dict | None) -> None:
    """A document made from another (an invoice from an estimate §7.9, a bill from a purchase
    order §7.11) links both ways and closes it; unlinking the last one reopens it.

    The source must belong to the same party (6000 otherwise).
    """
    field, opened, closed = source.status or ("", "", "")

    def linked(body: dict | None) -> set[str]:
        return {str(lt["TxnId"]) for lt in (body or {}).get("LinkedTxn") or [] if lt.get("TxnType") == source.name}

    doc_id = (new or old or {}).get("Id")
    after = linked(new)
    party_ref = f"{ent.party}Ref"
    for src_id in sorted(linked(old) ^ after):
        src = tx.get(source.name, src_id)
        if src is None:
            raise faults.invalid_reference("LinkedTxn.TxnId", src_id, source.name)
        if src_id in after and ref_value(src.get(party_ref)) != ref_value((new or {}).get(party_ref)):
            raise faults.business(f"The {settlements.label(source.name)} {src.get('DocNumber', src_id)} belongs "
                                  f"to another {settlements.label(ent.party or '')}.", "LinkedTxn")
        links = [lt for lt in src.get("LinkedTxn") or []
                 if not (lt.get("TxnType") == ent.name and str(lt.get("TxnId")) == str(doc_id))]
        if src_id in after:
            links.append({"TxnId": str(doc_id), "TxnType": ent.name})
            src[field] = closed
        elif not any(lt.get("TxnType") == ent.name for lt in links):
            src[field] = opened
        src["LinkedTxn"] = links
        tx.touch(source.name, src, bump_token=True)
        tx.change(source.name, src_id, "Update")


def guard_linked(ent: EntityDef, body: dict, *, action: str) -> None:
    """Business rules that stop a delete or void: settled documents (6000), deposited ones (6540)."""
    links = body.get("LinkedTxn") or []
    settlement = entities.settlement_of(ent.party or "") if ent.balance_field else None
    if settlement is not None:
        settled_by = settlements.label(settlement.name)
        if any(str(lt.get("TxnType", "")).startswith(settlement.name) for lt in links):
            raise faults.business(
                f"This {settlements.label(ent.name)} has {settled_by}s applied to it and cannot be {action}. "
                f"Delete or unapply the {settled_by}s first.")
    if ent.name in entities.deposited() and any(lt.get("TxnType") in _depositors() for lt in links):
        raise faults.validation(
            "6540", "Deposited Transaction cannot be changed",
            f"This transaction has been deposited and cannot be {action}. Remove it from the deposit first.")


def _depositors() -> tuple[str, ...]:
    return tuple(e.name for e in registry.with_lines(Lines.DEPOSIT))


def zero_amounts(ent: EntityDef, body: dict) -> None:
    """A void keeps the object with every amount and quantity at zero (§4.5)."""
    for line in body.get("Line") or []:
        line["Amount"] = 0
        for key, detail in list(line.items()):
            if key.endswith("Detail") and isinstance(detail, dict):
                if "Qty" in detail:
                    detail["Qty"] = 0
                if "UnitPrice" in detail:
                    detail["UnitPrice"] = 0
    if ent.lines is Lines.LINKS:
        body["Line"] = []  # a voided settlement applies nothing
    body["TotalAmt"] = 0
    for key in ("Balance", "UnappliedAmt", "RemainingCredit"):
        if key in body:
            body[key] = 0
    if "TxnTaxDetail" in body:
        body["TxnTaxDetail"] = {"TotalTax": 0}
