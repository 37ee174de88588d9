"""The client's transport: one HTTP call QBO's way (auth, rate limit slot, retries, typed errors).

:class:`Transport` holds the company, its token source, session and limiter, and
``_request`` does every call: bearer header and minorversion, a slot from the company's
limiter, backoff with full jitter on 429/5xx/timeouts/drops, one token refresh on 401, typed
errors, counting in :class:`ClientStats`. May touch: the HTTP session, the token source, the
rate limiter and the ``on_read`` hook; nothing about entities beyond their names.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from qb_pipelines.qbo.client.common import (
    MAX_RETRY_AFTER_S,
    MINORVERSION,
    THROTTLE_DEFAULT_WAIT_S,
    decode_json,
    entity_name,
    unwrap,
)
from qb_pipelines.qbo.client.tokens import TokenSource
from qb_pipelines.qbo.environments import Environment
from qb_pipelines.qbo.errors import (
    AuthenticationError,
    OutcomeUnknownError,
    QBOError,
    ThrottledError,
    TransientServerError,
    error_from_response,
)
from qb_pipelines.qbo.ratelimit import RateLimiter, limiter_for

log = logging.getLogger(__name__)


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


class Transport:
    """The HTTP side of :class:`~qb_pipelines.qbo.client.QBOClient` (see its doc for the arguments)."""

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
        return decode_json(self._request("GET", path, kind="read", params=params))

    def _write(self, entity: str, body: dict[str, Any], *, params: dict[str, Any] | None = None,
               requestid: str | None = None) -> dict[str, Any]:
        name = entity_name(entity)
        resp = self._request(
            "POST", name.lower(), kind="write", params=params, json=body, content_type="application/json",
            requestid=requestid or uuid.uuid4().hex,
        )
        return unwrap(decode_json(resp), name)
