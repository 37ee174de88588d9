"""What a failed write means for the record: retry later, fix something, or look again.

* **transient** -- throttling (429), QuickBooks' server errors, a dropped connection, a write whose
  outcome is unknown: retried automatically with exponential backoff and jitter, a bounded number
  of times (the same requestid, so nothing posts twice);
* **permanent** -- QuickBooks refused the record as written (a required field, a reference to
  something that does not exist, a business rule, a closed period, a duplicate number...): it
  fails at once, keeping QuickBooks' code and message and saying in a sentence what to fix;
* **stale** -- QuickBooks changed the object since the last agreement (5010): re-read it and let
  the conflict policy decide;
* **duplicate name** -- the name is taken (6240): the record is linked to the existing object.

Every outcome carries a ``next_step`` a person can act on, in the dashboard and the records API.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from qb_pipelines.qbo.errors import (
    DuplicateNameError,
    NotFoundError,
    QBOError,
    StaleObjectError,
    ThrottledError,
    TransientServerError,
)

__all__ = ["MAX_ATTEMPTS", "Classified", "backoff", "classify"]

#: Transient failures retried before a record fails for good.
MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)

TRANSIENT, PERMANENT, STALE, DUPLICATE_NAME = "transient", "permanent", "stale", "duplicate_name"

#: A plain sentence per QBO fault code: what the app (or an admin) should fix.
_NEXT_STEPS = {
    "2020": "a field QuickBooks requires is missing ({element}): add it to the record in the app and save it again",
    "2500": "the record points to something QuickBooks does not have ({element}): check the referenced record or "
            "the account/tax code in Settings, then retry",
    "2050": "a field is too long or malformed ({element}): shorten or correct it in the app",
    "6000": "QuickBooks refused it by a business rule: {detail}. Correct the record in the app, then retry",
    "6140": "the document number is already used in QuickBooks: give the record another number in the app",
    "6190": "QuickBooks refused it (the company's subscription or a setting): {detail}",
    "6210": "the accounting period is closed in QuickBooks: change the date to an open period, or have the "
            "accountant reopen it",
    "6070": "a line's amount does not equal quantity times unit price: correct the line in the app",
    "610": "the object was deleted in QuickBooks: send the record again to create it anew, or delete it in the app",
    "3100": "the app may not write to this company: reconnect with a QuickBooks admin user",
}


@dataclass(frozen=True)
class Classified:
    """A failure sorted (see the module doc).

    Attributes:
        kind: ``transient``, ``permanent``, ``stale`` or ``duplicate_name``.
        code: QBO's fault code (``"2500"``) or the error's class name.
        message: QBO's message and detail, for the dashboard.
        next_step: what to do, in one sentence.
        intuit_tid: quote it to Intuit support.
    """

    kind: str
    code: str | None
    message: str
    next_step: str
    intuit_tid: str | None = None


def classify(exc: BaseException) -> Classified:
    """Sort a failure of one record's write."""
    if isinstance(exc, QBOError):
        message = exc.message + (f" - {exc.detail}" if exc.detail and exc.detail != exc.message else "")
        tid, code = exc.intuit_tid, exc.code or type(exc).__name__
        if isinstance(exc, StaleObjectError):
            return Classified(STALE, code, message, "QuickBooks changed the object meanwhile: the conflict policy "
                              "decides", tid)
        if isinstance(exc, DuplicateNameError):
            return Classified(DUPLICATE_NAME, code, message, "the name is taken: linking to the QuickBooks object with "
                              "that name", tid)
        if isinstance(exc, ThrottledError | TransientServerError):
            return Classified(TRANSIENT, code, message, "a temporary QuickBooks problem: retried automatically", tid)
        template = _NEXT_STEPS.get(str(exc.code or ""))
        if template is None and isinstance(exc, NotFoundError):
            template = _NEXT_STEPS["610"]
        step = (template or "correct the record in the app as QuickBooks' message says, then retry").format(
            element=exc.element or "see the message", detail=exc.detail or exc.message)
        return Classified(PERMANENT, code, message, step, tid)
    if isinstance(exc, OSError | TimeoutError):
        return Classified(TRANSIENT, type(exc).__name__, str(exc), "a network problem: retried automatically")
    return Classified(PERMANENT, type(exc).__name__, str(exc), "an unexpected error: report it with this message")


def backoff(attempts: int, now: datetime, rng: random.Random | None = None) -> datetime:
    """When to retry after ``attempts`` transient failures: 30 s x 2^(n-1), capped at an hour, full jitter
    on the upper half so that many records failing together do not come back in lockstep."""
    rng = rng or random
    ceiling = min(BACKOFF_CAP.total_seconds(), BACKOFF_BASE.total_seconds() * 2 ** max(0, attempts - 1))
    return now + timedelta(seconds=ceiling / 2 + rng.uniform(0, ceiling / 2))
