"""Settlements (``Lines.LINKS``: payments and bill payments): applying them to open documents and linking back.

A settlement's lines only carry an Amount and the documents it applies to (§7.10, §7.12). QBO
checks each document belongs to the settlement's party and that no more than its open balance
is applied (what this settlement applied before counts as open again on an update); the charges
applied (invoices, bills) less the credits used (credit memos, vendor credits) cannot exceed the
amount paid, and a payment keeps the rest as ``UnappliedAmt``. Afterwards each document lists the
settlement in its ``LinkedTxn`` and its Balance drops by what is applied (:func:`relink`).

Which documents a settlement applies to comes from the registry: the open documents of its party
(:func:`qb_pipelines.emulator.entities.settled_by`), plus journal entries on the control account.
"""

from __future__ import annotations

import re
from typing import Any

from qb_pipelines.emulator import chart, entities, faults
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.values import (
    invalid_enum,
    line_ex,
    lines_of,
    money,
    number,
    ref_value,
)
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef, Lines

_PAY_TYPES = ("Check", "CreditCard")


def label(entity: str) -> str:
    """``"CreditMemo"`` -> ``"credit memo"``, as QBO's messages name documents."""
    return re.sub(r"(?<!^)(?=[A-Z])", " ", entity).lower()


def links_of(links: Any) -> list[dict]:
    """The well-formed ``LinkedTxn`` entries of a body (copies)."""
    return [dict(link) for link in (links or []) if isinstance(link, dict) and link.get("TxnId")]


def link_type(ent: EntityDef, body: dict | None) -> str:
    """The TxnType a settled document's ``LinkedTxn`` names this settlement by.

    Bill payments are named by how they pay (``BillPaymentCheck``, ``BillPaymentCreditCard``).
    """
    if ent.name == "BillPayment":
        return "BillPaymentCheck" if (body or {}).get("PayType") == "Check" else "BillPaymentCreditCard"
    return ent.name


def _link_types(settlement: EntityDef) -> tuple[str, ...]:
    return tuple(dict.fromkeys(link_type(settlement, {"PayType": p}) for p in _PAY_TYPES))


def applied_to(tx: Tx, target_entity: str, target_id: str) -> float:
    """What the settlements linked to an open document apply to it (its TotalAmt less its Balance)."""
    target = tx.get(target_entity, target_id)
    settlement = entities.settlement_of(registry.get(target_entity).party or "")
    if target is None or settlement is None:
        return 0.0
    types = _link_types(settlement)
    total = 0.0
    for link in target.get("LinkedTxn") or []:
        if link.get("TxnType") not in types:
            continue
        pay = tx.get(settlement.name, link["TxnId"])
        for line in (pay or {}).get("Line") or []:
            for lt in line.get("LinkedTxn") or []:
                if lt.get("TxnType") == target_entity and str(lt.get("TxnId")) == str(target_id):
                    total += float(line.get("Amount", 0))
    return money(total)


def check_not_below_applied(ent: EntityDef, total: float, applied: float) -> None:
    """6000 when an edit would bring a document's total under what settlements already apply to it."""
    if applied - total > 0.005:
        what = "credit" if ent.party_sign < 0 else "payments"
        raise faults.business(
            f"The {label(ent.name)} total ({total:.2f}) cannot be less than the {what} already applied "
            f"({applied:.2f}). Unapply the {what} first.", "TotalAmt")


def compute_settlement(tx: Tx, ent: EntityDef, body: dict, old: dict | None) -> None:
    """A payment's or bill payment's party, amounts, lines and what stays unapplied."""
    party_ref = f"{ent.party}Ref"
    party = tx.get(ent.party or "", ref_value(body.get(party_ref)))
    body[party_ref] = {"value": party["Id"], "name": party["DisplayName"]}
    if ent.name == "BillPayment":
        _pay_from(body)
    total = money(number(body.get("TotalAmt"), "TotalAmt"))
    if total < 0:
        raise faults.business(f"{label(ent.name).capitalize()} amount cannot be negative.", "TotalAmt")
    body["TotalAmt"] = total
    lines, charges, credits = _apply(tx, ent, body, old, party)
    if charges - credits - total > 0.005:
        charged = " and ".join(f"{label(d.name)}s" for d in entities.settled_by(ent.name) if d.party_sign > 0)
        raise faults.business(f"The amount applied to {charged} is more than the payment amount.", "TotalAmt")
    body["Line"] = lines
    if ent.name == "Payment":
        body["UnappliedAmt"] = money(total - charges + credits)
        body.setdefault("DepositToAccountRef", {"value": str(chart.UNDEPOSITED_FUNDS), "name": "Undeposited Funds"})
        body.setdefault("ProcessPayment", False)
        links = links_of(body.get("LinkedTxn") or (old or {}).get("LinkedTxn"))  # the deposit that banked it
        if links:
            body["LinkedTxn"] = links
        else:
            body.pop("LinkedTxn", None)


