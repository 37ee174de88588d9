"""Compiling WHERE and ORDER BY to SQL over the ``objects`` table (Id, times, Active, JSON paths).

Values are coerced as QBO does (instants for MetaData times, numbers, booleans, numeric Ids);
unsupported operators are 4001 faults. Builds SQL and parameters and runs none of it; resolving
a property may read stored bodies (:mod:`.names`).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.clock import parse_instant
from qb_pipelines.emulator.query.names import NAMES
from qb_pipelines.emulator.query.syntax import Query, Value
from qb_pipelines.qbo.registry import EntityDef

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator


# A datetime whose '+' offset arrived URL-decoded as a space (any fractional seconds).
_PLUS_AS_SPACE = re.compile(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$")


_TIME_COLUMNS = {"metadata.lastupdatedtime": "updated_at", "metadata.createtime": "created_at"}


def _instant(value: Value, emu: Emulator, prop: str) -> float:
    text = value.text.strip()
    if value.kind == "current_date":
        text = emu.clock.today()
    m = _PLUS_AS_SPACE.match(text)
    if m:
        text = f"{m.group(1)}+{m.group(2)}"
    try:
        return parse_instant(text)
    except ValueError:
        raise faults.query_invalid(
            f"QueryValidationError: value {value.text} is not a valid date/time for property {prop}"
        ) from None


def _as_number(value: Value) -> float | None:
    if value.kind in ("num", "str"):
        try:
            return float(value.text)
        except ValueError:
            return None
    return None


def _as_bool(value: Value) -> int | None:
    if value.kind in ("bool", "str") and value.text.lower() in ("true", "false"):
        return 1 if value.text.lower() == "true" else 0
    return None


def _as_int_id(value: Value) -> int | None:
    try:
        return int(value.text.strip())
    except ValueError:
        return None


#: Contact objects filter on their one value: ``PrimaryEmailAddr = 'a@b.co'`` compares the address.
_CONTACT_LEAVES = {"PrimaryEmailAddr": "Address", "BillEmail": "Address", "PrimaryPhone": "FreeFormNumber",
                   "Mobile": "FreeFormNumber", "Fax": "FreeFormNumber", "AlternatePhone": "FreeFormNumber",
                   "WebAddr": "URI"}


def _json_path(path: str) -> str:
    # Reference fields (CustomerRef, ParentRef...) filter on their id: '$.CustomerRef.value'.
    last = path.split(".")[-1]
    if last.endswith("Ref"):
        path += ".value"
    elif last in _CONTACT_LEAVES:
        path += "." + _CONTACT_LEAVES[last]
    return "$." + path


def _generic_compare(path: str, op: str, value: Value, emu: Emulator, params: list[Any]) -> str:
    """Compare a body field with a literal the way QBO does: numbers numerically, text ignoring case."""
    text = emu.clock.today() if value.kind == "current_date" else value.text
    num = _as_number(value)
    flag = _as_bool(value)
    jp = _json_path(path)
    parts = ["CASE json_type(body, ?)"]
    params.append(jp)
    if num is not None:
        parts.append(f"WHEN 'integer' THEN json_extract(body, ?) {op} ? WHEN 'real' THEN json_extract(body, ?) {op} ?")
        params.extend([jp, num, jp, num])
    if flag is not None:
        parts.append(f"WHEN 'true' THEN 1 {op} ? WHEN 'false' THEN 0 {op} ?")
        params.extend([flag, flag])
    parts.append(f"WHEN 'text' THEN json_extract(body, ?) {op} ? COLLATE NOCASE END")
    params.extend([jp, text])
    return " ".join(parts)


def _generic_in(path: str, values: list[Value], emu: Emulator, params: list[Any]) -> str:
    """``path IN (values)``: true where :func:`_generic_compare` with ``=`` is true for one of ``values``.

    One type test and one extraction per row, whatever the number of values (the same comparisons
    as an OR of equalities: numbers numerically, booleans as flags, text ignoring case).
    """
    texts = [emu.clock.today() if v.kind == "current_date" else v.text for v in values]
    nums = [n for n in (_as_number(v) for v in values) if n is not None]
    flags = [f for f in (_as_bool(v) for v in values) if f is not None]
    jp = _json_path(path)
    parts = ["CASE json_type(body, ?)"]
    params.append(jp)
    if nums:
        marks = ",".join("?" * len(nums))
        parts.append(f"WHEN 'integer' THEN json_extract(body, ?) IN ({marks}) "
                     f"WHEN 'real' THEN json_extract(body, ?) IN ({marks})")
        params.extend([jp, *nums, jp, *nums])
    if flags:
        marks = ",".join("?" * len(flags))
        parts.append(f"WHEN 'true' THEN 1 IN ({marks}) WHEN 'false' THEN 0 IN ({marks})")
        params.extend([*flags, *flags])
    parts.append(f"WHEN 'text' THEN json_extract(body, ?) COLLATE NOCASE IN ({','.join('?' * len(texts))}) END")
    params.extend([jp, *texts])
    return " ".join(parts)


#: Body fields with an expression index (``objects_docnumber`` in :mod:`qb_pipelines.emulator.db`):
#: the match-before-create of a push looks documents up by number, 30 at a time, in companies
#: holding many thousands of them.
INDEXED_PATHS = {"$.DocNumber": "objects_docnumber"}


def _index_prefilter(path: str, values: list[Value], emu: Emulator, params: list[Any]) -> str:
    """A term the expression index answers, true for every row :func:`_generic_in` keeps (and a few more).

    Each value as text, number and flag: a stored number equals the number, a stored boolean
    extracts as 1 or 0; the exact comparison is still applied beside it.
    """
    candidates: list[Any] = []
    for v in values:
        candidates.append(emu.clock.today() if v.kind == "current_date" else v.text)
        num, flag = _as_number(v), _as_bool(v)
        candidates.extend(c for c in (num, flag) if c is not None)
    params.extend(candidates)
    literal = _json_path(path).replace("'", "''")
    return f"json_extract(body, '{literal}') COLLATE NOCASE IN ({','.join('?' * len(candidates))})"


class _Compiled:
    """SQL pieces for one query against one entity."""

    def __init__(self) -> None:
        self.where: list[str] = []
        self.params: list[Any] = []
        self.mentions_active = False
        self.index: str | None = None  # an expression index a term can use (``INDEXED BY``)


def compile_where(q: Query, emu: Emulator, realm: str, entity: EntityDef) -> _Compiled:
    out = _Compiled()
    for cond in q.where:
        low = cond.prop.lower()
        op = cond.op
        if low == "id":
            if op not in ("=", "in"):
                raise faults.query_invalid(
                    f"QueryValidationError: operator '{op}' is not supported for property 'Id'"
                )
            ints = [_as_int_id(v) for v in cond.values]
            if all(i is not None for i in ints):
                out.where.append(f"id IN ({','.join('?' * len(ints))})")
                out.params.extend(ints)
            else:  # non-numeric Ids (e.g. TaxCode "TAX") live only in the body
                out.where.append(f"json_extract(body, '$.Id') IN ({','.join('?' * len(ints))})")
                out.params.extend(v.text for v in cond.values)
            continue
        if low in _TIME_COLUMNS:
            column = _TIME_COLUMNS[low]
            instants = [_instant(v, emu, cond.prop) for v in cond.values]
            if op == "in":
                out.where.append(f"{column} IN ({','.join('?' * len(instants))})")
            elif op == "like":
                raise faults.query_invalid(f"QueryValidationError: operator 'like' is not supported for property '{cond.prop}'")
            else:
                out.where.append(f"{column} {op} ?")
            out.params.extend(instants)
            continue
        if low == "type" and entity.wraps:
            # a RecurringTransaction is filtered on the type it wraps ({"Invoice": {...}})
            kinds = [v.text for v in cond.values]
            if op not in ("=", "in") or any(k not in entity.wraps for k in kinds):
                raise faults.query_invalid(f"QueryValidationError: value {cond.values[0].text} is invalid for "
                                           "property 'Type'")
            out.where.append("(" + " OR ".join("json_type(body, ?) IS NOT NULL" for _ in kinds) + ")")
            out.params.extend(f"$.{k}" for k in kinds)
            continue
        if low == "active":
            out.mentions_active = True
            flags = [_as_bool(v) for v in cond.values]
            if any(f is None for f in flags) or op == "like":
                raise faults.query_invalid(f"QueryValidationError: value {cond.values[0].text} is invalid for property 'Active'")
            if op == "in":
                out.where.append(f"active IN ({','.join('?' * len(flags))})")
            else:
                out.where.append(f"active {op} ?")
            out.params.extend(flags)
            continue
        path = NAMES.resolve(emu, realm, entity, cond.prop)
        if op == "like":
            pattern = cond.values[0].text.replace("\\", "\\\\").replace("_", "\\_")
            out.where.append("json_extract(body, ?) LIKE ? ESCAPE '\\'")
            out.params.extend([_json_path(path), pattern])
        else:
            if op in ("=", "in") and out.index is None and _json_path(path) in INDEXED_PATHS:
                out.index = INDEXED_PATHS[_json_path(path)]
                out.where.append(_index_prefilter(path, cond.values, emu, out.params))
            if op == "in":
                out.where.append(_generic_in(path, cond.values, emu, out.params))
            else:
                out.where.append(_generic_compare(path, op, cond.values[0], emu, out.params))
    return out


def order_terms(q: Query, emu: Emulator, realm: str, entity: EntityDef) -> tuple[list[tuple[str, bool]], bool]:
    """ORDER BY terms as (sql expression, descending); the bool says whether keyset paging applies.

    Keyset paging needs every term to be a plain column sorted the same way; ``id`` is always
    the final tie-breaker so pages never overlap.
    """
    terms: list[tuple[str, bool]] = []
    keyset = True
    for prop, desc in q.order:
        low = prop.lower()
        if low == "id":
            terms.append(("id", desc))
        elif low in _TIME_COLUMNS:
            terms.append((_TIME_COLUMNS[low], desc))
        elif low == "active":
            terms.append(("active", desc))
        else:
            path = NAMES.resolve(emu, realm, entity, prop)
            terms.append((f"json_extract(body, '{_json_path(path)}') COLLATE NOCASE", desc))
            keyset = False
    if not any(expr == "id" for expr, _ in terms):
        terms.append(("id", terms[-1][1] if terms else False))
    if len({desc for _, desc in terms}) > 1:
        keyset = False
    return terms, keyset
