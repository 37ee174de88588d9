"""Recording a landing's outcome for the admin card: around :func:`qb_pipelines.sync.ingest.land`, not in it.

The callers of ``land`` (the Dagster asset, ``qb-pipelines sync``) wrap the landing in
:func:`recorded_landing`; when the block ends, one row goes to the store's sync runs: started,
finished, objects changed, API calls, ok or failed and why (one secret-free line). The landing's
hot path is untouched, and ``sync/`` stays free of Dagster.

Usage::

    with recorded_landing(runtime.sync_runs, company.key, source="cli", mode="incremental") as landing:
        landing.result = land(client, runtime.warehouse, company.key)
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from qb_pipelines.qbo.redact import redact
from qb_pipelines.store.sync_runs import SyncRunStore
from qb_pipelines.sync.ingest import LandResult

__all__ = ["Landing", "describe_failure", "recorded_landing"]

log = logging.getLogger(__name__)

# Anything shaped like a bearer token, a JWT/JWE or a refresh token is cut out of a recorded
# error: the card shows the error, and an error message may quote what the server received.
_SECRETS = (
    re.compile(r"(?i)\b(bearer)\s+\S+"),
    re.compile(r"\beyJ[A-Za-z0-9_-]*\.[A-Za-z0-9._-]*"),
    re.compile(r"\b(?:RT1|AB11|L011)[A-Za-z0-9-]{20,}"),
    re.compile(r"[A-Za-z0-9_\-+=~]{32,}"),
)


def describe_failure(exc: BaseException) -> str:
    """One line saying what went wrong, with anything token-shaped replaced by ``[redacted]``."""
    text = redact(" ".join(f"{type(exc).__name__}: {exc}".split())) or ""
    for pattern in _SECRETS:
        text = pattern.sub(lambda m: f"{m.group(1)} [redacted]" if m.re.groups else "[redacted]", text)
    return text[:500]


@dataclass
class Landing:
    """What the wrapped block reports: set :attr:`result` to the :class:`LandResult`."""

    started_at: datetime
    result: LandResult | None = None


@contextmanager
def recorded_landing(runs: SyncRunStore, company_key: str, *, source: str, mode: str | None = None,
                     run_id: str | None = None) -> Iterator[Landing]:
    """Record the landing done in the block: ok with its counts, or failed with the exception's line.

    The exception (if any) propagates unchanged. Recording never breaks the landing: a store
    that cannot be written is logged, not raised.

    Args:
        runs: The store's sync runs (``runtime.sync_runs``).
        company_key: The company partition key.
        source: ``dagster`` or ``cli``.
        mode: ``incremental`` or ``full``.
        run_id: The Dagster run id, if any.
    """
    landing = Landing(started_at=runs.now())
    try:
        yield landing
    except BaseException as exc:
        _record(runs, company_key, landing, source=source, mode=mode, run_id=run_id, error=describe_failure(exc))
        raise
    _record(runs, company_key, landing, source=source, mode=mode, run_id=run_id, error=None)


def _record(runs: SyncRunStore, company_key: str, landing: Landing, *, source: str, mode: str | None,
            run_id: str | None, error: str | None) -> None:
    result = landing.result
    try:
        runs.record(
            company_key,
            started_at=landing.started_at,
            ok=error is None,
            objects=(result.inserted + result.updated + result.deleted) if result else 0,
            api_calls=result.api_calls if result else 0,
            mode=mode,
            error=error,
            source=source,
            run_id=run_id,
        )
    except Exception as exc:  # the landing's outcome matters more than its record
        log.warning("could not record the landing of %s: %s", company_key, type(exc).__name__)