def _pay_from(body: dict) -> None:
    """A bill payment pays by cheque from a bank account (Checking by default) or by card (§7.12)."""
    pay_type = body.get("PayType")
    if pay_type not in _PAY_TYPES:
        raise invalid_enum(str(pay_type), "PayType")
    if pay_type == "Check":
        body["CheckPayment"] = dict(body.get("CheckPayment") or {})
        body["CheckPayment"].setdefault("BankAccountRef", {"value": str(chart.CHECKING), "name": "Checking"})
        body["CheckPayment"].setdefault("PrintStatus", "NotSet")
    else:
        cc = dict(body.get("CreditCardPayment") or {})
        if not ref_value(cc.get("CCAccountRef")):
            raise faults.required("CreditCardPayment.CCAccountRef")
        body["CreditCardPayment"] = cc


def _apply(tx: Tx, ent: EntityDef, body: dict, old: dict | None, party: dict
           ) -> tuple[list[dict], float, float]:
    """The stored lines, and the charges and credits they apply (checked against open balances)."""
    settled = {d.name: d for d in entities.settled_by(ent.name)}
    allowed = (*settled, *(e.name for e in registry.with_lines(Lines.JOURNAL)))
    before: dict[tuple[str, str], float] = {}  # what this settlement applied before an update
    for line in (old or {}).get("Line") or []:
        for lt in line.get("LinkedTxn") or []:
            key = (lt.get("TxnType"), str(lt.get("TxnId")))
            before[key] = before.get(key, 0.0) + float(line.get("Amount", 0))
    charges = credits = 0.0
    lines = []
    for line in lines_of(body):
        amount = money(number(line.get("Amount", 0), "Line.Amount"))
        links = [lt for lt in (line.get("LinkedTxn") or []) if isinstance(lt, dict)]
        if not links:
            raise faults.required("Line.LinkedTxn")
        out: dict[str, Any] = {"Amount": amount, "LinkedTxn": []}
        for lt in links:
            typ, tid = lt.get("TxnType"), str(lt.get("TxnId", ""))
            if typ not in allowed:
                raise invalid_enum(f"{typ} cannot be linked to a {label(ent.name)}", "Line.LinkedTxn.TxnType")
            doc = tx.get(typ, tid)
            if doc is None:
                raise faults.invalid_reference("Line.LinkedTxn.TxnId", tid, typ)
            out["LinkedTxn"].append({"TxnId": tid, "TxnType": typ})
            doc_ent = settled.get(typ)
            if doc_ent is None:
                continue  # a journal entry line on the control account
            if ref_value(doc.get(f"{ent.party}Ref")) != party["Id"]:
                raise faults.business(
                    f"The {label(typ)} {doc.get('DocNumber', tid)} belongs to another {label(ent.party or '')}.",
                    "Line.LinkedTxn")
            available = float(doc.get(doc_ent.balance_field or "Balance", 0)) + before.get((typ, tid), 0.0)
            if amount - available > 0.005:
                raise faults.business(
                    f"The amount applied ({amount:.2f}) to {label(typ)} {doc.get('DocNumber', tid)} exceeds "
                    f"its open balance ({available:.2f}).", "Line.Amount")
            if doc_ent.party_sign > 0:
                charges += amount
                if ent.name == "Payment":
                    out["LineEx"] = line_ex(tid, available, doc.get("DocNumber"))
            else:
                credits += amount
        lines.append(out)
    return lines, charges, credits


def relink(tx: Tx, ent: EntityDef, old: dict | None, new: dict | None) -> None:
    """LinkedTxn and Balance on the documents a settlement applies to, before and after (§7.8, §7.12)."""
    pay_id = (new or old or {}).get("Id")
    kind = link_type(ent, new or old)
    kinds = _link_types(ent)  # every settlement of this entity, whatever it paid by
    targets = tuple(d.name for d in entities.settled_by(ent.name))

    def docs(body: dict | None) -> set[tuple[str, str]]:
        return {(lt["TxnType"], str(lt["TxnId"])) for line in (body or {}).get("Line") or []
                for lt in line.get("LinkedTxn") or [] if lt.get("TxnType") in targets}

    after = docs(new)
    for typ, tid in sorted(docs(old) | after):
        doc = tx.get(typ, tid)
        if doc is None:
            continue
        links = [lt for lt in doc.get("LinkedTxn") or []
                 if not (lt.get("TxnType") in kinds and str(lt.get("TxnId")) == str(pay_id))]
        if (typ, tid) in after:
            links.append({"TxnId": str(pay_id), "TxnType": kind})
        applied = 0.0
        # sum what every linked settlement applies (a bill paid once by cheque and once by card
        # counts both), counting this one from its new body
        for lt in links:
            if lt.get("TxnType") not in kinds:
                continue
            pay = new if str(lt["TxnId"]) == str(pay_id) else tx.get(ent.name, lt["TxnId"])
            for line in (pay or {}).get("Line") or []:
                for x in line.get("LinkedTxn") or []:
                    if x.get("TxnType") == typ and str(x.get("TxnId")) == tid:
                        applied += float(line.get("Amount", 0))
        doc["LinkedTxn"] = links
        balance = registry.get(typ).balance_field or "Balance"
        doc[balance] = money(float(doc.get("TotalAmt", 0)) - applied)
        if "RemainingCredit" in doc:  # a credit memo's balance is what remains of the credit
            doc["RemainingCredit"] = doc[balance]
        tx.touch(typ, doc, bump_token=True)
        tx.change(typ, tid, "Update")
