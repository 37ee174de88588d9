"""A push run that stays a little: what the app enqueues meanwhile goes out within a second.

Starting a push costs seconds before the first record moves (a Dagster run is a new process
that loads the code location). An app sends its changes as its users work: one record, then
another a few seconds later. :func:`follow` is what a push run does after its main push: it
watches the tenant's outbox (one indexed query every ``poll_s``) and pushes what arrives, under
the same per-company lock and limits as any push, until one of these:

* ``quiet``: nothing new came for ``window_s`` seconds;
* ``long``: it has followed for ``max_s`` seconds in all (the next run takes over);
* ``backlog``: more than ``max_rows`` rows arrived at once: bulk work, for a run of its own
  (in Dagster, under the ``qbo_api`` pool, which a following step does not hold);
* ``asked``: ``leave()`` said why (in Dagster: other runs wait for a run slot).

"New" means the due rows changed (a higher row id, a retry come due, a row an admin retried)
since the last look: rows left waiting behind a gate (an entity switched off) are not pushed
again and again. The first look pushes whatever is due, so nothing enqueued between the run's
push and the start of following waits for the next run.

Plain Python over the store (no Dagster): :mod:`qb_pipelines.defs.push` runs it as the step
``follow_outbox``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from qb_pipelines.sync.companies import Company
from qb_pipelines.sync.push.backlog import due_companies
from qb_pipelines.sync.push.engine import push
from qb_pipelines.sync.push.result import PushResult

__all__ = ["FOLLOW_MAX_ROWS", "FOLLOW_MAX_S", "FOLLOW_POLL_S", "Followed", "follow"]

#: Seconds between two looks at the outbox.
FOLLOW_POLL_S = 0.25
#: Longest a run follows in all, however busy the outbox stays.
FOLLOW_MAX_S = 600.0
#: Seconds between two calls of ``leave`` (in Dagster, a few queries of the instance).
LEAVE_CHECK_S = 1.0
#: More rows than this arriving at once is bulk work: left to a run of its own.
FOLLOW_MAX_ROWS = 90


@dataclass
class Followed:
    """What following did.

    Attributes:
        pushes: pushes made while following.
        seconds: how long it followed.
        left: why it stopped (``quiet``, ``long``, ``backlog``, ``gate``, or what ``leave`` said).
        result: the pushes' counts added up (``None`` when none was made).
    """

    pushes: int = 0
    seconds: float = 0.0
    left: str = ""
    result: PushResult | None = None


def _signature(runtime: Any, tenant_key: str) -> tuple[Any, ...] | None:
    """What identifies the tenant's due rows now, and whether a push would send them."""
    due = due_companies(runtime, tenant_key=tenant_key)
    if not due:
        return None
    work = due[0]
    return work.max_id, work.last_change, work.rows, work.waiting


def follow(runtime: Any, company: Company, *, window_s: float, poll_s: float = FOLLOW_POLL_S,
           max_s: float = FOLLOW_MAX_S, max_rows: int = FOLLOW_MAX_ROWS, leave: Callable[[], str | None] | None = None,
           max_batches: int | None = None, run_id: str | None = None,
           progress: Callable[[dict[str, Any]], Any] | None = None,
           clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], Any] = time.sleep) -> Followed:
    """Push what the app enqueues for ``company`` until the outbox stays quiet (see the module doc).

    Args:
        runtime: the integration's runtime.
        company: the company the run pushes to.
        window_s: leave after this many seconds without a new row (``0``: do not follow).
        poll_s: seconds between two looks at the outbox.
        max_s: leave after following this long in all.
        max_rows: leave when more due rows than this wait at once.
        leave: asked at most once a second; a reason to stop, or ``None``.
        max_batches, run_id, progress: passed to each :func:`~qb_pipelines.sync.push.push`.
        clock, sleep: time (tests).
    """
    out = Followed()
    if window_s <= 0:
        out.left = "off"
        return out
    start = quiet_since = clock()
    # Nothing seen yet: rows enqueued after the run's push and before this look go at once (a
    # look that finds only rows the push left behind a gate pushes nothing and remembers them).
    seen: tuple[Any, ...] | None = None
    checked = float("-inf")
    while True:
        now = clock()
        if now - quiet_since >= window_s:
            out.left = "quiet"
            break
        if now - start >= max_s:
            out.left = "long"
            break
        if leave is not None and now - checked >= LEAVE_CHECK_S:
            checked = now
            reason = leave()
            if reason:
                out.left = reason
                break
        current = _signature(runtime, company.tenant_key)
        if current is not None and current != seen and current[3] is None:
            if current[2] - (seen[2] if seen is not None else 0) > max_rows:
                out.left = "backlog"
                break
            result = push(runtime, company, max_batches=max_batches, progress=progress, run_id=run_id)
            out.pushes += 1
            if out.result is None:
                out.result = result
            else:
                out.result.absorb(result)
            if result.gate:
                out.left = "gate"
                break
            seen = _signature(runtime, company.tenant_key)
            quiet_since = clock()
            continue
        seen = current if current is None or current[3] is not None else seen
        sleep(poll_s)
    out.seconds = round(clock() - start, 3)
    return out
