"""Push in Dagster: the app's outbox to QuickBooks as runs, a sensor, an asset and its checks.

* ``qbo/outbox`` (group ``qbo_sync``, one partition per company) is the outbox seen as an asset:
  materializing a company's partition *pushes* its waiting rows and records what the outbox
  holds afterwards. It is a graph of four ops, the steps a data engineer reads in the run:

  ``plan_push``   what will be resumed and sent per entity, what waits behind a gate and why;
  ``push_outbox`` :func:`qb_pipelines.sync.push.push` (pool ``qbo_api``, retry policy with
                  backoff and jitter; failures only an admin can fix fail at once);
  ``follow_outbox`` stays up to ``follow_s`` seconds (default 15, ``$QB_PUSH_FOLLOW_S``) and
                  pushes what the app enqueues meanwhile, within a second instead of a new run's
                  start-up (:mod:`qb_pipelines.sync.push.follow`). It holds no ``qbo_api`` pool
                  slot, leaves a larger backlog to a run of its own, and leaves at once when
                  every run slot is taken and another run waits for one; push runs of the
                  company queued meanwhile (the fast path) are cancelled when nothing is left;
  ``record_push`` the materialization: this run's created, updated, matched, failed... and the
                  backlog left (held, waiting, failures, the oldest waiting row's age).

* ``qbo_push_job`` materializes it for one company, in one process (no process per step: a
  push is latency-bound), tagged ``qbo/company-push=<company>`` so that the instance runs one push
  per company at a time (``tag_concurrency_limits`` in ``dagster.yaml``) -- a tag of its own, so a
  push never queues behind a landing run of the same company. Its config ``dry_run`` records
  the backlog and runs the checks without sending anything.
* ``qbo_outbox_sensor`` (every second) requests one push run per company with rows to send, and
  none while one is queued or running; a company that could not send anything (not connected,
  wizard not done, every waiting entity switched off) is skipped with the reason.
* Checks on ``qbo/outbox``, per company (``qbo_checks``): ``failures_waiting`` fails while failed
  rows wait for someone (the first few listed with QuickBooks' code and the next step),
  ``oldest_pending_age`` warns when a row has waited too long, ``held_count`` reports the rows
  held since before the first connection. They run after every push of the company.

A run whose process died (kill -9, a lost machine) keeps its rows ``in_flight``; the next run
re-sends those batches with the same requestid and QuickBooks replays its first answer, so
nothing posts twice. The dead run itself stays "started" in Dagster until run monitoring marks
it failed (``dagster/max_runtime`` on the job, ``run_monitoring`` in ``dagster.yaml``) or someone
terminates it in the UI; until then the sensor waits for it, as for any running push.
"""

import json
import warnings
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import dagster as dg
from pydantic import Field

from qb_pipelines.config import SettingsError
from qb_pipelines.defs.assets import QBO_POOL, QBO_RETRY_POLICY, company_failures
from qb_pipelines.defs.following import seconds_setting, slot_wanted
from qb_pipelines.defs.partitions import QBO_COMPANY_PARTITIONS_NAME, qbo_company_partitions
from qb_pipelines.defs.resources import QBOConnectionResource
from qb_pipelines.defs.schedules import ACTIVE_STATUSES
from qb_pipelines.sync.push import PushResult, push
from qb_pipelines.sync.push.backlog import PushPreview, backlog, due_companies, preview, run_metadata
from qb_pipelines.sync.push.follow import follow

OUTBOX_KEY = dg.AssetKey(["qbo", "outbox"])
SYNC_GROUP = "qbo_sync"
CHECKS_GROUP = "qbo_checks"
#: Run tag naming the company of a push run; the instance runs one push per value at a time.
PUSH_TAG = "qbo/company-push"
PUSH_JOB_NAME = "qbo_push_job"
#: A push run older than this is failed by Dagster's run monitoring (its process is presumed
#: dead); its in-flight batches are resumed by the next run. Runs are bounded by ``max_batches``.
PUSH_MAX_RUNTIME_S = 3600
#: Batches one run sends at most (40 batches a minute per company: about 15 minutes); the rest
#: goes in the next run, which the sensor requests at once.
MAX_BATCHES = 600
#: The oldest waiting row's age past which ``oldest_pending_age`` warns.
OLDEST_PENDING_WARN_S = 15 * 60
#: A company whose due rows did not change is asked for again at most once per window (a run
#: that failed before sending, rows left after ``max_batches``...).
RETRY_WINDOW_S = 60

