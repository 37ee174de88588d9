"""The QuickBooks Online Accounting API v3 client: one company, every call QBO's way.

What every call does (reference §1.3-§1.6, §11b):

* ``Authorization: Bearer`` from a :class:`TokenSource`, ``Accept: application/json``,
  ``minorversion=75``; writes carry a ``requestid`` (a UUID, reused on every retry of that
  write, so QBO replays the first answer instead of posting twice);
* takes a slot from the company's shared :class:`~qb_pipelines.qbo.ratelimit.CompanyRateLimiter`
  (500/minute, 10 concurrent, 40 batch calls/minute), so threads sharing a company do not
  provoke a storm of 429s;
* retries 429, 5xx, timeouts and dropped connections with exponential backoff and full jitter
  (``uniform(0, min(cap, base * 2**attempt))``), never sooner than ``Retry-After``;
* on a 401 asks the token source for a fresh token **once** (``tokens.refresh(stale)``, which is
  single-flight: many threads hitting a 401 together cause one refresh) and retries;
* turns failures into the typed errors of :mod:`qb_pipelines.qbo.errors`, each with
  ``intuit_tid`` and a hint; a write whose outcome stayed unknown after the last retry raises
  :class:`OutcomeUnknownError` carrying its ``requestid`` for a later, safe retry;
* reports every read (CorePlus, metered monthly by Intuit) to ``on_read(realm_id)``.

Queries page until exhausted (STARTPOSITION advanced by the rows returned, stop on a short or
empty page), CDC splits its window when a response hits QBO's 1000-object cap, and batches are
cut into 30-item calls matched back by ``bId``.

Tokens and ``Authorization`` headers are never logged; errors are logged with ``intuit_tid``.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import orjson
import requests
from requests.adapters import HTTPAdapter

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.environments import Environment
from qb_pipelines.qbo.errors import (
    AuthenticationError,
    CDCLookbackError,
    OutcomeUnknownError,
    QBOError,
    ThrottledError,
    TransientServerError,
    error_from_fault,
    error_from_response,
)
from qb_pipelines.qbo.ratelimit import RateLimiter, limiter_for

__all__ = [
    "BATCH_SIZE",
    "CDC_LOOKBACK",
    "CDC_MAX_OBJECTS",
    "MINORVERSION",
    "CDCLookbackError",
    "ClientStats",
    "MemoryTokenSource",
    "QBOClient",
    "TokenSource",
]

log = logging.getLogger(__name__)


def _json(response: requests.Response) -> Any:
    """Decode a JSON body with orjson: a 1000-invoice page is ~1.6 MB, and the standard json
    module was about a third of the landing CPU."""
    return orjson.loads(response.content)

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


class TokenSource(Protocol):
    """Where the client gets access tokens for its company.

    Implementations know the token's expiry and refresh it ahead of time in
    :meth:`access_token`; :meth:`refresh` is for the 401 the client saw anyway.
    """

    def access_token(self) -> str:
        """A currently valid access token (refreshed first if it is about to lapse)."""
        ...

    def refresh(self, stale_access_token: str) -> str:
        """A token newer than ``stale_access_token``: refresh unless someone already did.

        Must be single-flight (threads and processes): the rotated refresh token is stored
        before the new access token is returned.
        """
        ...


@dataclass
class ClientStats:
    """What a client did, for run metadata and logs. Thread-safe increments via :meth:`add`."""

    api_calls: int = 0
    reads: int = 0
    writes: int = 0
    retries: int = 0
    pages: int = 0
    throttled: int = 0
    refreshes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return {k: getattr(self, k) for k in
                    ("api_calls", "reads", "writes", "retries", "pages", "throttled", "refreshes")}


class MemoryTokenSource:
    """A :class:`TokenSource` held in memory (scripts, the CLI, tests): single-flight across threads.

    The connections store has its own, which also serialises refreshes across processes; use
    that one for tenants. ``on_rotate`` is called with every new :class:`TokenSet` *before* the
    new access token is handed out, so a caller can persist the rotated refresh token.

    Args:
        oauth: The app's :class:`~qb_pipelines.qbo.oauth.IntuitOAuth` (anything with ``refresh``).
        tokens: The current tokens.
        on_rotate: Called with the new tokens after each refresh.
        refresh_margin: Refresh proactively when the access token lapses within this time.
    """

    def __init__(self, oauth: Any, tokens: Any, *, on_rotate: Callable[[Any], None] | None = None,
                 refresh_margin: timedelta = timedelta(minutes=5)) -> None:
        self._oauth = oauth
        self._tokens = tokens
        self._on_rotate = on_rotate
        self._margin = refresh_margin
        self._lock = threading.Lock()
        self.refresh_count = 0

    @property
    def tokens(self) -> Any:
        return self._tokens

    def access_token(self) -> str:
        with self._lock:
            if self._tokens.access_expires_at - datetime.now(UTC) <= self._margin:
                self._refresh_locked()
            return self._tokens.access_token

    def refresh(self, stale_access_token: str) -> str:
        with self._lock:
            if self._tokens.access_token == stale_access_token:
                self._refresh_locked()
            return self._tokens.access_token

    def _refresh_locked(self) -> None:
        new = self._oauth.refresh(self._tokens.refresh_token)
        if self._on_rotate is not None:
            self._on_rotate(new)
        self._tokens = new
        self.refresh_count += 1


def _entity_name(entity: str) -> str:
    """QBO's spelling of an entity name (``invoice`` -> ``Invoice``); unknown names pass through."""
    found = registry.find(entity)
    return found.name if found is not None else entity


