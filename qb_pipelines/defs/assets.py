"""The landed QuickBooks entities: one asset per registry entity, one company per partition.

Every entity of the registry is an asset ``["qbo", <entity in snake case>]`` (``qbo/invoice``,
``qbo/journal_entry``) in group ``qbo_raw``, partitioned by company. They are ONE multi-asset
that can be subset, not 27 separate assets, because of how QuickBooks charges for reads: change
data capture returns every entity in one call, so an incremental run of any selection makes one
CDC call (plus one batch call for the few entities CDC does not cover) instead of one per entity.
Selecting a few entities in the UI (or a webhook naming them) lands just those.

What each materialization reports (``sync.ingest.EntityResult``): rows inserted, updated,
unchanged and deleted (flags, never dropped), API calls and pages, the new CDC cursor, the mode
(incremental, full, or full because the cursor fell out of CDC's 30-day look-back) and why. The
run's touched report months ride on the transactions' materializations (``touched_months``); the
report sensor re-materializes those months.

Each landing's outcome (started, finished, objects changed, ok or failed and why) is recorded in
the store's sync runs (:mod:`qb_pipelines.sync.runs`), which the admin web app's card shows.

The tenant's settings (:mod:`qb_pipelines.sync.landing_gate`) come first: a tenant that has not
completed the Setup Wizard lands nothing (the run fails at once, without retries, saying to
complete it in the admin app); an entity switched off in its settings is not fetched and its
materialization says ``skipped: sync switched off for <Entity> in the tenant's settings`` (mode
``skipped``), which is not an error. Rows landed before the switch stay.

Failure semantics: a company's partition is its own run, so one broken company fails alone and
is rerun alone. A failure that needs an admin (session expired, disconnected, switched:
:mod:`qb_pipelines.sync.failures`) fails without retries; throttling and server errors are
retried by the client, then by the retry policy.
"""


import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from pydantic import Field

from qb_pipelines.config import SettingsError
from qb_pipelines.defs.following import LANDING_FOLLOW_S, follow_webhooks, seconds_setting
from qb_pipelines.defs.partitions import qbo_company_partitions
from qb_pipelines.defs.resources import QBOConnectionResource, WarehouseResource
from qb_pipelines.defs.run_coordinator import COMPANY_TAG  # also re-exported: sensors, schedules
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.errors import QBOError
from qb_pipelines.store.locks import DEFAULT_WAIT_S
from qb_pipelines.store.warehouse import snake
from qb_pipelines.sync.companies import UnknownCompanyError
from qb_pipelines.sync.failures import needs_admin, next_step
from qb_pipelines.sync.feed import FeedRecorder
from qb_pipelines.sync.ingest import CompanyBusyError, LandResult, land
from qb_pipelines.sync.landing_gate import SetupIncompleteError, landing_gate
from qb_pipelines.sync.runs import recorded_landing

RAW_GROUP = "qbo_raw"
#: Concurrency pool of every step that calls QuickBooks (limit it in the instance's settings).
QBO_POOL = "qbo_api"
#: The incremental landing job (``qb_pipelines.defs.jobs``), whose webhook runs follow the inbox.
INCREMENTAL_JOB_NAME = "qbo_incremental_job"
INGEST_OP_NAME = "qbo_raw_entities"

#: Transient faults (throttling, 5xx, dropped connections) already retried by the client get a
#: few more chances at step level, spaced out exponentially with jitter so that many companies
#: failing together do not retry in lockstep.
QBO_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=15, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)


def entity_asset_key(entity: str) -> dg.AssetKey:
    """The asset key of a registry entity: ``qbo/<snake_case name>`` (``qbo/journal_entry``)."""
    return dg.AssetKey(["qbo", snake(registry.get(entity).name)])


ENTITY_BY_KEY: dict[dg.AssetKey, str] = {entity_asset_key(e.name): e.name for e in registry.ENTITIES}
"""Registry entity name of each raw asset key."""


def _spec(entity: registry.EntityDef) -> dg.AssetSpec:
    lines = ", ".join(entity.line_fields) or "none"
    return dg.AssetSpec(
        key=entity_asset_key(entity.name),
        description=(
            f"QuickBooks {entity.name} objects of one company ({entity.kind.value.replace('_', ' ')}), landed in "
            f"`qbo_{snake(entity.name)}` with typed columns and the raw JSON; line tables: {lines}. "
            + ("Changes arrive by CDC." if entity.cdc else "QuickBooks' CDC does not cover it: re-read in full each run.")
        ),
        group_name=RAW_GROUP,
        kinds={"quickbooks", "sql"},
        skippable=True,
        metadata={"qbo_entity": entity.name, "table": f"qbo_{snake(entity.name)}", "cdc": entity.cdc},
        tags={"qbo/kind": entity.kind.value},
    )