#: Seconds a push run stays after its push to send what the app enqueues meanwhile
#: (``follow_outbox``); ``$QB_PUSH_FOLLOW_S`` changes it for a deployment, run config per run.
FOLLOW_S = 15.0

FAILURES_WAITING = "failures_waiting"
OLDEST_PENDING_AGE = "oldest_pending_age"
HELD_COUNT = "held_count"


class PushConfig(dg.Config):
    """Run configuration of a push.

    Attributes:
        max_batches: batch calls this run makes at most; the rest waits for the next run.
        dry_run: record the backlog and run the checks, send nothing.
    """

    max_batches: int = Field(default=MAX_BATCHES, ge=1, description="Batch calls this run makes at most.")
    dry_run: bool = Field(default=False, description="Record the backlog and run the checks; send nothing.")


class FollowConfig(dg.Config):
    """Run configuration of ``follow_outbox``.

    Attributes:
        follow_s: seconds without a new record after which the run ends (``0``: end at once);
            unset: ``$QB_PUSH_FOLLOW_S``, else :data:`FOLLOW_S`.
    """

    follow_s: float | None = Field(default=None, ge=0, description="Seconds the run waits for new records after "
                                   "its push (0: none); unset: $QB_PUSH_FOLLOW_S, else 15.")


def follow_window(config: FollowConfig, env: dict[str, str] | None = None) -> float:
    """The follow window of a run: its config, else ``$QB_PUSH_FOLLOW_S``, else :data:`FOLLOW_S`.

    Raises:
        SettingsError: ``QB_PUSH_FOLLOW_S`` is not a number of seconds from 0 to 600.
    """
    if config.follow_s is not None:
        return float(config.follow_s)
    return seconds_setting("QB_PUSH_FOLLOW_S", FOLLOW_S, env)


def _metadata(values: dict[str, Any]) -> dict[str, Any]:
    """Plain values as Dagster metadata (JSON for lists and dicts)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict | list | tuple):
            out[key] = dg.MetadataValue.json(json.loads(json.dumps(value, default=str)))
        elif isinstance(value, bool | int | float | str):
            out[key] = value
        else:
            out[key] = "" if value is None else str(value)
    return out


def _company(context: dg.OpExecutionContext) -> str:
    """The run's company: its partition, which the ``qbo/company-push`` tag must not contradict."""
    if not context.has_partition_key:
        raise dg.Failure(description="a push runs for one company: pick a qbo_company partition", allow_retries=False)
    company = str(context.partition_key)
    tagged = context.run.tags.get(PUSH_TAG)
    if tagged and tagged != company:
        raise dg.Failure(description=f"run tag {PUSH_TAG}={tagged} names another company than the partition {company}",
                         allow_retries=False)
    return company


def _earlier_push(context: dg.OpExecutionContext, company: str) -> dg.DagsterRun | None:
    """Another push of ``company`` started before this run and still in progress, if any.

    The tag limit keeps the sensor's and the job's runs apart; this catches the rest (a
    materialization of ``qbo/outbox`` launched from the asset graph carries no push tag). Of two
    runs started together, the older one goes.
    """
    mine = context.instance.get_run_record_by_id(context.run_id)
    statuses = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]
    for record in context.instance.get_run_records(
            filters=dg.RunsFilter(tags={"dagster/partition": company}, statuses=statuses)):
        run = record.dagster_run
        pushes = run.job_name == PUSH_JOB_NAME or OUTBOX_KEY in (run.asset_selection or set())
        if run.run_id != context.run_id and pushes and (mine is None or record.create_timestamp
                                                          < mine.create_timestamp):
            return run
    return None


