"""Deposits (``Lines.DEPOSIT``): banking received payments and other money.

A line either links a payment or sales receipt waiting in Undeposited Funds (its Amount defaults
to that transaction's TotalAmt), or books to an account (``DepositLineDetail``). TotalAmt is the
sum. The deposited transactions list the deposit in their ``LinkedTxn`` and can no longer be
deleted or voided (6540) until taken out of it (:func:`relink`).
"""

from __future__ import annotations

from qb_pipelines.emulator import entities, faults
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.values import lines_of, money, number
from qb_pipelines.qbo.registry import EntityDef


def compute_deposit(tx: Tx, ent: EntityDef, body: dict, old: dict | None) -> None:
    """Line amounts (from the deposited transactions when not given) and TotalAmt."""
    banked = entities.deposited()
    lines = []
    for n, line in enumerate(lines_of(body), start=1):
        line = dict(line)
        if line.get("LinkedTxn"):
            for lt in line["LinkedTxn"]:
                typ, tid = lt.get("TxnType"), str(lt.get("TxnId", ""))
                doc = tx.get(typ, tid) if typ in banked else None
                if doc is None:
                    raise faults.invalid_reference("Line.LinkedTxn.TxnId", tid, typ or banked[0])
                if line.get("Amount") is None:
                    line["Amount"] = doc.get("TotalAmt", 0)
        else:
            line.setdefault("DetailType", "DepositLineDetail")
            if line.get("Amount") is None:
                raise faults.required("Line.Amount")
        line["Amount"] = money(number(line["Amount"], "Line.Amount"))
        line["Id"] = str(n)
        line.setdefault("LineNum", n)
        lines.append(line)
    body["Line"] = lines
    body["TotalAmt"] = money(sum(line["Amount"] for line in lines))


def relink(tx: Tx, ent: EntityDef, old: dict | None, new: dict | None) -> None:
    """Deposits mark the transactions they bank (6540 guards them afterwards)."""
    dep_id = (new or old or {}).get("Id")
    banked = entities.deposited()

    def linked(body: dict | None) -> set[tuple[str, str]]:
        return {(lt["TxnType"], str(lt["TxnId"])) for line in (body or {}).get("Line") or []
                for lt in line.get("LinkedTxn") or [] if lt.get("TxnType") in banked}

    after = linked(new)
    for typ, tid in sorted(linked(old) ^ after):
        doc = tx.get(typ, tid)
        if doc is None:
            continue
        links = [lt for lt in doc.get("LinkedTxn") or []
                 if not (lt.get("TxnType") == ent.name and str(lt.get("TxnId")) == str(dep_id))]
        if (typ, tid) in after:
            links.append({"TxnId": str(dep_id), "TxnType": ent.name})
        doc["LinkedTxn"] = links
        tx.touch(typ, doc, bump_token=True)
