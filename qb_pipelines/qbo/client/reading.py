"""Objects, queries, reports and PDFs: the client's reads and single-object writes.

Queries page until exhausted (STARTPOSITION advanced by the rows returned, stop on a short or
empty page). Calls go through :class:`~qb_pipelines.qbo.client.transport.Transport` only.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.client.common import (
    MAX_PAGE,
    decode_json,
    entity_name,
    rows_of,
    unwrap,
)
from qb_pipelines.qbo.client.transport import Transport


class Reading(Transport):
    """Read, create, update, delete and void objects; query, count; reports and PDFs."""

    def read(self, entity: str, id: str) -> dict[str, Any]:
        """One object by Id (inactive ones too). Raises :class:`NotFoundError` (610) when absent."""
        name = entity_name(entity)
        return unwrap(self._get_json(f"{name.lower()}/{id}"), name)

    def create(self, entity: str, body: dict[str, Any], *, requestid: str | None = None) -> dict[str, Any]:
        """Create an object; returns it as QBO stored it (Id, SyncToken "0", computed fields).

        Args:
            requestid: Idempotency key; pass the same one to retry a write whose outcome is unknown.
        """
        return self._write(entity, body, requestid=requestid)

    def update(self, entity: str, body: dict[str, Any], *, sparse: bool = True,
               requestid: str | None = None) -> dict[str, Any]:
        """Update an object (``body`` has ``Id`` and the current ``SyncToken``).

        Sparse by default: only the fields in ``body`` change. A full update (``sparse=False``)
        clears every writable field left out. Raises :class:`StaleObjectError` (5010) when the
        SyncToken is not current.
        """
        return self._write(entity, {**body, "sparse": sparse}, requestid=requestid)

    def delete(self, entity: str, id: str, sync_token: str, *, requestid: str | None = None) -> dict[str, Any]:
        """Delete a transaction; returns ``{"status": "Deleted", "Id": ...}``. Name lists are inactivated instead."""
        return self._write(entity, {"Id": str(id), "SyncToken": str(sync_token)}, params={"operation": "delete"},
                           requestid=requestid)

    def void(self, entity: str, id: str, sync_token: str, *, requestid: str | None = None) -> dict[str, Any]:
        """Void a transaction: it stays, amounts zeroed, PrivateNote "Voided".

        Raises:
            ValueError: the entity cannot be voided.
        """
        ent = registry.find(entity)
        if ent is None or ent.void is registry.Void.NONE:
            raise ValueError(f"{entity} cannot be voided in QuickBooks; delete it or credit it instead")
        body = {"Id": str(id), "SyncToken": str(sync_token)}
        if ent.void is registry.Void.OPERATION:
            return self._write(ent.name, body, params={"operation": "void"}, requestid=requestid)
        return self._write(ent.name, {**body, "sparse": True}, params={"operation": "update", "include": "void"},
                           requestid=requestid)

    def company_info(self) -> dict[str, Any]:
        """The company's CompanyInfo (name, address, country, fiscal year...)."""
        return unwrap(self._get_json(f"companyinfo/{self.realm_id}"), "CompanyInfo")

    def preferences(self) -> dict[str, Any]:
        """The company's Preferences (tax, sales forms, currency...)."""
        return unwrap(self._get_json("preferences"), "Preferences")

    # ------------------------------------------------------------------------------ queries
    def query(self, statement: str) -> dict[str, Any]:
        """Run one query statement; returns its ``QueryResponse`` (one page; ``{}`` when empty).

        Sent as ``POST /query`` with an ``application/text`` body, so long statements fit.
        """
        resp = self._request("POST", "query", kind="read", data=statement.encode("utf-8"),
                             content_type="application/text")
        return decode_json(resp).get("QueryResponse") or {}

    def query_pages(self, entity: str, where: str | None = None, order_by: str | None = None,
                    page_size: int = MAX_PAGE) -> Iterator[list[dict[str, Any]]]:
        """Every row of ``SELECT * FROM entity [WHERE] [ORDERBY]``, page by page, until exhausted.

        STARTPOSITION advances by the rows each page returned and paging stops on an empty or
        short page, so nothing is cut at QBO's default of 100 or its maximum of 1000. Name
        lists return active rows only unless ``where`` says ``Active IN (true, false)``.

        Args:
            entity: Entity name (any case).
            where: Conditions after ``WHERE`` (e.g. ``"MetaData.LastUpdatedTime >= '2025-01-01'"``).
            order_by: Sort after ``ORDERBY`` (QBO's default is ascending Id).
            page_size: MAXRESULTS, 1..1000.
        """
        if not 1 <= page_size <= MAX_PAGE:
            raise ValueError(f"page_size must be within 1..{MAX_PAGE}")
        name = entity_name(entity)
        base = f"SELECT * FROM {name}"
        if where:
            base += f" WHERE {where}"
        if order_by:
            base += f" ORDERBY {order_by}"
        start = 1
        while True:
            page = rows_of(self.query(f"{base} STARTPOSITION {start} MAXRESULTS {page_size}"), name)
            self.stats.add(pages=1)
            if not page:
                return
            yield page
            if len(page) < page_size:
                return
            start += len(page)

    def query_all(self, entity: str, where: str | None = None, order_by: str | None = None,
                  page_size: int = MAX_PAGE) -> Iterator[dict[str, Any]]:
        """Every row, one at a time (see :meth:`query_pages`)."""
        for page in self.query_pages(entity, where=where, order_by=order_by, page_size=page_size):
            yield from page

    def count(self, entity: str, where: str | None = None) -> int:
        """``SELECT COUNT(*)``: how many rows match (active only for name lists, as QBO counts)."""
        statement = f"SELECT COUNT(*) FROM {entity_name(entity)}" + (f" WHERE {where}" if where else "")
        return int(self.query(statement).get("totalCount", 0))

    def report(self, name: str, **params: Any) -> dict[str, Any]:
        """A report (``ProfitAndLoss``, ``BalanceSheet``...) as QBO returns it (Header, Columns, Rows).

        Keyword arguments are QBO's report parameters (``start_date``, ``end_date``,
        ``accounting_method``, ``summarize_column_by``...); dates may be ``date`` objects.
        """
        query = {k: v.isoformat() if isinstance(v, date) else str(v) for k, v in params.items() if v is not None}
        return self._get_json(f"reports/{name}", query)

    def pdf(self, entity: str, id: str) -> bytes:
        """The PDF QBO renders for a sales document (invoice, estimate, sales receipt...)."""
        name = entity_name(entity)
        return self._request("GET", f"{name.lower()}/{id}/pdf", kind="read", accept="application/pdf").content
