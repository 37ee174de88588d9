"""Typed QuickBooks Online errors, built from either fault envelope and the HTTP status.

QBO answers a failure in one of three shapes (reference §4.6, §4.7, §10.3):

* the service's capitalised envelope ``{"Fault": {"Error": [{"Message", "Detail", "code",
  "element"}], "type": "ValidationFault"}}`` (400, 403, 429, 500; also inside batch items);
* the gateway's lower-case envelope ``{"fault": {"error": [{"message", "detail", "code"}],
  "type": "AUTHENTICATION"}}`` on a 401;
* the OAuth hosts' ``{"error": "invalid_grant", "error_description": "..."}``;

and sometimes no JSON at all (a 503 HTML page from the front end). :func:`error_from_response`
turns any of them into one class per thing a caller does differently, every instance carrying
Intuit's ``intuit_tid`` (what Intuit support asks for) and a ``hint`` saying what to do next.
Classes are chosen by fault code first (the code is the more precise signal: a 401 with code
120 is a lost permission, not an expired token) and then by HTTP status.
"""

from __future__ import annotations

from typing import Any

import requests

from qb_pipelines.qbo.redact import redact


class QBOError(Exception):
    """A failed QuickBooks call.

    Attributes:
        status: HTTP status (``None`` when no response arrived, e.g. a dropped connection).
        code: QBO's fault code (``"610"``, ``"5010"``...) or the OAuth ``error`` value.
        message: QBO's short message.
        detail: QBO's detail text (what exactly was wrong).
        element: The request field the fault is about, when QBO names one (``"Line.DetailType"``).
        intuit_tid: Intuit's transaction id of the response; quote it to Intuit support.
        fault_type: The envelope's ``type`` (``ValidationFault``, ``SystemFault``, ``SERVICE``...).
        hint: What to do next, in words an operator can act on.
        errors: Every error of the fault (QBO may send several at once), as plain dicts.
    """

    default_hint = "check the request and QuickBooks' message; quote intuit_tid to Intuit support if it persists"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str | None = None,
        element: str | None = None,
        intuit_tid: str | None = None,
        fault_type: str | None = None,
        hint: str | None = None,
        errors: list[dict[str, Any]] | None = None,
    ) -> None:
        self.status = status
        self.code = code
        # Whatever the server quoted (a token in a 401's detail...) never goes further than here.
        self.message = redact(message) or ""
        self.detail = redact(detail)
        self.element = element or None
        self.intuit_tid = intuit_tid
        self.fault_type = fault_type
        self.hint = hint or self.default_hint
        self.errors = errors or []
        super().__init__(self._text())

    def __str__(self) -> str:
        # built on demand, so a hint refined after construction shows too
        return self._text()

    def _text(self) -> str:
        parts = []
        if self.code:
            parts.append(f"[{self.code}]")
        parts.append(self.message or "QuickBooks error")
        if self.detail and self.detail != self.message:
            parts.append(f"- {self.detail}")
        if self.element:
            parts.append(f"(field {self.element})")
        if self.status is not None:
            parts.append(f"(HTTP {self.status})")
        if self.intuit_tid:
            parts.append(f"(intuit_tid {self.intuit_tid})")
        return " ".join(parts) + f". Next: {self.hint}."


class AuthenticationError(QBOError):
    """401 / 3200: the access token is expired, revoked or malformed.

    The client refreshes once and retries; this error means QuickBooks refused the fresh token
    too. That is not proof the connection is gone: only a refused *refresh* is
    (:class:`InvalidGrantError`).
    """

    default_hint = "QuickBooks refused a freshly refreshed access token: try again in a minute; reconnect only if it persists"


class AuthorizationError(QBOError):
    """403 / 3100 (keys or environment do not match the company) or 120 (the user lost access)."""

    default_hint = (
        "the app is not allowed into this company: check that the environment (sandbox or production) matches "
        "the app's keys, or reconnect with a user who is an admin of the company"
    )


class ValidationError(QBOError):
    """400: the request was refused as written (2xxx, 4xxx, 6xxx...). Retrying it unchanged fails again."""

    default_hint = "correct the field QuickBooks names (element) and send the change again; a retry as-is fails again"


class StaleObjectError(ValidationError):
    """5010: the SyncToken sent is not the object's current one (someone changed it meanwhile)."""

    default_hint = "re-read the object to get its current SyncToken, re-apply the change and send it again"


class DuplicateNameError(ValidationError):
    """6240: the name is taken (Customer, Vendor and Employee share one namespace)."""

    default_hint = (
        "use another name, or map the record to the existing QuickBooks object with that name "
        "(customers, vendors and employees share one namespace)"
    )


class NotFoundError(ValidationError):
    """610: the object does not exist (deleted, or never existed in this company)."""

    default_hint = "the object was deleted in QuickBooks or belongs to another company: re-read the list or re-map it"


class CDCLookbackError(ValidationError):
    """CDC refused (or would refuse) a ``changedSince`` older than QBO's 30-day look-back."""

    default_hint = (
        "change data capture only looks back 30 days: run a full sync (query every row) and resume CDC "
        "from the time that sync started"
    )


class ThrottledError(QBOError):
    """429 / 3001: over QBO's per-company limits (500/minute, 10 concurrent, batch caps).

    Attributes:
        retry_after: Seconds the server asked to wait (``Retry-After``), when it said.
    """

    default_hint = "wait and retry (60 s unless Retry-After says otherwise); keep under 500 requests/minute per company"

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kwargs)


