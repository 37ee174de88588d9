"""Inbound landing: bring one QuickBooks company's entities into the warehouse.

:func:`land` is the one entry point; the Dagster assets, ``qb-pipelines sync`` and the benchmark
call it. What it does per entity, and why (dlt's "replace vs incremental" contract, QBO's way):

* **Incremental (the default)**: ONE change-data-capture call for every requested entity that
  CDC covers, since the oldest stored cursor (``QBOClient.cdc`` splits the window when a response
  hits QBO's 1000-object cap). Changed objects are upserted, tombstones (deletes and merged-away
  names) set ``is_deleted``/``deleted_at`` and never drop a row, inactivated names keep
  ``is_active`` false. The new cursor is saved in the SAME transaction as the rows, so a crash
  can only re-fetch, never skip. The cursor is the time the call started minus
  :data:`CURSOR_OVERLAP`: the overlap absorbs clock skew between us and QBO, and re-fetched
  objects are recognised as unchanged (``row_hash``) and not counted again.
* **Entities without CDC** (TaxCode, TaxRate, CompanyInfo) are small: re-read in full, all of
  them in ONE batch call, so an incremental run costs two API calls (CDC + batch) whatever the
  number of entities.
* **Full refresh** (``full=True``, no cursor yet, or a cursor older than CDC's 30-day look-back,
  which the result says): pages of 1000 through ``SELECT * ... ORDERBY Id STARTPOSITION n``
  (name lists with ``Active IN (true, false)`` so inactive rows land), each page upserted and
  committed with the next STARTPOSITION in ``qbo_full_refresh_progress``; memory stays flat at
  one page. A crashed refresh resumes from its last committed page (``resume=True``). Id order
  makes positions stable: new objects get larger Ids and land at the end. At the end, rows of
  that company and entity that the refresh did not confirm are the hard deletes CDC missed;
  they are re-read by Id first (a delete during the refresh shifts positions, so a live row may
  have been skipped) and only those QBO no longer has are flagged deleted. The CDC cursor then
  restarts at the refresh's start (minus the overlap), so changes made during the refresh
  are picked up by the next incremental run.

Times: ``now`` must tell QBO's time (the default, the local UTC clock, is what Intuit's servers
keep within NTP skew; tests on an emulator whose clock was moved pass the emulator's clock).

One landing per company at a time: :func:`land` holds the company's ``land`` lock
(:mod:`qb_pipelines.store.locks`, across processes, released if the process dies) for the whole
run; a second landing waits for it, bounded by ``lock_wait_s``, and says whom it waits for.

API calls are read from ``client.stats``; a call shared by several entities (the CDC call, the
batch) is counted once for each entity it served, and once in :attr:`LandResult.api_calls`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.errors import CDCLookbackError, QBOError
from qb_pipelines.qbo.registry import EntityDef
from qb_pipelines.store.locks import DEFAULT_WAIT_S, CompanyBusyError, CompanyLocks
from qb_pipelines.store.warehouse import PreparedBatch, UpsertStats, WarehouseWriter
from qb_pipelines.sync.landing_gate import resolve_entities

__all__ = [
    "CURSOR_OVERLAP",
    "LOOKBACK",
    "MODE_FULL",
    "MODE_FULL_EXPIRED",
    "MODE_INCREMENTAL",
    "CompanyBusyError",
    "EntityResult",
    "LandResult",
    "land",
]

log = logging.getLogger(__name__)

#: CDC's look-back (QBO refuses an older ``changedSince``).
LOOKBACK = timedelta(days=30)
#: A cursor this close to the look-back limit is treated as expired: the run takes time, and a
#: CDC refused half-way is worse than a full refresh decided up front.
LOOKBACK_MARGIN = timedelta(hours=1)
#: How far before the call's start the next CDC window begins (clock skew, in-flight commits).
CURSOR_OVERLAP = timedelta(minutes=5)
#: QBO's largest page.
MAX_PAGE = 1000
#: Ids per ``Id IN (...)`` query when re-checking hard-delete candidates.
RECHECK_CHUNK = 200

MODE_INCREMENTAL = "incremental"
MODE_FULL = "full"
MODE_FULL_EXPIRED = "full (cursor older than 30 days)"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class EntityResult:
    """What landing did for one entity (the asset's materialization metadata).

    Attributes:
        entity: QBO entity name.
        mode: ``incremental``, ``full`` or ``full (cursor older than 30 days)``.
        reason: why that mode, in words (``first load (no cursor yet)``, ``no CDC for this entity``...).
        inserted: rows new to the warehouse.
        updated: rows whose content changed.
        unchanged: rows QBO sent again without a change.
        deleted: rows newly flagged deleted (tombstones, merges, hard deletes) or inactivated.
        inactivated: of those, name-list rows that became inactive.
        api_calls: QBO calls made for this entity (shared calls counted for each entity served).
        pages: query pages (full refresh) or CDC calls (incremental) read.
        cursor: the CDC cursor saved (QBO time), ``None`` for entities CDC does not cover.
        resumed_from: the STARTPOSITION a crashed full refresh resumed from, if it did.
    """

    entity: str
    mode: str
    reason: str
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    deleted: int = 0
    inactivated: int = 0
    api_calls: int = 0
    pages: int = 0
    cursor: datetime | None = None
    resumed_from: int | None = None

    def _add(self, stats: UpsertStats) -> None:
        self.inserted += stats.inserted
        self.updated += stats.updated
        self.unchanged += stats.unchanged
        self.deleted += stats.deleted + stats.inactivated
        self.inactivated += stats.inactivated

    def as_metadata(self) -> dict[str, Any]:
        """Plain values for Dagster metadata and JSON."""
        return {
            "mode": self.mode, "reason": self.reason, "inserted": self.inserted, "updated": self.updated,
            "unchanged": self.unchanged, "deleted": self.deleted, "inactivated": self.inactivated,
            "api_calls": self.api_calls, "pages": self.pages,
            "cursor": self.cursor.isoformat() if self.cursor else None, "resumed_from": self.resumed_from,
        }


@dataclass
class LandResult:
    """What one :func:`land` call did for one company.

    Attributes:
        company_key: the company partition.
        entities: per-entity results, in registry order.
        api_calls: QBO calls the whole run made.
        touched_months: ``(company_key, "YYYY-MM")`` of every transaction this run inserted,
            updated or deleted (old and new TxnDate when the date moved): the report partitions
            to re-materialize (month-end adjustments).
        started_at: when the run started.
        finished_at: when it finished.
    """

    company_key: str
    entities: dict[str, EntityResult] = field(default_factory=dict)
    api_calls: int = 0
    touched_months: set[tuple[str, str]] = field(default_factory=set)
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def inserted(self) -> int:
        return sum(e.inserted for e in self.entities.values())

    @property
    def updated(self) -> int:
        return sum(e.updated for e in self.entities.values())

    @property
    def deleted(self) -> int:
        return sum(e.deleted for e in self.entities.values())

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary (the CLI prints it)."""
        return {
            "company_key": self.company_key, "api_calls": self.api_calls, "inserted": self.inserted,
            "updated": self.updated, "deleted": self.deleted,
            "touched_months": sorted(m for _, m in self.touched_months),
            "entities": {name: e.as_metadata() for name, e in self.entities.items()},
        }


@dataclass
class _Plan:
    entity: EntityDef
    mode: str
    reason: str
    kind: str  # cdc | small | full


def _where_all(entity: EntityDef) -> str | None:
    """Name lists answer active rows only unless asked for both."""
    return "Active IN (true, false)" if entity.has_active else None


def _rows(response: dict[str, Any], entity: str) -> list[dict[str, Any]]:
    """The rows of ``entity`` in a QueryResponse, under its name or QBO's wire name, any case."""
    ent = registry.find(entity)
    names = {entity.lower(), ent.json_key.lower()} if ent is not None else {entity.lower()}
    for key, value in response.items():
        if key.lower() in names and isinstance(value, list):
            return value
    return []


def land(
    client: QBOClient,
    writer: WarehouseWriter,
    company_key: str,
    entities: Sequence[str] | None = None,
    *,
    full: bool = False,
    page_size: int = MAX_PAGE,
    progress: Callable[[dict[str, Any]], Any] | None = None,
    now: Callable[[], datetime] = _utcnow,
    resume: bool = True,
    run_id: str | None = None,
    on_changes: ChangeHook | None = None,
    lock_wait_s: float = DEFAULT_WAIT_S,
    on_wait: Callable[[str], Any] | None = None,
) -> LandResult:
    """Land a company's QuickBooks entities in the warehouse (see the module docstring).

    Replace vs incremental: incremental (CDC) by default; ``full=True`` re-reads every object and
    flags the ones QBO no longer has. An entity with no cursor yet, or one older than CDC's
    30-day look-back, gets a full refresh by itself, and its :attr:`EntityResult.mode` says so.

    Args:
        client: the company's QBO client.
        writer: the warehouse writer.
        company_key: the company partition the rows are stored under.
        entities: entity names (any case); all of the registry by default.
        full: full refresh for every requested entity.
        page_size: rows per query page (QBO allows at most 1000).
        progress: called after each committed step with ``{"entity", "mode", "page", "rows",
            "rows_done", "start_position"}``; an exception it raises stops the run after that
            commit (what a crash looks like), and the next full run resumes from there.
        now: QBO's current time (aware).
        resume: resume a crashed full refresh from its last committed page instead of restarting.
        run_id: recorded with full-refresh progress and the company lock (the Dagster run id).
        on_changes: told ``(entity, live objects, tombstones)`` after each commit, for the
            entities its ``wants(entity)`` accepts (the change feed,
            :class:`qb_pipelines.sync.feed.FeedRecorder`); ``None`` keeps the landing as it was.
        lock_wait_s: how long to wait while another process lands the same company (the run
            holds the company's ``land`` lock, :mod:`qb_pipelines.store.locks`, throughout).
        on_wait: told once, in words, who this run waits for, when it has to wait.

    Returns:
        Per-entity counts, API calls, cursors and the report months touched.

    Raises:
        ValueError: an unknown entity name or a page size outside 1..1000.
        CompanyBusyError: another run kept landing the company for ``lock_wait_s`` seconds.
        QBOError: QuickBooks refused or failed a call after the client's retries; rows and
            cursors committed before it stay, so a rerun continues.
    """
    if not 1 <= page_size <= MAX_PAGE:
        raise ValueError(f"page_size must be within 1..{MAX_PAGE}")
    resolve_entities(entities)  # an unknown entity is refused before waiting for anyone
    # Two landings of one company would race on its cursors and full-refresh progress: one at a
    # time, whichever process (command line, Dagster run, demo) started it.
    with CompanyLocks(writer.engine).hold(company_key, "land", run_id=run_id, wait_s=lock_wait_s, on_wait=on_wait):
        return _land(client, writer, company_key, entities, full=full, page_size=page_size, progress=progress,
                     now=now, resume=resume, run_id=run_id, on_changes=on_changes)


def _land(client: QBOClient, writer: WarehouseWriter, company_key: str, entities: Sequence[str] | None, *,
          full: bool, page_size: int, progress: Callable[[dict[str, Any]], Any] | None,
          now: Callable[[], datetime], resume: bool, run_id: str | None,
          on_changes: ChangeHook | None) -> LandResult:
    """:func:`land`'s work, with the company's lock held."""

    def clock() -> datetime:
        return now().astimezone(UTC)

    result = LandResult(company_key, started_at=clock())
    calls_at_start = client.stats.api_calls
    run_id = run_id or uuid.uuid4().hex
    cursors = writer.cursors(company_key)
    plans: list[_Plan] = []
    for ent in resolve_entities(entities):
        state = cursors.get(ent.name)
        if full:
            plans.append(_Plan(ent, MODE_FULL, "full refresh requested", "full"))
        elif not ent.cdc:
            plans.append(_Plan(ent, MODE_FULL, "no CDC for this entity: re-read in full", "small"))
        elif state is None or state.cdc_cursor is None:
            plans.append(_Plan(ent, MODE_FULL, "first load (no cursor yet)", "full"))
        elif state.cdc_cursor < result.started_at - LOOKBACK + LOOKBACK_MARGIN:
            plans.append(_Plan(ent, MODE_FULL_EXPIRED,
                               f"cursor {state.cdc_cursor.isoformat()} is older than CDC's 30-day look-back", "full"))
        else:
            plans.append(_Plan(ent, MODE_INCREMENTAL, "changes since the cursor (CDC)", "cdc"))
    for plan in plans:
        result.entities[plan.entity.name] = EntityResult(plan.entity.name, plan.mode, plan.reason)

    cdc_plans = [p for p in plans if p.kind == "cdc"]
    if cdc_plans:
        expired = _land_cdc(client, writer, company_key, cdc_plans, cursors, result, progress, clock, on_changes)
        for plan in expired:
            plan.kind, plan.mode = "full", MODE_FULL_EXPIRED
            plan.reason = "QuickBooks refused the CDC window as older than its 30-day look-back"
            result.entities[plan.entity.name] = EntityResult(plan.entity.name, plan.mode, plan.reason)
    small = [p for p in plans if p.kind == "small"]
    if small:
        too_big = _land_small(client, writer, company_key, small, result, progress, clock, on_changes)
        for plan in too_big:
            plan.kind = "full"
    for plan in plans:
        if plan.kind == "full":
            _full_refresh(client, writer, company_key, plan, result, progress, clock, page_size, resume, run_id,
                          on_changes)

    result.api_calls = client.stats.api_calls - calls_at_start
    result.finished_at = clock()
    return result


class ChangeHook(Protocol):
    """Told what a landing committed (see ``land(on_changes=...)``)."""

    def wants(self, entity: str) -> bool: ...

    def __call__(self, entity: str, live: Sequence[dict], tombstones: Sequence[dict]) -> None: ...


def _tell(hook: ChangeHook | None, entity: str, live: Sequence[dict], tombstones: Sequence[dict] = ()) -> None:
    if hook is not None and (live or tombstones) and hook.wants(entity):
        hook(entity, live, tombstones)


def _notify(progress: Callable[[dict[str, Any]], Any] | None, **event: Any) -> None:
    if progress is not None:
        progress(event)


def _land_cdc(client: QBOClient, writer: WarehouseWriter, company_key: str, plans: list[_Plan],
              cursors: dict, result: LandResult, progress: Callable | None,
              clock: Callable[[], datetime], hook: ChangeHook | None = None) -> list[_Plan]:
    """One CDC call for every plan; returns the plans QBO refused as too old (to refresh in full)."""
    since = min(cursors[p.entity.name].cdc_cursor for p in plans)
    started = clock()
    calls = client.stats.api_calls
    try:
        changes = client.cdc([p.entity.name for p in plans], since)
    except CDCLookbackError:
        log.warning("CDC since %s refused as too old for %s: full refresh instead", since.isoformat(), company_key)
        return plans
    calls = client.stats.api_calls - calls
    stamp = clock()
    with writer.begin() as conn:
        for plan in plans:
            name = plan.entity.name
            entity_result = result.entities[name]
            objects = changes.get(name, [])
            live = [o for o in objects if o.get("status") != "Deleted"]
            tombs = [o for o in objects if o.get("status") == "Deleted"]
            stats = writer.upsert(conn, plan.entity, company_key, live, synced_at=stamp)
            stats.add(writer.mark_deleted(conn, plan.entity, company_key, tombs, synced_at=stamp))
            entity_result._add(stats)
            result.touched_months |= {(company_key, m) for m in stats.touched_months}
            cursor = max(cursors[name].cdc_cursor, started - CURSOR_OVERLAP)
            writer.save_cursor(conn, company_key, name, cdc_cursor=cursor, now=stamp)
            entity_result.cursor = cursor
            entity_result.api_calls += calls
            entity_result.pages += calls
    for plan in plans:
        objects = changes.get(plan.entity.name, [])
        _tell(hook, plan.entity.name, [o for o in objects if o.get("status") != "Deleted"],
              [o for o in objects if o.get("status") == "Deleted"])
        r = result.entities[plan.entity.name]
        _notify(progress, entity=plan.entity.name, mode=r.mode, page=1, rows=r.inserted + r.updated + r.deleted,
                rows_done=r.inserted + r.updated + r.deleted, start_position=None)
    return []


def _land_small(client: QBOClient, writer: WarehouseWriter, company_key: str, plans: list[_Plan],
                result: LandResult, progress: Callable | None, clock: Callable[[], datetime],
                hook: ChangeHook | None = None) -> list[_Plan]:
    """Re-read small entities without CDC in one batch call; returns those too big for one page."""
    items = []
    for plan in plans:
        where = _where_all(plan.entity)
        statement = f"SELECT * FROM {plan.entity.name}" + (f" WHERE {where}" if where else "") + \
            f" MAXRESULTS {MAX_PAGE}"
        items.append({"bId": plan.entity.name[:18], "Query": statement})
    calls = client.stats.api_calls
    answers = client.batch(items)
    calls = client.stats.api_calls - calls
    too_big: list[_Plan] = []
    for plan, answer in zip(plans, answers, strict=True):
        if isinstance(answer, QBOError):
            raise answer
        name = plan.entity.name
        entity_result = result.entities[name]
        entity_result.api_calls += calls
        entity_result.pages += 1
        rows = _rows(answer.get("QueryResponse") or {}, name)
        if len(rows) >= MAX_PAGE:
            too_big.append(plan)  # more than a page: page through it like any full refresh
            continue
        stamp = clock()
        with writer.begin() as conn:
            stats = writer.upsert(conn, plan.entity, company_key, rows, synced_at=stamp)
            # the answer was complete: what it did not list, QBO no longer has
            gone = writer.unconfirmed_ids(conn, plan.entity, company_key, since=stamp)
            stats.add(writer.mark_hard_deleted(conn, plan.entity, company_key, gone, at=stamp))
            writer.save_cursor(conn, company_key, name, cdc_cursor=None, full_refresh_at=stamp, now=stamp)
        entity_result._add(stats)
        result.touched_months |= {(company_key, m) for m in stats.touched_months}
        _tell(hook, name, rows, [{"Id": i} for i in gone])
        _notify(progress, entity=name, mode=entity_result.mode, page=1, rows=len(rows), rows_done=len(rows),
                start_position=None)
    return too_big


def _pages(client: QBOClient, entity: EntityDef, start: int, page_size: int) -> Iterator[tuple[int, list[dict]]]:
    """``(start_position, rows)`` pages of every object of ``entity`` in Id order, from ``start``.

    ``QBOClient.query_pages`` has no start position, and resuming needs one, so this pages the
    same way (advance by the rows returned, stop on a short page) from a given STARTPOSITION.
    """
    where = _where_all(entity)
    base = f"SELECT * FROM {entity.name}" + (f" WHERE {where}" if where else "") + f" ORDERBY {entity.order_key}"

    def fetch(position: int) -> list[dict]:
        rows = _rows(client.query(f"{base} STARTPOSITION {position} MAXRESULTS {page_size}"), entity.name)
        client.stats.add(pages=1)
        return rows

    # Read one page ahead in a thread: QBO's answer (network, and its JSON decoding) overlaps
    # with the database writing the previous page. One page ahead keeps memory at two pages.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"qbo-page-{entity.name}") as pool:
        position = start
        pending = pool.submit(fetch, position)
        try:
            while True:
                rows = pending.result()
                last = len(rows) < page_size
                if not last:
                    pending = pool.submit(fetch, position + len(rows))
                yield position, rows
                if last:
                    return
                position += len(rows)
        finally:
            pending.cancel()


def _full_refresh(client: QBOClient, writer: WarehouseWriter, company_key: str, plan: _Plan, result: LandResult,
                  progress: Callable | None, clock: Callable[[], datetime], page_size: int, resume: bool,
                  run_id: str, hook: ChangeHook | None = None) -> None:
    """Page through every object of one entity, commit page by page, then sweep hard deletes."""
    ent = plan.entity
    name = ent.name
    entity_result = result.entities[name]
    calls_at_start = client.stats.api_calls
    start, rows_done = 1, 0
    started_at = clock()
    previous = writer.progress(company_key, name) if resume else None
    if previous is not None and previous.started_at > started_at - LOOKBACK + LOOKBACK_MARGIN:
        # resume: keep the original start, so rows confirmed before the crash count as seen
        start, rows_done, started_at = previous.start_position, previous.rows_done, previous.started_at
        entity_result.resumed_from = start
        log.info("%s/%s: resuming a full refresh at STARTPOSITION %d", company_key, name, start)

    # Pipeline: while the database writes page k (in the writer thread, which mostly waits on
    # the server, without the GIL), this thread prepares page k+1 and the page reader fetches
    # page k+2. Page k is committed and reported before page k+1 is handed over, so commits stay
    # in order and a crash (or a progress callback that raises) leaves exactly the pages reported.
    def commit(batch: PreparedBatch, next_position: int, done: int, stamp: datetime) -> UpsertStats:
        try:
            with writer.begin() as conn:
                stats = writer.write_batch(conn, batch)
                writer.save_progress(conn, company_key, name, run_id=run_id, start_position=next_position,
                                     rows_done=done, started_at=started_at, now=stamp)
            return stats
        except writer.integrity_errors():
            if not batch.assume_new:
                raise
            # a row seen twice (a delete in QBO shifted the pages): write this page the careful way
            batch.assume_new = False
            return commit(batch, next_position, done, stamp)

    told = hook is not None and hook.wants(name)

    def finish(inflight: tuple[Future, int, int, int, list[dict] | None]) -> None:
        future, count, next_position, done, page = inflight
        stats = future.result()
        entity_result._add(stats)
        result.touched_months |= {(company_key, m) for m in stats.touched_months}
        if page:
            _tell(hook, name, page)
        _notify(progress, entity=name, mode=entity_result.mode, page=entity_result.pages, rows=count,
                rows_done=done, start_position=next_position)

    # A first load into an empty table needs no lookup of stored rows (the common big case).
    first_load = entity_result.resumed_from is None and not writer.has_rows(ent, company_key)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"warehouse-{name}") as pool:
        inflight: tuple[Future, int, int, int, list[dict] | None] | None = None
        for position, rows in _pages(client, ent, start, page_size):
            stamp = clock()
            batch = writer.prepare_batch(ent, company_key, rows, synced_at=stamp, assume_new=first_load)
            if inflight is not None:
                finish(inflight)
            entity_result.pages += 1
            rows_done += len(rows)
            inflight = (pool.submit(commit, batch, position + len(rows), rows_done, stamp), len(rows),
                        position + len(rows), rows_done, rows if told else None)
        if inflight is not None:
            finish(inflight)

    # Hard deletes: live rows this refresh did not confirm. Re-read them by Id before flagging.
    with writer.engine.connect() as conn:
        candidates = writer.unconfirmed_ids(conn, ent, company_key, since=started_at)
    found: list[dict] = []
    if candidates and not ent.key_fields:  # an entity without Ids (exchange rates) has nothing to re-read by Id
        extra = _where_all(ent)
        for i in range(0, len(candidates), RECHECK_CHUNK):
            chunk = candidates[i:i + RECHECK_CHUNK]
            ids = ", ".join("'" + c.replace("'", "\\'") + "'" for c in chunk)
            statement = f"SELECT * FROM {name} WHERE Id IN ({ids})" + (f" AND {extra}" if extra else "") + \
                f" MAXRESULTS {MAX_PAGE}"
            found += _rows(client.query(statement), name)
    found_ids = {str(ent.identity(o)) for o in found}
    gone = [c for c in candidates if c not in found_ids]
    stamp = clock()
    with writer.begin() as conn:
        stats = writer.upsert(conn, ent, company_key, found, synced_at=stamp) if found else UpsertStats()
        stats.add(writer.mark_hard_deleted(conn, ent, company_key, gone, at=stamp))
        cursor = started_at - CURSOR_OVERLAP if ent.cdc else None
        writer.save_cursor(conn, company_key, name, cdc_cursor=cursor, full_refresh_at=stamp, now=stamp)
        writer.clear_progress(conn, company_key, name)
    entity_result._add(stats)
    result.touched_months |= {(company_key, m) for m in stats.touched_months}
    _tell(hook, name, found, [{"Id": i} for i in gone])
    entity_result.cursor = cursor
    entity_result.api_calls += client.stats.api_calls - calls_at_start
    if gone:
        log.info("%s/%s: %d hard deletes found by the full refresh", company_key, name, len(gone))
