"""Batch calls: items cut into 30-item calls, one derived requestid per call, answers matched by ``bId``.

Calls go through :class:`~qb_pipelines.qbo.client.transport.Transport` only.
"""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

from qb_pipelines.qbo.client.common import (
    BATCH_BID_MAX,
    BATCH_REQUESTID_MAX,
    BATCH_SIZE,
    decode_json,
)
from qb_pipelines.qbo.client.transport import Transport
from qb_pipelines.qbo.errors import (
    QBOError,
    error_from_fault,
)


class Batching(Transport):
    """The ``/batch`` endpoint, resumable with the caller's requestid."""

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
            by_bid = {str(r.get("bId")): r for r in decode_json(resp).get("BatchItemResponse") or []}
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
