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

The rooms: :mod:`.transport` (one HTTP call QBO's way), :mod:`.reading` (objects, queries,
reports, PDFs), :mod:`.cdc`, :mod:`.batch`, :mod:`.tokens` (token sources), :mod:`.common`
(constants, answer shapes). :class:`QBOClient` puts them together.
"""

from __future__ import annotations

from qb_pipelines.qbo.client.batch import Batching
from qb_pipelines.qbo.client.cdc import ChangeData
from qb_pipelines.qbo.client.common import (
    BATCH_BID_MAX,
    BATCH_REQUESTID_MAX,
    BATCH_SIZE,
    CDC_LOOKBACK,
    CDC_MAX_OBJECTS,
    MAX_PAGE,
    MAX_RETRY_AFTER_S,
    MINORVERSION,
    THROTTLE_DEFAULT_WAIT_S,
)
from qb_pipelines.qbo.client.reading import Reading
from qb_pipelines.qbo.client.tokens import MemoryTokenSource, TokenSource
from qb_pipelines.qbo.client.transport import ClientStats
from qb_pipelines.qbo.errors import CDCLookbackError

__all__ = [
    "BATCH_BID_MAX",
    "BATCH_REQUESTID_MAX",
    "BATCH_SIZE",
    "CDC_LOOKBACK",
    "CDC_MAX_OBJECTS",
    "MAX_PAGE",
    "MAX_RETRY_AFTER_S",
    "MINORVERSION",
    "THROTTLE_DEFAULT_WAIT_S",
    "CDCLookbackError",
    "ClientStats",
    "MemoryTokenSource",
    "QBOClient",
    "TokenSource",
]


class QBOClient(Reading, ChangeData, Batching):
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