class TransientServerError(QBOError):
    """5xx, SystemFault 10000, a timeout or a dropped connection: QuickBooks may answer next time."""

    default_hint = "a temporary QuickBooks problem: retry later with backoff; quote intuit_tid to Intuit support if it persists"


class OutcomeUnknownError(TransientServerError):
    """A write got no answer (timeout, dropped connection, 5xx after retries): it may have been applied.

    Attributes:
        requestid: The write's idempotency key; retrying with it can never post twice.
    """

    def __init__(self, message: str, *, requestid: str, **kwargs: Any) -> None:
        self.requestid = requestid
        kwargs.setdefault(
            "hint",
            f"the write may or may not have been applied: retry later with the same requestid {requestid} "
            "(QuickBooks replays it instead of posting twice)",
        )
        super().__init__(message, **kwargs)


class OAuthError(QBOError):
    """An error from Intuit's token, revoke or userinfo endpoints (``invalid_client``...)."""

    default_hint = "check the app's client id, client secret and redirect URI for this environment"


class InvalidGrantError(OAuthError):
    """``invalid_grant``: the refresh token (or code) is expired, revoked or superseded. Not retryable."""

    default_hint = "the QuickBooks connection has expired or was revoked: reconnect from Accounting Integrations"


# ------------------------------------------------------------------------------------------ parsing

_BY_CODE: dict[str, type[QBOError]] = {
    "3200": AuthenticationError,
    "3100": AuthorizationError,
    "120": AuthorizationError,
    "3001": ThrottledError,
    "5010": StaleObjectError,
    "6240": DuplicateNameError,
    "610": NotFoundError,
    "10000": TransientServerError,
}

_LOOKBACK_MARKERS = ("older than fixed days", "older than 30 days")


def _first(d: dict[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in d and d[key] is not None:
            return d[key]
    return None


def _retry_after(headers: Any) -> float | None:
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP-date; Intuit is not known to send one, and the caller falls back to 60 s


def error_class(status: int | None, code: str | None, detail: str | None = None) -> type[QBOError]:
    """The error class for an HTTP status and fault code (code wins when it is known)."""
    if code == "4001" and detail and any(m in detail.lower() for m in _LOOKBACK_MARKERS):
        return CDCLookbackError
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status == 401:
        return AuthenticationError
    if status == 403:
        return AuthorizationError
    if status == 429:
        return ThrottledError
    if status is not None and status >= 500:
        return TransientServerError
    if status is not None and 400 <= status < 500:
        return ValidationError
    if code and code.isdigit():
        # inside HTTP 200 (batch items): QBO's own ranges, 2000-6999 are request problems
        return ValidationError if 2000 <= int(code) < 7000 or code in ("500", "4000", "4001") else QBOError
    return QBOError


def error_from_fault(
    fault: dict[str, Any],
    *,
    status: int | None = None,
    intuit_tid: str | None = None,
    headers: Any = None,
) -> QBOError:
    """A typed error from a fault object (``Fault`` or ``fault``, without its envelope).

    Used for whole responses and for the per-item faults of a batch (HTTP 200).
    """
    raw_errors = _first(fault, "Error", "error") or []
    if isinstance(raw_errors, dict):
        raw_errors = [raw_errors]
    errors = [e for e in raw_errors if isinstance(e, dict)]
    first = errors[0] if errors else {}
    code = _first(first, "code", "Code")
    if code is not None:
        code = str(code).lstrip("0") or "0"  # "003200" in some gateway texts -> "3200"
    message = _first(first, "Message", "message") or "QuickBooks fault"
    detail = _first(first, "Detail", "detail")
    element = _first(first, "element", "Element")
    cls = error_class(status, code, detail)
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "detail": detail,
        "element": element,
        "intuit_tid": intuit_tid,
        "fault_type": _first(fault, "type", "Type"),
        "errors": errors,
    }
    if cls is ThrottledError:
        return ThrottledError(str(message), retry_after=_retry_after(headers), **kwargs)
    return cls(str(message), **kwargs)


def error_from_response(response: requests.Response) -> QBOError:
    """The typed error a failed QuickBooks or Intuit OAuth response stands for.

    Reads both fault envelopes, the OAuth ``error`` body, and falls back to the HTTP status
    for bodies that are not JSON (the front end's 503 page, a 413 HTML page).
    """
    tid = response.headers.get("intuit_tid")
    status = response.status_code
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        fault = body.get("Fault") or body.get("fault")
        if isinstance(fault, dict):
            return error_from_fault(fault, status=status, intuit_tid=tid, headers=response.headers)
        oauth_error = body.get("error")
        if isinstance(oauth_error, str):
            description = body.get("error_description") or oauth_error
            kwargs: dict[str, Any] = {"status": status, "code": oauth_error, "detail": description, "intuit_tid": tid}
            if oauth_error == "invalid_grant":
                return InvalidGrantError(f"invalid_grant: {description}", **kwargs)
            if oauth_error == "invalid_token" or (status == 401 and oauth_error != "invalid_client"):
                return AuthenticationError(f"{oauth_error}: {description}", **kwargs)
            if status == 429:
                return ThrottledError(f"{oauth_error}: {description}", retry_after=_retry_after(response.headers),
                                      **kwargs)
            return OAuthError(f"{oauth_error}: {description}", **kwargs)
    cls = error_class(status, None)
    text = (response.reason or "").strip() or f"HTTP {status}"
    snippet = (response.text or "")[:200].strip() if body is None else None
    if cls is ThrottledError:
        return ThrottledError(text, status=status, detail=snippet, intuit_tid=tid,
                              retry_after=_retry_after(response.headers))
    return cls(text, status=status, detail=snippet, intuit_tid=tid)
