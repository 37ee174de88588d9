"""Exchange rates (``Kind.KEYED``): one rate per source currency, target currency and date.

What QBO does (reference: api-reference/exchangerate), and so the emulator:

* only companies with multicurrency on have rates (``Preferences.CurrencyPrefs``); a company
  without it gets 6000 on a read or a write, and an empty answer to a query;
* ``POST /exchangerate`` sets the rate of ``SourceCurrencyCode`` on ``AsOfDate`` (required with
  ``Rate``); ``TargetCurrencyCode`` defaults to the home currency; setting a rate for the home
  currency is refused, a rate of a currency to itself is forced to 1; a second POST for the same
  currency and date replaces the rate (SyncToken + 1, 5010 when the SyncToken sent is stale);
* ``GET /exchangerate?sourcecurrencycode=EUR&asofdate=2024-01-31`` answers the rate in effect on
  that date (the latest set on or before it; today by default), 610 when none is;
* the object has no Id and its MetaData only ``LastUpdatedTime``; rates are never deleted.

Approximation: a *query* (``SELECT * FROM exchangerate WHERE asofdate = '...'``) filters the
stored rates on their own values, while QBO's sample answer suggests it also returns the rate in
effect on that date **[uncertain]**. The emulator numbers its rows internally (``objects.id``);
clients never see that number.
"""

from __future__ import annotations

import re

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.db import loads
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.values import bump, check_date, number, ref_value
from qb_pipelines.qbo.registry import EntityDef

_CODE = re.compile(r"^[A-Z]{3}$")


def home_currency(tx: Tx) -> str:
    """The company's home currency (USD unless its Preferences say otherwise), or 6000 without multicurrency."""
    prefs = tx.preferences().get("CurrencyPrefs") or {}
    if not prefs.get("MultiCurrencyEnabled"):
        raise faults.business("Multicurrency is not enabled for this company: exchange rates apply only to "
                              "companies that use multicurrency.", "ExchangeRate")
    return ref_value(prefs.get("HomeCurrency")) or "USD"


def _code(value: object, element: str) -> str:
    code = str(value or "").strip().upper()
    if not _CODE.match(code):
        raise faults.invalid_value(element, f"{element} must be a three-letter ISO 4217 code, not {value!r}")
    return code


def _find(tx: Tx, ent: EntityDef, source: str, target: str, as_of: str, *, exact: bool) -> tuple[int, dict] | None:
    op = "=" if exact else "<="
    row = tx.conn.execute(
        f"SELECT id, body FROM objects WHERE realm=? AND entity=? AND status IS NULL "
        f"AND json_extract(body, '$.SourceCurrencyCode')=? AND json_extract(body, '$.TargetCurrencyCode')=? "
        f"AND json_extract(body, '$.AsOfDate') {op} ? ORDER BY json_extract(body, '$.AsOfDate') DESC LIMIT 1",
        (tx.realm, ent.name, source, target, as_of)).fetchone()
    return (int(row[0]), loads(row[1])) if row else None


def set_rate(tx: Tx, ent: EntityDef, body: dict) -> dict:
    """POST /exchangerate: set (or replace) one currency's rate on one date."""
    home = home_currency(tx)
    for name in ent.required:
        if body.get(name) in (None, ""):
            raise faults.required(name)
    source = _code(body["SourceCurrencyCode"], "SourceCurrencyCode")
    target = _code(body.get("TargetCurrencyCode") or home, "TargetCurrencyCode")
    if source == home:
        raise faults.business(f"You can't set an exchange rate for the home currency ({home}).", "SourceCurrencyCode")
    as_of = str(body["AsOfDate"])[:10]
    check_date(as_of, "AsOfDate")
    rate = number(body["Rate"], "Rate")
    if source == target:
        rate = 1.0
    if rate <= 0:
        raise faults.business("Rate must be greater than zero.", "Rate")
    found = _find(tx, ent, source, target, as_of, exact=True)
    if found is not None:
        obj_id, old = found
        sent = body.get("SyncToken")
        if sent not in (None, "") and str(sent).strip() != old["SyncToken"]:
            raise faults.stale()
        token, operation = bump(old["SyncToken"]), "Update"
    else:
        obj_id, token, operation = tx.next_value(ent.name), "0", "Create"
    out: dict = {"SyncToken": token, "domain": "QBO", "AsOfDate": as_of, "SourceCurrencyCode": source,
                 "Rate": rate if rate != int(rate) else int(rate), "sparse": False, "TargetCurrencyCode": target}
    if body.get("CustomField"):
        out["CustomField"] = body["CustomField"]
    out["MetaData"] = {"LastUpdatedTime": tx.stamp()}
    tx.put(ent, out, created=tx.ts, obj_id=obj_id)
    tx.change(ent.name, ent.identity(out) or str(obj_id), operation)
    return out


def rate_as_of(tx: Tx, ent: EntityDef, source: str | None, as_of: str | None) -> dict:
    """GET /exchangerate: the rate of ``source`` in effect on ``as_of`` (today by default)."""
    home = home_currency(tx)
    if not source:
        raise faults.required("sourcecurrencycode")
    code = _code(source, "sourcecurrencycode")
    day = (as_of or tx.today())[:10]
    check_date(day, "asofdate")
    if code == home:  # the home currency is worth itself [uncertain: QBO's exact answer]
        return {"SyncToken": "0", "domain": "QBO", "AsOfDate": day, "SourceCurrencyCode": home, "Rate": 1,
                "sparse": False, "TargetCurrencyCode": home, "MetaData": {"LastUpdatedTime": tx.stamp()}}
    found = _find(tx, ent, code, home, day, exact=False)
    if found is None:
        raise faults.not_found()
    return found[1]

