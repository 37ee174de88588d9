"""Small, pure helpers every step of the engine shares: money, numbers, dates, references, client quirks.

Nothing here touches the store; the bulk seeder (``emulator/seed.py``) uses the same helpers so the
bodies it computes in Python round and format exactly as the engine's do.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from qb_pipelines.emulator import faults

#: The home currency every body carries (multicurrency is off in emulated companies).
USD = {"value": "USD", "name": "United States Dollar"}
#: Fields the server owns: ignored when a client sends them on a write.
SERVER_FIELDS = frozenset({"domain", "sparse", "MetaData", "status", "time"})
#: Amounts closer than this are equal (half a cent: QBO compares stored cents).
CENT = 0.005


def money(x: float) -> float:
    """Round to cents the way QBO stores amounts (half away from zero)."""
    return float(f"{x + (1e-9 if x >= 0 else -1e-9):.2f}")


def number(value: Any, element: str) -> float:
    """A client's number as a float, or fault 2080 naming ``element``."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise faults.validation("2080", "Illegal number format",
                                f"Illegal number format for {element}: {value!r}", element) from None


def get_path(body: dict, path: str) -> Any:
    """The value at a dotted ``path`` inside ``body`` (``"TxnTaxDetail.TxnTaxCodeRef"``), else None."""
    cur: Any = body
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def ref_value(ref: Any) -> str | None:
    """The Id a reference ``{"value": ..., "name": ...}`` points at, or None when it points nowhere."""
    if isinstance(ref, dict):
        v = ref.get("value")
        return str(v) if v not in (None, "") else None
    return None


def clean(value: Any) -> Any:
    """Normalise client quirks: empty strings mean "not given"; refs without value vanish."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = clean(v)
            if v == "" or v is None:
                continue
            if isinstance(v, dict) and "value" in value.get(k, {}) and v.get("value") in (None, ""):
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [clean(v) for v in value]
    return value


def check_date(value: Any, element: str) -> None:
    """Fault 2080 unless ``value`` starts with an ISO date (``YYYY-MM-DD``)."""
    try:
        date.fromisoformat(str(value)[:10])
    except ValueError:
        raise faults.validation("2080", "Invalid date format",
                                f"Invalid date format for {element}: {value!r}. Use YYYY-MM-DD.", element) from None


def is_voided(body: dict | None) -> bool:
    """A voided transaction keeps its object but posts and owes nothing (§4.5)."""
    return bool(body) and str(body.get("PrivateNote", "")).startswith("Voided")


def bump(sync_token: Any) -> str:
    """The next SyncToken (QBO counts every successful write, §4.1)."""
    return str(int(sync_token or "0") + 1)


def lines_of(body: dict) -> list[dict]:
    """The body's ``Line`` array (fault when a client sends something else)."""
    lines = body.get("Line") or []
    if not isinstance(lines, list):
        raise faults.invalid_value("Line", "Line must be an array")
    return lines


def invalid_enum(detail: str, element: str) -> faults.QBOFault:
    """Fault 2170 "Invalid Enumeration" for a value QBO does not accept in ``element``."""
    return faults.validation("2170", "Invalid Enumeration", f"Invalid Enumeration : {detail}", element)


def line_ex(txn_id: str, open_balance: float, doc_number: str | None) -> dict:
    """The JAXB ``LineEx`` structure QBO emits on payment lines (clients must ignore it, §7.10)."""
    def nv(name: str, value: str) -> dict:
        return {"name": "{http://schema.intuit.com/finance/v3}NameValue",
                "declaredType": "com.intuit.schema.finance.v3.NameValue",
                "scope": "javax.xml.bind.JAXBElement$GlobalScope",
                "value": {"Name": name, "Value": value}, "nil": False, "globalScope": True,
                "typeSubstituted": False}
    items = [nv("txnId", str(txn_id)), nv("txnOpenBalance", f"{open_balance:.2f}")]
    if doc_number:
        items.append(nv("txnReferenceNumber", str(doc_number)))
    return {"any": items}