def _unwrap(body: dict[str, Any], entity: str) -> dict[str, Any]:
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


def _rows(query_response: dict[str, Any], entity: str) -> list[dict[str, Any]]:
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


def _identity(entity: str, obj: dict[str, Any]) -> str:
    """The key an object is known by (its Id; a wrapped template's; an exchange rate's key)."""
    found = registry.find(entity)
    return str(found.identity(obj) if found is not None else obj.get("Id"))


def _quote(value: str) -> str:
    """A value quoted for the query language (apostrophes escaped with a backslash)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _lut(obj: dict[str, Any]) -> datetime | None:
    return _parse_time((obj.get("MetaData") or {}).get("LastUpdatedTime"))


class QBOClient:
    """One QuickBooks company's Accounting API.

    Args:
        realm_id: The company (realmId).
        tokens: Gives access tokens and refreshes them (see :class:`TokenSource`).
        environment: Production, sandbox or emulator.
        minorversion: Sent on every call; 75 is the oldest QBO still serves.
        session: A ``requests.Session`` to use (one with a pool of 32 connections by default).
        rate_limiter: The company's limiter; the process-wide one of ``realm_id`` by default.
        max_retries: Retries after the first attempt for 429, 5xx, timeouts and drops.
        backoff_base_s: First retry's upper bound of the jittered delay.
        backoff_cap_s: Largest upper bound of the jittered delay.
        timeout_s: Seconds to wait for a response (QBO gives up on a request after 120 s).
        on_read: Called with ``realm_id`` for every read QBO executed (CorePlus metering).
        sleep: How to wait between retries (injectable so tests can record the delays).
    """

    def __init__(
        self,
        realm_id: str,
        tokens: TokenSource,
        environment: Environment,
        *,
        minorversion: str = MINORVERSION,
        session: requests.Session | None = None,
        rate_limiter: RateLimiter | None = None,
        max_retries: int = 5,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 60.0,
        timeout_s: float = 30.0,
        on_read: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.realm_id = str(realm_id)
        self.tokens = tokens
        self.environment = environment
        self.minorversion = str(minorversion)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32)
            session.mount("https://", adapter)
            session.mount("http://", adapter)
        self.session = session
        self.rate_limiter = rate_limiter or limiter_for(self.realm_id)
        self.max_retries = max_retries
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.timeout_s = timeout_s
        self.on_read = on_read
        self._sleep = sleep
        self.stats = ClientStats()
        self.base_url = f"{environment.api_base.rstrip('/')}/v3/company/{self.realm_id}"

    def __repr__(self) -> str:
        return f"QBOClient(realm_id={self.realm_id!r}, environment={self.environment.name!r})"

    # ------------------------------------------------------------------------------ transport
    def backoff_delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1`` (full jitter; at least ``retry_after``)."""
        delay = random.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2**attempt))
        if retry_after is not None:
            delay = max(delay, retry_after)
        return delay

    def _request(
        self,
        method: str,
        path: str,
        *,
        kind: str,
        params: dict[str, Any] | None = None,
        json: Any = None,
        data: str | bytes | None = None,
        content_type: str | None = None,
        accept: str = "application/json",
        requestid: str | None = None,
        reads: int = 0,
        writes: int = 0,
    ) -> requests.Response:
        """Send one logical call with limits, retries, refresh-on-401 and typed errors.

        Args:
            kind: ``read``, ``write`` or ``batch`` (the limiter's and the metering's class).
            requestid: Idempotency key of a write; the same on every attempt.
            reads: Metered reads a batch call stands for (its query items); a ``read`` call is one.
            writes: Writes a batch call carries (its other items).
        """
        url = f"{self.base_url}/{path}"
        query = {"minorversion": self.minorversion, **(params or {})}
        if requestid:
            query["requestid"] = requestid
        if kind == "read":
            reads = 1
        elif kind == "write":
            writes = 1
        is_write = writes > 0
        refreshed = False
        unknown_outcome = False
        attempt = 0
        while True:
            token = self.tokens.access_token()
            headers = {"Authorization": f"Bearer {token}", "Accept": accept}
            if content_type:
                headers["Content-Type"] = content_type
            error: QBOError
            retry_after: float | None = None
            try:
                with self.rate_limiter.acquire(kind):
                    self.stats.add(api_calls=1)
                    resp = self.session.request(
                        method, url, params=query, headers=headers, json=json, data=data, timeout=self.timeout_s
                    )
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                # The request may have reached QBO (and a write may have committed) before the
                # connection broke: only a retry with the same requestid is safe.
                unknown_outcome = is_write
                error = TransientServerError(
                    f"no complete answer from QuickBooks ({type(exc).__name__})",
                    detail=str(exc)[:300],
                )
                log.warning("%s %s: %s (attempt %d)", method, path, type(exc).__name__, attempt + 1)
            else:
                if resp.status_code < 400:
                    self._count(reads, writes)
                    return resp
                error = error_from_response(resp)
                if resp.status_code not in (401, 403, 429) and resp.status_code < 500:
                    self._count(reads, writes)  # QBO executed (and meters) a request it refused as invalid
                log.warning(
                    "%s %s failed: HTTP %s code %s (intuit_tid %s)",
                    method, path, resp.status_code, error.code, error.intuit_tid,
                )
                if isinstance(error, AuthenticationError):
                    if refreshed:
                        raise error
                    refreshed = True
                    self.tokens.refresh(token)
                    self.stats.add(refreshes=1)
                    log.info("access token refreshed after a 401 for realm %s", self.realm_id)
                    continue
                if isinstance(error, ThrottledError):
                    self.stats.add(throttled=1)
                    retry_after = error.retry_after if error.retry_after is not None else THROTTLE_DEFAULT_WAIT_S
                    if retry_after > MAX_RETRY_AFTER_S:
                        error.hint = (
                            f"QuickBooks asks to wait {retry_after:.0f} s, longer than a retry here waits: the app "
                            "may have reached its monthly read cap; retry after that time"
                        )
                        raise error
                elif isinstance(error, TransientServerError):
                    # a 5xx may come after the write committed (QBO does not say): same as no answer
                    unknown_outcome = unknown_outcome or is_write
                else:
                    raise error
            if attempt >= self.max_retries:
                if unknown_outcome and requestid and is_write:
                    raise OutcomeUnknownError(
                        f"{method} {path}: no definite answer after {attempt + 1} attempts; the write may have "
                        "been applied",
                        requestid=requestid,
                        status=error.status,
                        code=error.code,
                        detail=error.detail,
                        intuit_tid=error.intuit_tid,
                    ) from error
                raise error
            delay = self.backoff_delay(attempt, retry_after)
            attempt += 1
            self.stats.add(retries=1)
            self._sleep(delay)

    def _count(self, reads: int, writes: int) -> None:
        """Count a call QBO executed: reads are metered by Intuit (CorePlus), so report each one."""
        if reads:
            self.stats.add(reads=1)
            if self.on_read is not None:
                for _ in range(reads):
                    self.on_read(self.realm_id)
        if writes:
            self.stats.add(writes=1)

    def _get_json(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return _json(self._request("GET", path, kind="read", params=params))

    def _write(self, entity: str, body: dict[str, Any], *, params: dict[str, Any] | None = None,
               requestid: str | None = None) -> dict[str, Any]:
        name = _entity_name(entity)
        resp = self._request(
            "POST", name.lower(), kind="write", params=params, json=body, content_type="application/json",
            requestid=requestid or uuid.uuid4().hex,
        )
        return _unwrap(_json(resp), name)

    # ------------------------------------------------------------------------------ entities
    def read(self, entity: str, id: str) -> dict[str, Any]:
        """One object by Id (inactive ones too). Raises :class:`NotFoundError` (610) when absent."""
        name = _entity_name(entity)
        return _unwrap(self._get_json(f"{name.lower()}/{id}"), name)

    def create(self, entity: str, body: dict[str, Any], *, requestid: str | None = None) -> dict[str, Any]:
        """Create an object; returns it as QBO stored it (Id, SyncToken "0", computed fields).

        Args:
            requestid: Idempotency key; pass the same one to retry a write whose outcome is unknown.
        """
        return self._write(entity, body, requestid=requestid)

    def update(self, entity: str, body: dict[str, Any], *, sparse: bool = True,
               requestid: str | None = None) -> dict[str, Any]:
        """Update an object (``body`` has ``Id`` and the current ``SyncToken``).

        Sparse by default: only the fields in ``body`` change. A full update (``sparse=False``)
        clears every writable field left out. Raises :class:`StaleObjectError` (5010) when the
        SyncToken is not current.
        """
        return self._write(entity, {**body, "sparse": sparse}, requestid=requestid)

    def delete(self, entity: str, id: str, sync_token: str, *, requestid: str | None = None) -> dict[str, Any]:
        """Delete a transaction; returns ``{"status": "Deleted", "Id": ...}``. Name lists are inactivated instead."""
        return self._write(entity, {"Id": str(id), "SyncToken": str(sync_token)}, params={"operation": "delete"},
                           requestid=requestid)

    def void(self, entity: str, id: str, sync_token: str, *, requestid: str | None = None) -> dict[str, Any]:
        """Void a transaction: it stays, amounts zeroed, PrivateNote "Voided".

        Raises:
            ValueError: the entity cannot be voided.
        """
        ent = registry.find(entity)
        if ent is None or ent.void is registry.Void.NONE:
            raise ValueError(f"{entity} cannot be voided in QuickBooks; delete it or credit it instead")
        body = {"Id": str(id), "SyncToken": str(sync_token)}
        if ent.void is registry.Void.OPERATION:
            return self._write(ent.name, body, params={"operation": "void"}, requestid=requestid)
        return self._write(ent.name, {**body, "sparse": True}, params={"operation": "update", "include": "void"},
                           requestid=requestid)

    def company_info(self) -> dict[str, Any]:
        """The company's CompanyInfo (name, address, country, fiscal year...)."""
        return _unwrap(self._get_json(f"companyinfo/{self.realm_id}"), "CompanyInfo")

    def preferences(self) -> dict[str, Any]:
        """The company's Preferences (tax, sales forms, currency...)."""
        return _unwrap(self._get_json("preferences"), "Preferences")

    # ------------------------------------------------------------------------------ queries
    def query(self, statement: str) -> dict[str, Any]:
        """Run one query statement; returns its ``QueryResponse`` (one page; ``{}`` when empty).

        Sent as ``POST /query`` with an ``application/text`` body, so long statements fit.
        """
        resp = self._request("POST", "query", kind="read", data=statement.encode("utf-8"),
                             content_type="application/text")
        return _json(resp).get("QueryResponse") or {}

    def query_pages(self, entity: str, where: str | None = None, order_by: str | None = None,
                    page_size: int = MAX_PAGE) -> Iterator[list[dict[str, Any]]]:
        """Every row of ``SELECT * FROM entity [WHERE] [ORDERBY]``, page by page, until exhausted.

        STARTPOSITION advances by the rows each page returned and paging stops on an empty or
        short page, so nothing is cut at QBO's default of 100 or its maximum of 1000. Name
        lists return active rows only unless ``where`` says ``Active IN (true, false)``.

        Args:
            entity: Entity name (any case).
            where: Conditions after ``WHERE`` (e.g. ``"MetaData.LastUpdatedTime >= '2025-01-01'"``).
            order_by: Sort after ``ORDERBY`` (QBO's default is ascending Id).
            page_size: MAXRESULTS, 1..1000.
        """
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE}")
        name = _entity_name(entity)
        base = f"SELECT * FROM {name}"
        if where:
            base += f" WHERE {where}"
        if order_by:
            base += f" ORDERBY {order_by}"
        start = 1
        while True:
            page = _rows(self.query(f"{base} STARTPOSITION {start} MAXRESULTS {page_size}"), name)
            self.stats.add(pages=1)
            if not page:
                return
            yield page
            if len(page) < page_size:
                return
            start += len(page)

    def query_all(self, entity: str, where: str | None = None, order_by: str | None = None,
                  page_size: int = MAX_PAGE) -> Iterator[dict[str, Any]]:
        """Every row, one at a time (see :meth:`query_pages`)."""
        for page in self.query_pages(entity, where=where, order_by=order_by, page_size=page_size):
            yield from page

    def count(self, entity: str, where: str | None = None) -> int:
        """``SELECT COUNT(*)``: how many rows match (active only for name lists, as QBO counts)."""
        statement = f"SELECT COUNT(*) FROM {_entity_name(entity)}" + (f" WHERE {where}" if where else "")
        return int(self.query(statement).get("totalCount", 0))

    # ------------------------------------------------------------------------------ CDC
    def cdc(self, entities: Sequence[str], changed_since: datetime) -> dict[str, list[dict[str, Any]]]:
        """Every object of ``entities`` changed since ``changed_since``, deletions as tombstones.

        QBO caps a CDC response at 1000 objects. When a response hits the cap, the call is split:
        first one call per entity, then, for an entity that still hits it, the window is cut at
        the newest change received and the rest fetched from there (QBO returns the oldest
        changes first), until a response comes back under the cap. Objects seen twice keep
        their newest state. If a capped response cannot be split that way (over 1000 changes in
        the same second, or not in time order), the live objects of the window are read with a
        paged query instead.

        Args:
            entities: Entity names (any case).
            changed_since: Start of the window; a naive datetime is taken as UTC.

        Returns:
            Entity name -> changed objects (full payloads, or ``{"Id", "status": "Deleted", ...}``).

        Raises:
            CDCLookbackError: ``changed_since`` is more than 30 days ago (checked before calling,
                and mapped from QBO's fault if QBO's clock disagrees with ours).
        """
        since = changed_since if changed_since.tzinfo else changed_since.replace(tzinfo=UTC)
        if datetime.now(UTC) - since > CDC_LOOKBACK:
            raise CDCLookbackError(
                f"CDC cannot look back to {since.isoformat()}: QuickBooks keeps 30 days of changes",
                code="4001",
                detail=f"changedSince {since.isoformat()} is older than 30 days",
            )
        names = list(dict.fromkeys(_entity_name(e) for e in entities))
        if not names:
            return {}
        blocks, capped = self._cdc_call(names, since)
        if not capped:
            return {name: blocks.get(name, []) for name in names}
        if len(names) == 1:
            return {names[0]: self._cdc_entity(names[0], since, blocks.get(names[0], []))}
        log.info("CDC response for %s hit the %d cap: one call per entity", ",".join(names), CDC_MAX_OBJECTS)
        return {name: self._cdc_entity(name, since, None) for name in names}

    def _cdc_call(self, names: list[str], since: datetime) -> tuple[dict[str, list[dict[str, Any]]], bool]:
        # whole seconds: QBO's timestamps have none finer, and rounding down only widens the window
        body = self._get_json("cdc", {"entities": ",".join(names),
                                      "changedSince": since.replace(microsecond=0).isoformat()})
        out: dict[str, list[dict[str, Any]]] = {}
        total = 0
        capped = False
        for envelope in body.get("CDCResponse") or []:
            for block in envelope.get("QueryResponse") or []:
                for key, value in block.items():
                    if isinstance(value, list):
                        name = _entity_name(key)
                        out.setdefault(name, []).extend(value)
                        total += len(value)
                        if int(block.get("totalCount", len(value))) > len(value):
                            capped = True
        return out, capped or total >= CDC_MAX_OBJECTS

    def _cdc_entity(self, name: str, since: datetime, first: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
        """All changes of one entity since ``since``, splitting the window while responses are capped."""
        merged: dict[str, dict[str, Any]] = {}
        cursor = since
        objects = first
        capped = True
        if objects is None:
            blocks, capped = self._cdc_call([name], cursor)
            objects = blocks.get(name, [])
        while True:
            for obj in objects:
                merged[_identity(name, obj)] = obj
            if not capped:
                return list(merged.values())
            times = [_lut(o) for o in objects]
            ordered = all(t is not None for t in times) and all(
                a <= b for a, b in itertools.pairwise(times))  # type: ignore[operator]
            newest = max((t for t in times if t is not None), default=None)
            if not ordered or newest is None or newest <= cursor:
                log.warning("CDC for %s capped and not splittable by time: reading the window with a query", name)
                where = f"MetaData.LastUpdatedTime >= {_quote(cursor.replace(microsecond=0).isoformat())}"
                ent = registry.find(name)
                if ent is not None and ent.has_active:
                    where += " AND Active IN (true, false)"
                for obj in self.query_all(name, where=where):
                    merged[_identity(name, obj)] = obj
                return list(merged.values())
            # the window [cursor, newest) is complete; fetch [newest, now) next (inclusive: ties)
            cursor = newest
            log.info("CDC for %s hit the %d cap: next window from %s", name, CDC_MAX_OBJECTS, cursor.isoformat())
            blocks, capped = self._cdc_call([name], cursor)
            objects = blocks.get(name, [])

    # ------------------------------------------------------------------------------ batch
    def batch(self, items: list[dict[str, Any]], *, requestid: str | None = None) -> list[dict[str, Any] | QBOError]:
        """Run operations in batch calls of 30; results in the order of ``items``.

        Each item is a QBO batch item (``{"operation": "create", "Customer": {...}}`` or
        ``{"Query": "SELECT ..."}``); a ``bId`` is assigned when absent. Each result is the
        item's response (``{"bId", "Customer": {...}}`` / ``{"bId", "QueryResponse": {...}}``)
        or, when that item failed, a :class:`QBOError` (QBO answers HTTP 200 with per-item
        faults; items are independent and one failure rolls nothing back).

        Exactly once: QBO replays the first response of a ``requestid`` it has seen for the
        company instead of running the call again. Pass a ``requestid`` derived from what the
        batch carries (a push derives it from its outbox rows), and the same batch sent again
        after a crash, a timeout or an :class:`OutcomeUnknownError` returns the first answer and
        writes nothing twice. Without one, each call gets a fresh id (retries of that call
        within this method still reuse it). A batch of more than 30 items is sent as several
        calls; chunk ``n`` then uses an id derived from ``requestid`` and ``n``.

        Args:
            items: the operations, at most 30 per call.
            requestid: the caller's idempotency key, at most 36 characters, with bIds of at
                most 10 characters (QBO's batch limits, reference §1.6).

        Raises:
            ValueError: duplicate bIds, or a requestid / bId longer than QBO accepts.
            OutcomeUnknownError: no definite answer after the retries; send the same batch with
                the same ``requestid`` again to learn the outcome.
        """
        if requestid is not None and not 0 < len(requestid) <= BATCH_REQUESTID_MAX:
            raise ValueError(f"a batch requestid has 1 to {BATCH_REQUESTID_MAX} characters, not {len(requestid)}")
        chunked = len(items) > BATCH_SIZE
        results: list[dict[str, Any] | QBOError] = []
        for start in range(0, len(items), BATCH_SIZE):
            chunk = []
            for offset, item in enumerate(items[start:start + BATCH_SIZE]):
                copy = dict(item)
                copy.setdefault("bId", f"b{start + offset}")
                chunk.append(copy)
            bids = [str(c["bId"]) for c in chunk]
            if len(set(bids)) != len(bids):
                raise ValueError("batch items need distinct bIds")
            if requestid is not None and any(len(b) > BATCH_BID_MAX for b in bids):
                raise ValueError(f"with a requestid, QBO accepts bIds of at most {BATCH_BID_MAX} characters")
            if requestid is None:
                chunk_id = uuid.uuid4().hex
            elif chunked:
                chunk_id = hashlib.sha256(f"{requestid}:{start // BATCH_SIZE}".encode()).hexdigest()[:32]
            else:
                chunk_id = requestid
            queries = sum(1 for c in chunk if "Query" in c)
            resp = self._request(
                "POST", "batch", kind="batch", json={"BatchItemRequest": chunk}, content_type="application/json",
                requestid=chunk_id, reads=queries, writes=len(chunk) - queries,
            )
            tid = resp.headers.get("intuit_tid")
            by_bid = {str(r.get("bId")): r for r in _json(resp).get("BatchItemResponse") or []}
            for bid in bids:
                answer = by_bid.get(bid)
                if answer is None:
                    results.append(QBOError(f"QuickBooks returned no result for batch item {bid}", intuit_tid=tid,
                                            hint="read the object to see whether the operation was applied"))
                elif isinstance(answer.get("Fault"), dict):
                    results.append(error_from_fault(answer["Fault"], intuit_tid=tid))
                else:
                    results.append(answer)
        return results

    # ------------------------------------------------------------------------------ reports, PDF
    def report(self, name: str, **params: Any) -> dict[str, Any]:
        """A report (``ProfitAndLoss``, ``BalanceSheet``...) as QBO returns it (Header, Columns, Rows).

        Keyword arguments are QBO's report parameters (``start_date``, ``end_date``,
        ``accounting_method``, ``summarize_column_by``...); dates may be ``date`` objects.
        """
        query = {k: v.isoformat() if isinstance(v, date) else str(v) for k, v in params.items() if v is not None}
        return self._get_json(f"reports/{name}", query)

    def pdf(self, entity: str, id: str) -> bytes:
        """The PDF QBO renders for a sales document (invoice, estimate, sales receipt...)."""
        name = _entity_name(entity)
        return self._request("GET", f"{name.lower()}/{id}/pdf", kind="read", accept="application/pdf").content
