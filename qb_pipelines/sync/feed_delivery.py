"""Signed callbacks: the change feed POSTed to the app's own URL, in order, never skipping an entry.

A tenant may ask for its feed to be pushed rather than polled (``qb-pipelines feed callback
TENANT --url URL``). :func:`deliver` sends the entries past the callback's cursor, oldest first,
``batch`` at a time, as one JSON body::

    {"tenant": "acme", "changes": [{"seq": 41, ...}, {"seq": 42, ...}], "next": 42}

with these headers:

=====================  =========================================================================
``X-QBP-Signature``    ``sha256=<hex>``: HMAC-SHA256 of the raw body with the tenant's callback
                       secret. The app recomputes it over the bytes it received (before parsing)
                       and compares in constant time (:func:`verify` does exactly that).
``X-QBP-Delivery``     ``<first seq>-<last seq>`` of the batch: the same range is sent again until
                       the app answers 2xx, so it is also the app's idempotency key.
``X-QBP-Timestamp``    when this attempt was made (Unix seconds).
=====================  =========================================================================

A 2xx moves the cursor to the batch's last ``seq`` and the next batch goes at once (an app that
was away catches up in one call, up to ``max_batches`` batches). Anything else -- another status,
a timeout (:data:`TIMEOUT_S`), a refused connection, a redirect to another host -- keeps the
cursor where it was and schedules the next attempt with exponential backoff and jitter
(:func:`backoff`, capped at an hour): the same entries, in the same order, are sent again later,
never a later batch first. Redirects are followed only to the same scheme, host and port, and
only 307/308 (which keep the POST and its body); anything else is reported as a failure saying to
set the final URL. Stored errors never contain the secret, URL credentials or query values.

Delivery runs beside landing, never inside it: a slow or failing app only delays its own
callback. Each attempt claims the callback for a short lease in the store
(:meth:`~qb_pipelines.store.feed.FeedStore.claim_callback`), so two deliverers (sensor ticks in
parallel, the CLI beside Dagster) never post the same entries at once, and a deliverer that dies
mid-way frees it when the lease ends. :func:`deliver_due` serves every tenant whose callback is
due (what a Dagster sensor calls; ``qb-pipelines feed deliver`` calls it too).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import random
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import requests

from qb_pipelines.store.models import utcnow

log = logging.getLogger(__name__)

__all__ = [
    "DELIVERY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "DeliveryResult",
    "backoff",
    "deliver",
    "deliver_due",
    "sign",
    "verify",
]

SIGNATURE_HEADER = "X-QBP-Signature"
DELIVERY_HEADER = "X-QBP-Delivery"
TIMESTAMP_HEADER = "X-QBP-Timestamp"
#: Longest wait for the app's answer (connecting, then reading), per attempt.
TIMEOUT_S = 10.0
#: How long one attempt holds the callback (longer than a timed-out attempt).
LEASE = timedelta(seconds=60)
#: First retry delay; doubles per failed attempt, up to :data:`BACKOFF_CAP_S`.
BACKOFF_BASE_S = 10.0
BACKOFF_CAP_S = 3600.0
#: Same-origin 307/308 redirects followed per attempt.
MAX_REDIRECTS = 3
#: Batches one :func:`deliver` call sends at most (the rest goes at the next call).
MAX_BATCHES = 50
#: How much of the app's answer is kept in the error.
_SNIPPET = 200


def sign(body: bytes, secret: str) -> str:
    """The ``X-QBP-Signature`` value of ``body``: ``sha256=`` and the hex HMAC-SHA256 with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(body: bytes, header: str | None, secret: str) -> bool:
    """Whether ``header`` is the signature of the raw ``body`` with ``secret`` (constant-time compare)."""
    if not header:
        return False
    return hmac.compare_digest(sign(body, secret).encode(), header.strip().encode())