@dg.op(description="Say what this push will resume and send, and what waits behind a gate and why.")
def plan_push(context: dg.OpExecutionContext, qbo: QBOConnectionResource) -> PushPreview:
    """Read the company's outbox and gates; log the plan (nothing is sent here)."""
    company = _company(context)
    earlier = _earlier_push(context, company)
    if earlier is not None:
        raise dg.Failure(
            description=f"another push of {company} is in progress (run {earlier.run_id}): this run sends nothing",
            metadata={"next_step": "wait for that run; if its process died, terminate it in the UI (or let run "
                                   "monitoring fail it) and the outbox sensor starts the next push"},
            allow_retries=False)
    with company_failures(company):
        plan = preview(qbo.runtime(), company)
    for line in plan.lines():
        context.log.info("%s: %s", company, line)
    return plan


@dg.op(pool=QBO_POOL, retry_policy=QBO_RETRY_POLICY,
       description="Send the outbox to QuickBooks: resume, gate, match, batches of 30, record each answer.")
def push_outbox(context: dg.OpExecutionContext, config: PushConfig, qbo: QBOConnectionResource,
                plan: PushPreview) -> PushResult | None:
    """Push the company's outbox (:func:`qb_pipelines.sync.push.push`); a retry resumes what was in flight."""
    company = plan.company_key
    if config.dry_run:
        context.log.info("%s: dry run, nothing sent", company)
        return None
    sent: dict[str, list[int]] = defaultdict(lambda: [0, 0])

    def progress(event: dict[str, Any]) -> None:
        entity, items = str(event.get("entity")), int(event.get("items") or 0)
        sent[entity][0] += 1
        sent[entity][1] += items
        context.log.debug("%s: batch %s: %d %s items answered", company, event.get("batch"), items, entity)

    with company_failures(company):
        result = push(qbo.runtime(), company, max_batches=config.max_batches, progress=progress)
    for entity, (batches, items) in sent.items():
        context.log.info("%s: sent %d %s items in %d batches", company, items, entity, batches)
    if result.gate:
        context.log.warning("%s: nothing more was sent: %s", company, result.gate)
    context.log.info("%s: %s", company, json.dumps(result.as_dict()))
    return result


def _cancel_spare_pushes(context: dg.OpExecutionContext, runtime: Any, company: str, tenant: str) -> list[str]:
    """Cancel the company's push runs queued while this one followed, when it left nothing for them.

    The fast path asks for a run behind a running push; a following push has sent those rows
    already, and the spare run would only start a process to find nothing. None can start while
    this run is in progress (one push per company), so cancelling it races with nothing.
    """
    queued = context.instance.get_runs(filters=dg.RunsFilter(tags={PUSH_TAG: company},
                                                             statuses=[dg.DagsterRunStatus.QUEUED]))
    if not queued or any(d.waiting is None for d in due_companies(runtime, tenant_key=tenant)):
        return []
    cancelled = []
    for run in queued:
        if run.run_id != context.run_id and context.instance.run_coordinator.cancel_run(run.run_id):
            cancelled.append(run.run_id)
    if cancelled:
        context.log.info("%s: cancelled %d push runs queued meanwhile (this run sent their rows): %s", company,
                         len(cancelled), ", ".join(r[:8] for r in cancelled))
    return cancelled


@dg.op(description="Stay a little after the push: send what the app enqueues meanwhile, within a second "
                   "(holds no qbo_api pool slot; leaves on quiet, on a backlog, or when a run waits for a slot).")
def follow_outbox(context: dg.OpExecutionContext, config: FollowConfig, qbo: QBOConnectionResource,
                  result: PushResult | None) -> PushResult | None:
    """Follow the company's outbox (:func:`qb_pipelines.sync.push.follow.follow`); returns the run's counts."""
    if result is None or result.gate:  # a dry run, or nothing may be sent now
        return result
    company = result.company_key
    try:
        window = follow_window(config)
    except SettingsError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
    if window <= 0:
        return result
    runtime = qbo.runtime()
    resolved = runtime.resolve(company)
    with company_failures(company):
        followed = follow(runtime, resolved, window_s=window,
                          leave=lambda: slot_wanted(context.instance, lambda run: run.tags.get(PUSH_TAG) == company), run_id=context.run_id)
    if followed.result is not None:
        result.absorb(followed.result)
    _cancel_spare_pushes(context, runtime, company, resolved.tenant_key)
    context.log.info("%s: followed the outbox %.1f s, %d more pushes (%s), left: %s", company, followed.seconds,
                     followed.pushes, json.dumps(followed.result.as_dict()) if followed.result else "nothing new",
                     followed.left)
    return result


