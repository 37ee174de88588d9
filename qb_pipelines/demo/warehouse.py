"""Watch the warehouse for a change made in QuickBooks: the end of the webhook path."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from qb_pipelines.demo.config import WEBHOOK_TIMEOUT_S

__all__ = ["row_sync_token", "wait_for_row"]


def row_sync_token(engine: Any, entity: str, company: str, object_id: str) -> str | None:
    """The SyncToken of a landed row, ``None`` while it is not in the warehouse."""
    import sqlalchemy as sa

    from qb_pipelines.store.warehouse import tables_for

    main, _ = tables_for(entity)
    with engine.connect() as conn:
        return conn.execute(sa.select(main.c.sync_token).where(main.c.company_key == company,
                                                               main.c.id == str(object_id))).scalar()


def wait_for_row(engine: Any, entity: str, company: str, object_id: str, sync_token: str | None = None, *,
                 timeout: float = WEBHOOK_TIMEOUT_S, poll_s: float = 0.1,
                 still_possible: Callable[[], bool] | None = None) -> float | None:
    """Seconds until the row (with ``sync_token`` when given) is in the warehouse; ``None`` if it never came.

    ``still_possible`` (for example: the daemon is alive) ends the wait early when it turns false.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout and (still_possible is None or still_possible()):
        token = row_sync_token(engine, entity, company, object_id)
        if token is not None and (sync_token is None or str(token) == str(sync_token)):
            return time.monotonic() - t0
        time.sleep(poll_s)
    return None