def backoff(attempts: int, rng: random.Random | None = None) -> timedelta:
    """The wait before the next attempt after ``attempts`` failures in a row.

    ``BACKOFF_BASE_S * 2**(attempts-1)`` capped at :data:`BACKOFF_CAP_S`, then a random point in
    its upper half (jitter: apps that failed together do not all come back at the same second).
    """
    rng = rng or random.Random()
    delay = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** max(0, attempts - 1))
    return timedelta(seconds=delay * (0.5 + rng.random() / 2))


@dataclass
class DeliveryResult:
    """What one :func:`deliver` call did for one tenant.

    Attributes:
        tenant_key: whose callback.
        delivered: entries the app acknowledged (2xx) in this call.
        posts: HTTP attempts made.
        cursor: the callback's cursor afterwards (the last ``seq`` the app acknowledged).
        error: why the last attempt failed (redacted), ``None`` when it did not.
        next_attempt_at: when the failed batch is tried again.
        skipped: why nothing was sent (no callback, switched off, not due, nothing new, busy).
    """

    tenant_key: str
    delivered: int = 0
    posts: int = 0
    cursor: int = 0
    error: str | None = None
    next_attempt_at: datetime | None = None
    skipped: str | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None

    def as_dict(self) -> dict[str, Any]:
        return {"tenant": self.tenant_key, "delivered": self.delivered, "posts": self.posts, "cursor": self.cursor,
                "error": self.error, "next_attempt_at": self.next_attempt_at.isoformat() if self.next_attempt_at
                else None, "skipped": self.skipped}


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def _shown(url: str) -> str:
    """The URL as errors and logs show it: no credentials, no query (either may hold a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://)[^/\s@]+@", re.IGNORECASE)
_QUERY_VALUE = re.compile(r"([?&][^=&\s#]+=)[^&\s#]+")


def redact(text: str, secret: str | None, url: str | None = None) -> str:
    """``text`` without the secret, URL credentials or query values (what may be stored and shown).

    The callback URL's own password and query values are removed wherever they appear (an app's
    error page may echo them), and any URL's credentials and query values too.
    """
    hidden = [secret] if secret else []
    if url:
        parts = urlsplit(url)
        hidden += [parts.password or "", parts.username or ""]
        hidden += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    for value in sorted((v for v in hidden if len(v) >= 4), key=len, reverse=True):
        text = text.replace(value, "[redacted]")
    text = _USERINFO.sub(r"\1[redacted]@", text)
    return _QUERY_VALUE.sub(r"\1[redacted]", text)


class _Failed(Exception):
    """One attempt failed; the message says why (before redaction)."""


def _post(http: requests.Session, url: str, body: bytes, headers: dict[str, str]) -> requests.Response:
    target = url
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            resp = http.post(target, data=body, headers=headers, timeout=TIMEOUT_S, allow_redirects=False)
        except requests.Timeout:
            raise _Failed(f"no answer from {_shown(target)} within {TIMEOUT_S:.0f} s") from None
        except requests.RequestException as exc:
            raise _Failed(f"could not reach {_shown(target)}: {type(exc).__name__}") from None
        if not resp.is_redirect:
            return resp
        location = urljoin(target, resp.headers.get("location", ""))
        if resp.status_code not in (307, 308):
            raise _Failed(f"{_shown(target)} answered {resp.status_code} (a redirect that would drop the POST body): "
                          "set the callback URL to the final address")
        if _origin(location) != _origin(url):
            raise _Failed(f"{_shown(target)} redirected to another host ({_shown(location)}): not followed; "
                          "set the callback URL to the final address")
        target = location
    raise _Failed(f"more than {MAX_REDIRECTS} redirects from {_shown(url)}")


def _body(tenant_key: str, changes: list[Any], cursor: int) -> bytes:
    payload = {"tenant": tenant_key, "changes": [c.as_json() for c in changes], "next": cursor}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def deliver(runtime: Any, tenant_key: str, *, now: datetime | None = None, batch: int = 100,
            max_batches: int = MAX_BATCHES, http: requests.Session | None = None) -> DeliveryResult:
    """POST the tenant's new feed entries to its callback, in order, until caught up or an attempt fails.

    Args:
        runtime: the integration's runtime (its ``feed`` store).
        tenant_key: the tenant.
        now: the time of this delivery (tests); the wall clock by default.
        batch: entries per POST (1 to 1000).
        max_batches: POSTs this call sends at most.
        http: the HTTP session to use (a new one by default).

    Returns:
        What was delivered; ``error`` and ``next_attempt_at`` when an attempt failed.
    """
    now = now or utcnow()
    batch = max(1, min(int(batch), 1000))
    result = DeliveryResult(tenant_key)
    callback = runtime.feed.callback(tenant_key)
    if callback is None or not callback.enabled:
        result.skipped = "no callback" if callback is None else "callback switched off"
        return result
    result.cursor = callback.cursor
    secret = runtime.feed.callback_secret(tenant_key)
    own = http is None
    session = http or requests.Session()
    try:
        for sent in range(max_batches):
            claimed = runtime.feed.claim_callback(tenant_key, now, LEASE)
            if claimed is None:
                if sent == 0:
                    result.skipped = _why_not(runtime, tenant_key, now)
                break
            changes, last = runtime.feed.read(tenant_key, claimed.cursor, batch)
            if not changes:  # cannot happen (the claim needs new entries); end the lease anyway
                runtime.feed.delivered(tenant_key, claimed.cursor)
                break
            body = _body(tenant_key, changes, last)
            headers = {"Content-Type": "application/json", "User-Agent": "qb-pipelines-feed/1",
                       SIGNATURE_HEADER: sign(body, secret), DELIVERY_HEADER: f"{changes[0].seq}-{last}",
                       TIMESTAMP_HEADER: str(int(now.timestamp()))}
            result.posts += 1
            try:
                resp = _post(session, claimed.url, body, headers)
                if not 200 <= resp.status_code < 300:
                    snippet = " ".join((resp.text or "")[:_SNIPPET].split())
                    raise _Failed(f"{_shown(claimed.url)} answered HTTP {resp.status_code}"
                                  + (f": {snippet}" if snippet else ""))
            except _Failed as exc:
                result.error = redact(str(exc), secret, claimed.url)
                result.next_attempt_at = now + backoff(claimed.attempts + 1)
                runtime.feed.delivery_failed(tenant_key, result.error, result.next_attempt_at)
                log.warning("feed callback of %s: entries %s not delivered (%s); next attempt at %s", tenant_key,
                            headers[DELIVERY_HEADER], result.error, result.next_attempt_at.isoformat())
                break
            runtime.feed.delivered(tenant_key, last)
            result.delivered += len(changes)
            result.cursor = last
    finally:
        if own:
            session.close()
    return result


def _why_not(runtime: Any, tenant_key: str, now: datetime) -> str:
    callback = runtime.feed.callback(tenant_key)
    if callback is None or not callback.enabled:
        return "callback switched off"
    if runtime.feed.latest_seq(tenant_key) <= callback.cursor:
        return "nothing new"
    if callback.next_attempt_at is not None and callback.next_attempt_at > now:
        return "not due (retrying later)" if callback.attempts else "busy (another delivery holds it)"
    return "busy (another delivery holds it)"


def deliver_due(runtime: Any, *, now: datetime | None = None, batch: int = 100) -> list[DeliveryResult]:
    """Deliver every tenant's callback that is due (entries past its cursor, retry time come).

    One tenant's failure never stops the others. What a Dagster sensor (or ``qb-pipelines feed
    deliver``) calls.
    """
    now = now or utcnow()
    results = []
    for callback in runtime.feed.due_callbacks(now):
        try:
            results.append(deliver(runtime, callback.tenant_key, now=now, batch=batch))
        except Exception as exc:  # a broken tenant (a store error, a lost key) must not stop the rest
            log.exception("feed callback of %s: delivery failed", callback.tenant_key)
            results.append(DeliveryResult(callback.tenant_key, error=f"{type(exc).__name__}: delivery failed"))
    return results