class IngestConfig(dg.Config):
    """Run configuration of a landing run.

    Attributes:
        full_refresh: re-read every object instead of the changes since the cursor (backfills,
            and the weekly refresh that finds the hard deletes CDC missed).
        page_size: rows per QuickBooks query page (QuickBooks allows at most 1000).
        lock_wait_s: how long to wait for another landing of the same company started outside
            this instance's run queue (the command line, a demo, another instance).
        follow_s: how long a webhook's landing stays to land the next webhooks of its company and
            entities as they come (:mod:`qb_pipelines.defs.following`).
    """

    full_refresh: bool = Field(default=False, description="Re-read everything (finds hard deletes CDC missed).")
    page_size: int = Field(default=1000, ge=1, le=1000, description="Rows per QuickBooks query page (max 1000).")
    lock_wait_s: float = Field(
        default=DEFAULT_WAIT_S, ge=0,
        description="Seconds to wait while another run (e.g. `qb-pipelines sync`) lands the same company.",
    )
    follow_s: float | None = Field(
        default=None, ge=0,
        description="A webhook's landing: seconds it stays to land the next webhooks of its company and entities "
                    "(0: none); unset: $QB_LANDING_FOLLOW_S, else 10.",
    )


def admin_failure(company: str, exc: BaseException) -> dg.Failure:
    """A failure without retries (the policy is :func:`qb_pipelines.sync.failures.needs_admin`) saying what to do."""
    return dg.Failure(
        description=f"company {company}: {exc}",
        metadata={"company": company, "error": type(exc).__name__, "next_step": next_step(exc)},
        allow_retries=False,
    )


@contextmanager
def company_failures(company: str) -> Iterator[None]:
    """Around a step's QuickBooks calls: what only an admin can fix fails at once, without retries.

    Everything else (throttling, server errors...) propagates as it is, for the retry policy.
    """
    try:
        yield
    except (UnknownCompanyError, QBOError) as exc:
        if needs_admin(exc):
            raise admin_failure(company, exc) from exc
        raise


def entity_metadata(result: LandResult, entity: str) -> dict[str, Any]:
    """Materialization metadata of one entity from a landing run."""
    er = result.entities[entity]
    meta: dict[str, Any] = {
        "company": result.company_key,
        "mode": er.mode,
        "reason": er.reason,
        "rows_inserted": er.inserted,
        "rows_updated": er.updated,
        "rows_unchanged": er.unchanged,
        "rows_deleted": er.deleted,
        "rows_inactivated": er.inactivated,
        "api_calls": er.api_calls,
        "pages": er.pages,
        "cursor": er.cursor.isoformat() if er.cursor else "",
        "run_api_calls": result.api_calls,
    }
    if er.resumed_from is not None:
        meta["resumed_from_position"] = er.resumed_from
    ent = registry.get(entity)
    if ent.is_transaction and (er.inserted or er.updated or er.deleted) and result.touched_months:
        # The run's months (LandResult does not split them per entity); the report sensor reads
        # them from whichever transaction materialization it sees first, deduplicated by run.
        meta["touched_months"] = dg.MetadataValue.json(sorted({m for _, m in result.touched_months}))
    return meta