@dg.op(out=dg.Out(dg.Nothing), description="Record the run's figures and the backlog left on qbo/outbox.")
def record_push(context: dg.OpExecutionContext, qbo: QBOConnectionResource, result: PushResult | None):
    """The materialization of ``qbo/outbox`` for the company: this run's counts and the outbox after it."""
    company = _company(context)
    after = backlog(qbo.runtime(), company)
    for reason in after.reasons:
        if reason["status"] in ("pending", "blocked", "retrying", "review", "held") and reason["reason"]:
            context.log.info("%s: %d %s %s: %s", company, reason["rows"], reason["entity"], reason["status"],
                             reason["reason"])
    for failure in after.failures:
        context.log.warning("%s: failed %s %s (%s: %s). Next step: %s", company, failure["label"],
                            failure["app_id"], failure["code"], failure["message"], failure["next_step"])
    yield dg.Output(None, metadata=_metadata(run_metadata(result, after)))


@dg.graph_asset(
    key=OUTBOX_KEY,
    group_name=SYNC_GROUP,
    kinds={"sql"},
    partitions_def=qbo_company_partitions,
    description="The app's outbox for one company (table `qb_outbox`): materializing it pushes the waiting rows "
                "to QuickBooks and records the backlog left (waiting, held, failures, oldest waiting age).",
    tags={"qbo/direction": "app_to_qbo"},
)
def qbo_outbox() -> Any:
    return record_push(follow_outbox(push_outbox(plan_push())))


# ---------------------------------------------------------------------------------------- checks


def _check_spec(name: str, description: str) -> dg.AssetCheckSpec:
    # Partitioned like the asset, so each company keeps its own result: one company's clean push
    # must not hide another's failures. Partitioned checks are a preview feature of Dagster 1.13
    # (pinned below 1.14 in pyproject.toml); its warning is the only one and says nothing to users.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(name, asset=OUTBOX_KEY, partitions_def=qbo_company_partitions,
                                 description=description, metadata={"group": CHECKS_GROUP})


OUTBOX_CHECK_SPECS = [
    _check_spec(FAILURES_WAITING, "Fails while records QuickBooks refused (or that ran out of retries) wait for "
                                  "the app or an admin; lists them with QuickBooks' code and the next step."),
    _check_spec(OLDEST_PENDING_AGE, f"Warns when a record has waited more than {OLDEST_PENDING_WARN_S // 60} minutes "
                                    "to reach QuickBooks (a gate, a block, retries), naming it and why."),
    _check_spec(HELD_COUNT, "Records created before QuickBooks was first connected, held until an admin "
                            "chooses to push them (information)."),
]


@dg.multi_asset_check(specs=OUTBOX_CHECK_SPECS, can_subset=True, name="qbo_outbox_checks",
                      description="Failures waiting, the oldest waiting record and held records of one company.")
def qbo_outbox_checks(context: dg.AssetCheckExecutionContext,
                      qbo: QBOConnectionResource) -> Any:
    """The outbox's checks for the run's company (store reads only: no QuickBooks call)."""
    ctx = context.op_execution_context
    if not ctx.has_partition_key:
        raise dg.Failure(description="outbox checks run for one company: pick a qbo_company partition")
    company = str(ctx.partition_key)
    after = backlog(qbo.runtime(), company)
    selected = {k.name for k in context.selected_asset_check_keys}
    if FAILURES_WAITING in selected:
        listed = "; ".join(f"{f['label']} ({f['code']}: {f['message']}) -> {f['next_step']}" for f in after.failures)
        yield dg.AssetCheckResult(
            check_name=FAILURES_WAITING, passed=after.failed == 0,
            description=(f"{after.failed} records failed and wait: {listed}" if after.failed
                         else "no failed record waits"),
            metadata=_metadata({"company": company, "failed": after.failed, "review": after.review,
                                "failures": after.failures,
                                "fix": "correct the records in the app (or Settings), then Retry in Sync errors"}))
    if OLDEST_PENDING_AGE in selected:
        age = after.oldest_waiting_s or 0.0
        yield dg.AssetCheckResult(
            check_name=OLDEST_PENDING_AGE, passed=age <= OLDEST_PENDING_WARN_S, severity=dg.AssetCheckSeverity.WARN,
            description=(f"oldest waiting record: {after.oldest_waiting}, {age:.0f} s old" if after.oldest_waiting
                         else "nothing waits to be pushed"),
            metadata=_metadata({"company": company, "oldest_pending_age_s": age, "threshold_s": OLDEST_PENDING_WARN_S,
                                "oldest_pending": after.oldest_waiting or "", "backlog": after.waiting}))
    if HELD_COUNT in selected:
        held = [r for r in after.reasons if r["status"] == "held"]
        yield dg.AssetCheckResult(
            check_name=HELD_COUNT, passed=True,
            description=(f"{after.held} records created before QuickBooks was connected are held: an admin can "
                         "push them from Sync errors > Held" if after.held else "no held record"),
            metadata=_metadata({"company": company, "held": after.held,
                                "held_by_entity": {r["entity"]: r["rows"] for r in held}}))


