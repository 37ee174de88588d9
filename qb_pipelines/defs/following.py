"""Runs that stay a little: a push or a webhook's landing serves what comes next within a second.

A Dagster run is a new process that loads the code location: seconds before its first call.
Changes come in streams (an app's users at work, a bookkeeper editing in QuickBooks), so a run
started by one change stays ``follow_s`` seconds and serves the next ones itself:

* a push run follows the outbox (:func:`qb_pipelines.sync.push.follow.follow`, step
  ``follow_outbox`` in :mod:`qb_pipelines.defs.push`);
* a webhook's landing run follows the webhook inbox (:func:`follow_webhooks`, at the end of
  ``qbo_raw_entities``): each new event of its company is landed at once (one CDC call for the
  entities named, those the tenant's settings land), recorded as a materialization of the
  entity, and the run's tags ``qbo/entities`` (what it lands) and ``qbo/webhook-through`` (up to
  which inbox event) move forward so ``qbo_webhook_sensor`` requests no run for what it landed.

Both leave when nothing came for ``follow_s`` seconds, when every run slot is taken while another
run waits for one (:func:`slot_wanted`: 2 s for a run someone waits for, 60 s for background
work), and the landing also when a step waits for the
``qbo_api`` pool its step holds (:func:`pool_wanted`). At the end they cancel the runs of their
company queued meanwhile that they left nothing to do for.

The windows: ``$QB_PUSH_FOLLOW_S`` and ``$QB_LANDING_FOLLOW_S`` (seconds, ``0`` turns following
off), or the run's config.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from qb_pipelines.config import SettingsError
from qb_pipelines.defs.run_coordinator import PRIORITY_TAG, URGENT_PRIORITY
from qb_pipelines.qbo import registry
from qb_pipelines.sync.companies import Company

__all__ = ["FOLLOW_MAX_S", "LANDING_FOLLOW_S", "THROUGH_TAG", "follow_webhooks", "pool_wanted", "seconds_setting",
           "slot_wanted", "waiting_too_long"]

#: Tag of a webhook's landing run: the webhook inbox's sequence number up to which it landed the
#: events of its company and entities (set by the web app's intake, moved on while it follows).
THROUGH_TAG = "qbo/webhook-through"
#: Seconds a webhook's landing run follows the inbox by default.
LANDING_FOLLOW_S = 10.0
#: Longest a run follows in all.
FOLLOW_MAX_S = 600.0
#: Seconds between two looks.
POLL_S = 0.25
#: Seconds between two checks of whether someone waits for this run's slots (a few queries each).
LEAVE_CHECK_S = 1.0
#: An urgent queued run (a webhook's landing, a push) waiting this long while every run slot is
#: taken makes a following run leave.
SLOT_WAIT_S = 2.0
#: The same for any other queued run (polls, reports, the usage check).
BACKGROUND_WAIT_S = 60.0


def seconds_setting(name: str, default: float, env: dict[str, str] | None = None) -> float:
    """``$name`` as seconds from 0 to :data:`FOLLOW_MAX_S`, else ``default``.

    Raises:
        SettingsError: the variable is not such a number (the message says what to set).
    """
    text = (os.environ if env is None else env).get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= FOLLOW_MAX_S:
        raise SettingsError(f"{name}={text!r} is not a number of seconds from 0 to {FOLLOW_MAX_S:.0f}: set it to how "
                            "long a run waits for the next change after its work (0: not at all).")
    return value


def slot_wanted(instance: dg.DagsterInstance, mine: Callable[[dg.DagsterRun], bool]) -> str | None:
    """Why a following run should leave now: every run slot taken while another run waits for one.

    A run someone waits for (a webhook's landing, a push: priority :data:`URGENT_PRIORITY`) that
    has waited :data:`SLOT_WAIT_S`; any other run (a poll, a report, the usage check) once it has
    waited :data:`BACKGROUND_WAIT_S`, so background work is delayed a little, never starved.
    ``mine(run)`` says which queued runs wait for this one anyway (the same company's, which the
    tag limits keep behind it): those do not count.
    """
    try:
        limit = instance.get_concurrency_config().run_queue_config.max_concurrent_runs
    except AttributeError:  # no run queue (an in-process or test instance): no slot to free
        return None
    in_progress = instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTING,
                                                                  dg.DagsterRunStatus.STARTED]))
    if in_progress < limit:
        return None
    queued = instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED]), limit=50)
    run = waiting_too_long([(r.dagster_run, r.create_timestamp.timestamp()) for r in queued],
                           datetime.now(UTC).timestamp(), mine)
    return f"run {run.run_id[:8]} waits for a run slot" if run is not None else None


def waiting_too_long(queued: list[tuple[dg.DagsterRun, float]], now: float,
                     mine: Callable[[dg.DagsterRun], bool]) -> dg.DagsterRun | None:
    """The first queued run (with when it was queued) that has waited too long for a following run."""
    for run, created in queued:
        if mine(run):
            continue
        priority = run.tags.get(PRIORITY_TAG, "0")
        urgent = priority.lstrip("-").isdigit() and int(priority) >= URGENT_PRIORITY
        if now - created > (SLOT_WAIT_S if urgent else BACKGROUND_WAIT_S):
            return run
    return None


def pool_wanted(instance: dg.DagsterInstance, pool: str) -> str | None:
    """Why a following step holding a ``pool`` slot should leave: another step waits for one."""
    try:
        waiting = instance.event_log_storage.get_concurrency_info(pool).pending_step_count
    except NotImplementedError:  # a storage without pools
        return None
    return f"{waiting} steps wait for the {pool} pool" if waiting else None


def follow_webhooks(context: dg.AssetExecutionContext, runtime: Any, company: Company, entities: list[str],
                    window_s: float, after_seq: int, land_again: Callable[[list[str]], Iterator[Any]], *,
                    pool: str, company_tag: str, job_name: str, clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], Any] = time.sleep) -> Iterator[Any]:
    """Land the webhooks of ``company`` stored after ``after_seq`` as they come (module doc).

    ``land_again(names)`` lands those entities (those the tenant's settings let land) and yields
    their materializations. ``entities`` are what the run landed first.
    """
    instance, run_id = context.instance, context.run.run_id
    start = quiet = clock()
    after, landed, left, checked = after_seq, 0, "", float("-inf")
    mine = set(entities)

    def same_company(run: dg.DagsterRun) -> bool:
        return run.tags.get(company_tag) == company.key

    while True:
        now = clock()
        if now - quiet >= window_s:
            left = "quiet"
            break
        if now - start >= FOLLOW_MAX_S:
            left = "long"
            break
        if now - checked >= LEAVE_CHECK_S:
            checked = now
            reason = slot_wanted(instance, same_company) or pool_wanted(instance, pool)
            if reason:
                left = reason
                break
        events = runtime.inbox.drain(after, 1000)
        named: set[str] = set()
        for event in events:
            entity = registry.find(str(event.entity or ""))
            if event.realm_id == company.realm_id and entity is not None:
                named.add(entity.name)
        if events:
            after = max(int(e.seq) for e in events)
        if named:
            yield from land_again(sorted(named))
            landed += 1
            mine |= named
            instance.add_run_tags(run_id, {THROUGH_TAG: str(after), "qbo/entities": ",".join(sorted(mine))})
            quiet = clock()
            continue
        sleep(POLL_S)
    cancelled = _cancel_spare_landings(instance, runtime, company, mine, after, company_tag, job_name, run_id)
    context.log.info("%s: followed the webhook inbox %.1f s, landed %d more times up to event #%d; left: %s%s",
                     company.key, clock() - start, landed, after, left,
                     f"; cancelled {len(cancelled)} landing runs queued meanwhile" if cancelled else "")


def _cancel_spare_landings(instance: dg.DagsterInstance, runtime: Any, company: Company, mine: set[str], after: int,
                           company_tag: str, job_name: str, run_id: str) -> list[str]:
    """Cancel the company's webhook landings queued meanwhile that this run left nothing to do for."""
    queued = instance.get_runs(filters=dg.RunsFilter(tags={company_tag: company.key, "qbo/trigger": "webhook"},
                                                     statuses=[dg.DagsterRunStatus.QUEUED]))
    if not queued:
        return []
    if any(e.realm_id == company.realm_id for e in runtime.inbox.drain(after, 1000)):
        return []  # events came after the last look: the queued run lands them
    cancelled = []
    for run in queued:
        names = set(filter(None, run.tags.get("qbo/entities", "").split(",")))
        if run.run_id != run_id and run.job_name == job_name and names and names <= mine \
                and instance.run_coordinator.cancel_run(run.run_id):
            cancelled.append(run.run_id)
    return cancelled
