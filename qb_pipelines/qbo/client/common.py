"""The client's constants and the shapes of QBO's answers (unwrapping, rows, identities, times).

Pure values and functions: no HTTP, no tokens.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import requests

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.errors import (
    QBOError,
)

MINORVERSION = "75"
#: QBO's most rows per query page (MAXRESULTS).
MAX_PAGE = 1000
#: QBO's most objects in one CDC response.
CDC_MAX_OBJECTS = 1000
#: How far back CDC can look.
CDC_LOOKBACK = timedelta(days=30)
#: QBO's most items per batch call.
BATCH_SIZE = 30
#: QBO's limits when a batch carries a requestid: the id at most 36 characters, each bId at most 10.
BATCH_REQUESTID_MAX = 36
BATCH_BID_MAX = 10
#: How long to wait after a 429 that carries no Retry-After (Intuit: "wait 60 seconds").
THROTTLE_DEFAULT_WAIT_S = 60.0
#: A Retry-After longer than this is not waited for in-process: the call fails at once (e.g. the
#: app's monthly read cap, which lifts only next month).
MAX_RETRY_AFTER_S = 300.0


def decode_json(response: requests.Response) -> Any:
    """Decode a JSON body with orjson: a 1000-invoice page is ~1.6 MB, and the standard json
    module was about a third of the landing CPU."""
    return orjson.loads(response.content)


def entity_name(entity: str) -> str:
    """QBO's spelling of an entity name (``invoice`` -> ``Invoice``); unknown names pass through."""
    found = registry.find(entity)
    return found.name if found is not None else entity


def unwrap(body: dict[str, Any], entity: str) -> dict[str, Any]:
    """The entity inside a single-entity envelope ``{"Invoice": {...}, "time": ...}`` (QBO's wire
    name counts: a CreditCardPayment comes back as ``CreditCardPaymentTxn``)."""
    found = registry.find(entity)
    for key in (entity, found.json_key if found is not None else entity):
        if key in body:
            return body[key]
    for key, value in body.items():
        if key != "time" and isinstance(value, dict):
            return value
    raise QBOError(f"unexpected response: no {entity} in it", hint="report this to the maintainers")


def rows_of(query_response: dict[str, Any], entity: str) -> list[dict[str, Any]]:
    """The rows of one entity in a QueryResponse (matched case-insensitively, by name or wire name)."""
    rows = query_response.get(entity)
    if rows is None:
        found = registry.find(entity)
        names = {entity.lower(), found.json_key.lower()} if found is not None else {entity.lower()}
        for key, value in query_response.items():
            if key.lower() in names and isinstance(value, list):
                return value
        return []
    return rows


def identity(entity: str, obj: dict[str, Any]) -> str:
    """The key an object is known by (its Id; a wrapped template's; an exchange rate's key)."""
    found = registry.find(entity)
    return str(found.identity(obj) if found is not None else obj.get("Id"))


def quote(value: str) -> str:
    """A value quoted for the query language (apostrophes escaped with a backslash)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def last_updated(obj: dict[str, Any]) -> datetime | None:
    return parse_time((obj.get("MetaData") or {}).get("LastUpdatedTime"))