# ------------------------------------------------------------------------------------- job, sensor


qbo_push_job = dg.define_asset_job(
    name=PUSH_JOB_NAME,
    selection=dg.AssetSelection.assets(qbo_outbox),
    description="Push one company's outbox to QuickBooks, record the backlog, check failures and waiting rows.",
    # Runs launched from the launchpad carry the company tag too, so the per-company limit holds.
    config=dg.PartitionedConfig(partitions_def=qbo_company_partitions, run_config_for_partition_key_fn=lambda _: {},
                                tags_for_partition_key_fn=lambda key: {PUSH_TAG: key}),
    run_tags={"qbo/mode": "push", "dagster/max_runtime": str(PUSH_MAX_RUNTIME_S)},
    # One process: a step process per op would add seconds of code loading to every push.
    executor_def=dg.in_process_executor,
)


def _run_key(company: str, max_id: int, last_change: datetime | None, now: datetime) -> str:
    """Same due rows, same window -> the same key: Dagster launches a re-evaluated tick's request once."""
    stamp = int(last_change.timestamp() * 1000) if last_change else 0
    return f"push:{company}:{max_id}:{stamp}:w{int(now.timestamp()) // RETRY_WINDOW_S}"


@dg.sensor(job=qbo_push_job, minimum_interval_seconds=1, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Turn outbox rows waiting to be pushed into one push run per company.")
def qbo_outbox_sensor(context: dg.SensorEvaluationContext, qbo: QBOConnectionResource) -> dg.SensorResult:
    """One push run per company with rows a push would send now, never two at once for a company.

    The run key is made of the highest due row id, the latest change among the due rows (a retry
    come due, a row an admin retried) and a :data:`RETRY_WINDOW_S` window, so a tick evaluated
    again requests nothing twice, and rows a run could not finish are asked for again a window later.
    """
    now = datetime.now(UTC)
    due = due_companies(qbo.runtime(), now)
    if not due:
        return dg.SensorResult(skip_reason="no outbox row waits to be pushed")
    partitions = set(context.instance.get_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME))
    requests: list[dg.RunRequest] = []
    skipped: list[str] = []
    for work in due:
        name = work.company_key or work.tenant_key
        if work.waiting or work.company_key is None:
            skipped.append(f"{name}: {work.rows} rows wait: {work.waiting}")
            continue
        active = context.instance.get_runs(filters=dg.RunsFilter(tags={PUSH_TAG: work.company_key},
                                                                 statuses=ACTIVE_STATUSES), limit=1)
        if active:
            skipped.append(f"{name}: push run {active[0].run_id[:8]} is {active[0].status.value.lower()}; "
                           f"{work.rows} rows go after it")
            continue
        requests.append(dg.RunRequest(
            run_key=_run_key(work.company_key, work.max_id, work.last_change, now),
            partition_key=work.company_key,
            tags={PUSH_TAG: work.company_key, "qbo/trigger": "outbox", "qbo/rows": str(work.rows)},
        ))
    if requests:
        context.log.info("push runs for %s", ", ".join(f"{r.partition_key} ({r.tags['qbo/rows']} rows)"
                                                         for r in requests))
    missing = sorted({str(r.partition_key) for r in requests} - partitions)
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[qbo_company_partitions.build_add_request(missing)] if missing else None,
        skip_reason=None if requests else "; ".join(skipped),
    )
