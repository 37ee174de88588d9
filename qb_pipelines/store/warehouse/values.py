"""Values as each dialect stores them: portable Python values, SQLite's, and PostgreSQL COPY text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from typing import Any

import orjson


def _utc_sqlite(value: Any) -> Any:
    """A timestamp as SQLAlchemy's SQLite format, in UTC (SQLite keeps no offsets)."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


def _py_time(value: Any) -> Any:
    if value is None or isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _py_date(value: Any) -> Any:
    if value is None or isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _num(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _int(value: Any) -> Any:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _bool(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    return str(value).lower() == "true"


def _text(value: Any) -> Any:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


_PORTABLE = {"text": _text, "money": _num, "precise": _num, "int": _int, "bool": _bool, "date": _py_date,
             "time": _py_time, "json": lambda v: v}
_SQLITE = {**_PORTABLE, "date": lambda v: None if v is None else str(v), "time": _utc_sqlite,
           "bool": lambda v: None if v is None else int(bool(_bool(v)))}


def _copy_str(text: str) -> str:
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return text


def _copy_other(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict | list):
        return _copy_str(orjson.dumps(value).decode())
    return _copy_str(str(value))


#: COPY text format by Python type: one dict lookup per value, no per-column converter. QBO's
#: JSON gives str, int, float, bool or None; dates and times stay ISO text (PostgreSQL parses them).
_COPY_BY_TYPE: dict[type, Callable[[Any], str]] = {
    str: _copy_str,
    int: str,
    float: repr,
    bool: lambda v: "t" if v else "f",
    type(None): lambda v: "\\N",
}


def _copy_line(row: tuple | list) -> str:
    r"""One row in PostgreSQL's COPY text format (``\N`` is NULL; backslash, tab, newlines escaped)."""
    get = _COPY_BY_TYPE.get
    return "\t".join([(get(type(v)) or _copy_other)(v) for v in row])


#: Python types a column kind accepts as is on the COPY path; others go through ``_COPY`` first.
_NATIVE = {"int": (int,), "bool": (bool,), "money": (int, float), "precise": (int, float)}
_COPY = {"int": _int, "bool": _bool, "money": _num, "precise": _num}


def _format(kinds: Sequence[str], row: tuple) -> str:
    """One row as a COPY text line; values go as QBO's JSON gave them, except a value whose Python
    type does not suit its column (a number sent as text for an integer column...), converted first."""
    values: tuple | list = row
    for i, kind in enumerate(kinds):
        native = _NATIVE.get(kind)
        if native is not None:
            v = row[i]
            if v is not None and type(v) not in native:
                if values is row:
                    values = list(row)
                values[i] = _COPY[kind](v)
    return _copy_line(values)
