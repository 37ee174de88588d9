"""Change data capture: ``/cdc`` over a window, split when an answer hits QBO's 1000-object cap.

Calls go through :class:`~qb_pipelines.qbo.client.transport.Transport` only.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.client.common import (
    CDC_LOOKBACK,
    CDC_MAX_OBJECTS,
    entity_name,
    identity,
    last_updated,
    quote,
)
from qb_pipelines.qbo.client.transport import Transport
from qb_pipelines.qbo.errors import (
    CDCLookbackError,
)

log = logging.getLogger(__name__)


class ChangeData(Transport):
    """CDC for several entities since a time, losing nothing to QBO's cap."""

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
        names = list(dict.fromkeys(entity_name(e) for e in entities))
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
                        name = entity_name(key)
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
                merged[identity(name, obj)] = obj
            if not capped:
                return list(merged.values())
            times = [last_updated(o) for o in objects]
            ordered = all(t is not None for t in times) and all(
                a <= b for a, b in itertools.pairwise(times))  # type: ignore[operator]
            newest = max((t for t in times if t is not None), default=None)
            if not ordered or newest is None or newest <= cursor:
                log.warning("CDC for %s capped and not splittable by time: reading the window with a query", name)
                where = f"MetaData.LastUpdatedTime >= {quote(cursor.replace(microsecond=0).isoformat())}"
                ent = registry.find(name)
                if ent is not None and ent.has_active:
                    where += " AND Active IN (true, false)"
                for obj in self.query_all(name, where=where):
                    merged[identity(name, obj)] = obj
                return list(merged.values())
            # the window [cursor, newest) is complete; fetch [newest, now) next (inclusive: ties)
            cursor = newest
            log.info("CDC for %s hit the %d cap: next window from %s", name, CDC_MAX_OBJECTS, cursor.isoformat())
            blocks, capped = self._cdc_call([name], cursor)
            objects = blocks.get(name, [])
