"""The change feed's signed callbacks, delivered by Dagster: a sensor and a small job per tenant.

* ``qbo_feed_callback_sensor`` (every second, on by default) looks for callbacks that are due --
  entries past the callback's cursor, and its retry time come
  (:meth:`~qb_pipelines.store.feed.FeedStore.due_callbacks`) -- and requests one run of
  ``qbo_feed_delivery_job`` per such tenant, none while one of the tenant is queued or running.
* ``qbo_feed_delivery_job`` is one op, ``deliver_feed``, that calls
  :func:`qb_pipelines.sync.feed_delivery.deliver` for the tenant of its config (every due tenant
  when none is named, :func:`~qb_pipelines.sync.feed_delivery.deliver_due`): the entries are
  POSTed in order, signed, batch after batch until the app has them all or an attempt fails.
  Its output metadata says what was delivered (entries, batches, the cursor after) and what
  failed (the error, the next attempt).

Delivery never holds landing back: it runs in its own runs, in one process (in-process
executor: a run is a few HTTP calls), tagged ``qbo/feed-tenant=<tenant>`` -- a tag of its own,
limited to one run per tenant in ``dagster.yaml`` and the demo's instance, never the landing's
``qbo/company`` -- and outside the ``qbo_api`` pool (it never calls QuickBooks). A failed attempt
is not a failed run: the callback keeps its cursor and the store schedules the next attempt with
backoff, which the sensor honours; a run retried by Dagster would only hammer a down app sooner.
Two deliverers never post the same entries at once: each attempt holds a lease on the callback
in the store, whoever launched it (this job, ``qb-pipelines feed deliver``).
"""

from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from qb_pipelines.defs.resources import QBOConnectionResource
from qb_pipelines.defs.schedules import ACTIVE_STATUSES
from qb_pipelines.sync.feed_delivery import DeliveryResult, deliver, deliver_due

#: Run tag naming the tenant of a delivery run; the instance runs one per value at a time.
FEED_TAG = "qbo/feed-tenant"
FEED_JOB_NAME = "qbo_feed_delivery_job"
#: A tenant whose callback stays due without anything changing (a run that died before its
#: first attempt) is asked for again once per window.
RETRY_WINDOW_S = 60


class FeedDeliveryConfig(dg.Config):
    """Run configuration of a delivery.

    Attributes:
        tenant: the tenant whose callback to deliver; empty delivers every tenant that is due.
        batch: entries per POST.
    """

    tenant: str = Field(default="", description="Tenant whose callback to deliver; empty: every due tenant.")
    batch: int = Field(default=100, ge=1, le=1000, description="Entries per POST.")


def delivery_metadata(results: list[DeliveryResult]) -> dict[str, Any]:
    """What a delivery run did: entries delivered, batches acknowledged, cursors, failures."""
    failed = [r for r in results if r.failed]
    meta: dict[str, Any] = {
        "tenants": len(results),
        "delivered": sum(r.delivered for r in results),
        "batches": sum(r.posts - (1 if r.failed else 0) for r in results),
        "failures": len(failed),
    }
    if len(results) == 1:
        (only,) = results
        meta.update(tenant=only.tenant_key, cursor=only.cursor, skipped=only.skipped or "",
                    error=only.error or "", next_attempt_at=only.next_attempt_at.isoformat()
                    if only.next_attempt_at else "")
    else:
        meta["results"] = dg.MetadataValue.json([r.as_dict() for r in results])
    return meta


@dg.op(out=dg.Out(dg.Nothing), description="POST the tenant's new feed entries to its callback, signed and in order.")
def deliver_feed(context: dg.OpExecutionContext, config: FeedDeliveryConfig,
                 qbo: QBOConnectionResource) -> dg.Output[None]:
    """Deliver one tenant's callback (or every due one); a failed attempt is recorded, not raised."""
    runtime = qbo.runtime()
    tenant = config.tenant or context.run.tags.get(FEED_TAG, "")
    results = [deliver(runtime, tenant, batch=config.batch)] if tenant else deliver_due(runtime, batch=config.batch)
    for r in results:
        if r.failed:
            context.log.warning("feed callback of %s: not delivered (%s); next attempt at %s; cursor stays at %d",
                                r.tenant_key, r.error, r.next_attempt_at.isoformat() if r.next_attempt_at else "?",
                                r.cursor)
        elif r.skipped:
            context.log.info("feed callback of %s: nothing sent (%s)", r.tenant_key, r.skipped)
        else:
            context.log.info("feed callback of %s: %d entries delivered in %d batches, cursor %d", r.tenant_key,
                             r.delivered, r.posts, r.cursor)
    return dg.Output(None, metadata=delivery_metadata(results))


@dg.job(name=FEED_JOB_NAME, executor_def=dg.in_process_executor,
        tags={"qbo/mode": "feed_delivery"},
        description="Deliver a tenant's change feed to the app's signed callback (never inside a landing).")
def qbo_feed_delivery_job() -> None:
    deliver_feed()


def _run_key(tenant: str, latest: int, cursor: int, attempts: int, next_at: datetime | None, now: datetime) -> str:
    """Same due entries, same attempt, same window -> the same key: a re-evaluated tick launches once."""
    stamp = int(next_at.timestamp()) if next_at else 0
    return f"feed:{tenant}:{latest}:{cursor}:{attempts}:{stamp}:w{int(now.timestamp()) // RETRY_WINDOW_S}"


@dg.sensor(job_name=FEED_JOB_NAME, minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Request a delivery run for each tenant whose feed callback is due (never two at once).")
def qbo_feed_callback_sensor(context: dg.SensorEvaluationContext, qbo: QBOConnectionResource) -> dg.SensorResult:
    """One delivery run per tenant with entries past its callback's cursor and its retry time come."""
    now = datetime.now(UTC)
    runtime = qbo.runtime()
    due = runtime.feed.due_callbacks(now)
    if not due:
        return dg.SensorResult(skip_reason="no feed callback is due")
    requests: list[dg.RunRequest] = []
    busy: list[str] = []
    for callback in due:
        tenant = callback.tenant_key
        active = context.instance.get_runs(filters=dg.RunsFilter(tags={FEED_TAG: tenant}, statuses=ACTIVE_STATUSES),
                                           limit=1)
        if active:
            busy.append(f"{tenant}: delivery run {active[0].run_id[:8]} is {active[0].status.value.lower()}")
            continue
        latest = runtime.feed.latest_seq(tenant)
        requests.append(dg.RunRequest(
            run_key=_run_key(tenant, latest, callback.cursor, callback.attempts, callback.next_attempt_at, now),
            run_config={"ops": {"deliver_feed": {"config": {"tenant": tenant}}}},
            tags={FEED_TAG: tenant, "qbo/trigger": "feed", "qbo/feed-cursor": str(callback.cursor),
                  "qbo/feed-latest": str(latest)},
        ))
    if requests:
        context.log.info("feed deliveries for %s", ", ".join(
            f"{r.tags[FEED_TAG]} (after #{r.tags['qbo/feed-cursor']} up to #{r.tags['qbo/feed-latest']})"
            for r in requests))
    return dg.SensorResult(run_requests=requests, skip_reason=None if requests else "; ".join(busy))