@dg.multi_asset(
    name=INGEST_OP_NAME,
    specs=[_spec(e) for e in registry.ENTITIES],
    partitions_def=qbo_company_partitions,
    can_subset=True,
    pool=QBO_POOL,
    retry_policy=QBO_RETRY_POLICY,
    description="Land the selected QuickBooks entities of one company: one CDC call for all of them.",
)
def qbo_raw_entities(
    context: dg.AssetExecutionContext,
    config: IngestConfig,
    qbo: QBOConnectionResource,
    warehouse: WarehouseResource,
) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization]:
    """Land one company's selected entities in the warehouse, incrementally unless told otherwise.

    Calls :func:`qb_pipelines.sync.ingest.land` (plain Python) and turns its per-entity result
    into one materialization per selected entity. A webhook's landing then follows the webhook
    inbox (:mod:`qb_pipelines.defs.following`): each later landing of an entity is one more
    materialization of it (metadata ``followed``).
    """
    company = context.partition_key
    entities = [ENTITY_BY_KEY[k] for k in sorted(context.selected_asset_keys, key=lambda k: k.to_user_string())]

    def progress(event: dict[str, Any]) -> None:
        if event.get("page", 1) % 10 == 0 or event.get("mode") != "full":
            context.log.debug("%s %s: page %s, %s rows", company, event.get("entity"), event.get("page"),
                              event.get("rows_done"))

    # The tenant's settings first: nothing lands before the Setup Wizard is completed, and an
    # entity switched off is not fetched (its materialization says so; not an error).
    with company_failures(company):
        try:
            gate = landing_gate(qbo.runtime().tenant_settings, qbo.company(company), entities)
        except SetupIncompleteError as exc:
            raise dg.Failure(description=f"company {company}: {exc}",
                             metadata={"company": company, "next_step": exc.next_step}, allow_retries=False) from exc
    for entity, reason in gate.skipped.items():
        context.log.info("%s: %s", company, reason)
        yield dg.MaterializeResult(asset_key=entity_asset_key(entity),
                                   metadata={"company": company, "mode": "skipped", "reason": reason})
    entities = gate.entities
    if not entities:
        return
    runtime = qbo.runtime()
    window = _follow_window(context, config)
    since = runtime.inbox.latest_seq() if window > 0 else 0  # before the CDC call: what it covers
    result, feed = _land(context, qbo, warehouse, company, entities, config, progress)
    for entity in entities:
        yield dg.MaterializeResult(asset_key=entity_asset_key(entity), metadata=_entity_meta(result, feed, entity))
    if window > 0:
        def land_again(names: list[str]) -> Iterator[dg.AssetMaterialization]:
            try:
                allowed = landing_gate(runtime.tenant_settings, qbo.company(company), names).entities
            except SetupIncompleteError:
                allowed = []
            if not allowed:
                return
            again, again_feed = _land(context, qbo, warehouse, company, allowed, config, progress)
            for entity in allowed:
                yield dg.AssetMaterialization(asset_key=entity_asset_key(entity), partition=company,
                                              metadata={**_entity_meta(again, again_feed, entity), "followed": True})

        yield from follow_webhooks(context, runtime, qbo.company(company), entities, window, since, land_again,
                                   pool=QBO_POOL, company_tag=COMPANY_TAG, job_name=INCREMENTAL_JOB_NAME)


def _follow_window(context: dg.AssetExecutionContext, config: IngestConfig) -> float:
    """How long this run follows the webhook inbox: only a webhook's incremental landing does."""
    if config.full_refresh or context.run.tags.get("qbo/trigger") != "webhook":
        return 0.0
    if config.follow_s is not None:
        return float(config.follow_s)
    try:
        return seconds_setting("QB_LANDING_FOLLOW_S", LANDING_FOLLOW_S)
    except SettingsError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None


def _entity_meta(result: LandResult, feed: FeedRecorder, entity: str) -> dict[str, Any]:
    meta = entity_metadata(result, entity)
    if feed.wants(entity):
        meta["feed_entries"] = feed.stats.by_entity.get(entity, 0)
    return meta


def _land(context: dg.AssetExecutionContext, qbo: QBOConnectionResource, warehouse: WarehouseResource, company: str,
          entities: list[str], config: IngestConfig, progress: Any) -> tuple[LandResult, FeedRecorder]:
    """One landing of ``entities`` (recorded for the admin card), with the app's feed."""
    mode = "full" if config.full_refresh else "incremental"
    context.log.info("%s: landing %d entities (%s)", company, len(entities),
                     "full refresh" if config.full_refresh else "incremental")
    feed = FeedRecorder(qbo.runtime(), qbo.company(company))
    # The outcome (ok or failed, objects, error) is recorded for the admin card, outside land().
    with company_failures(company), recorded_landing(qbo.runtime().sync_runs, company, source="dagster", mode=mode,
                                                     run_id=context.run.run_id) as landing:
        client = qbo.client_for(company)
        try:
            result = land(client, warehouse.writer(), company, entities, full=config.full_refresh,
                          page_size=config.page_size, progress=progress, run_id=context.run.run_id,
                          lock_wait_s=config.lock_wait_s, on_wait=context.log.info, on_changes=feed)
        except CompanyBusyError as exc:
            # The bounded wait was the retry: retrying would hold a run slot and a `qbo_api` slot
            # for another wait each time. The next poll or webhook run lands what this one missed.
            raise dg.Failure(description=str(exc), metadata={"company": company, "next_step": "none needed: the "
                             "next scheduled or webhook run lands the changes; rerun after that run ends to land "
                             "them now"}, allow_retries=False) from exc
        landing.result = result
    if feed.stats.entries or feed.stats.echoes:
        context.log.info("%s: told the app %d changes (%s); %d echoes of the integration's own writes skipped",
                         company, feed.stats.entries, json.dumps(feed.stats.by_entity), feed.stats.echoes)
    context.log.info("%s: %s", company, json.dumps({k: v for k, v in result.as_dict().items() if k != "entities"}))
    return result, feed
