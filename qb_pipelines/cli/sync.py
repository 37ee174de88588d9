"""``qb-pipelines sync``: land one company's QuickBooks entities without Dagster (scripts, cron).

The same landing as the Dagster asset ``qbo_raw_entities`` (:func:`qb_pipelines.sync.ingest.land`);
what is printed is made for a terminal (a progress bar) and for logs (a line per page).
"""

from __future__ import annotations

import sys
from typing import Any

import click

__all__ = ["sync"]


@click.command()
@click.option("--company", "company_key", required=True, metavar="KEY",
              help="Company key '<tenant>-<realmId>' (as the Dagster partition), or a tenant key.")
@click.option("--full", is_flag=True, help="Re-read every object (finds hard deletes CDC missed) instead of CDC.")
@click.option("--entities", default=None, metavar="A,B",
              help="Comma-separated QuickBooks entities (e.g. Customer,Invoice); every entity by default.")
@click.option("--database-url", default=None, envvar="QB_DATABASE_URL", show_envvar=True,
              help="Store and warehouse URL (SQLAlchemy).")
@click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=600, show_default=True, metavar="SECONDS",
              help="How long to wait while another run lands the same company (0: fail at once).")
def sync(company_key: str, full: bool, entities: str | None, database_url: str | None, wait_s: float) -> None:
    """Land one company's QuickBooks entities in the warehouse, without Dagster (scripts, cron).

    The same landing as the Dagster asset qbo_raw_entities: incremental (CDC from the stored
    cursors) by default, a full refresh with --full or where no cursor exists yet. Prints a line
    per page, then a summary table; exits 1 with the next step to take when it cannot sync.
    Only a tenant that completed the Setup Wizard syncs, and entities switched off in its
    settings are skipped (listed, not an error). One landing per company at a time: when another run (a Dagster run, another sync) is landing
    the company, this one says so and waits for it (--wait), then lands.
    Needs QB_FERNET_KEY, QBO_CLIENT_ID, QBO_CLIENT_SECRET (and QBO_EMULATOR_URL for the emulator).
    """
    from qb_pipelines.cli.common import runtime_from_env
    from qb_pipelines.qbo import registry
    from qb_pipelines.qbo.errors import QBOError
    from qb_pipelines.sync.companies import UnknownCompanyError
    from qb_pipelines.sync.feed import FeedRecorder
    from qb_pipelines.sync.ingest import CompanyBusyError, land
    from qb_pipelines.sync.landing_gate import SetupIncompleteError, landing_gate
    from qb_pipelines.sync.runs import recorded_landing

    runtime = runtime_from_env(database_url)
    wanted = [e.strip() for e in entities.split(",") if e.strip()] if entities else None
    unknown = [e for e in wanted or [] if registry.find(e) is None]
    if unknown:  # a typo is not a failed landing: refuse it before anything is recorded
        known = ", ".join(e.name for e in registry.ENTITIES)
        raise click.ClickException(f"unknown QuickBooks entity {unknown[0]!r}; use one of: {known}")
    with runtime:
        try:
            company = runtime.resolve(company_key)
            client = runtime.client_for(company)
        except UnknownCompanyError as exc:
            known = runtime.companies()
            listed = "\n".join(f"  {c.key}  ({c.state.value})" for c in known) or "  none: connect one in the admin web app"
            raise click.ClickException(f"{exc}\nKnown companies:\n{listed}") from None
        if not company.is_connected:
            raise click.ClickException(_reconnect_message(company.key, company.state.value))
        try:  # the tenant's settings: the Setup Wizard completed, and each entity's Sync switch
            gate = landing_gate(runtime.tenant_settings, company, wanted)
        except SetupIncompleteError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"syncing {company.key} ({company.environment}, realm {company.realm_id}): "
                   + ("full refresh" if full else "incremental") + (f" of {', '.join(wanted)}" if wanted else ""))
        for entity, reason in gate.skipped.items():
            click.echo(f"  {entity}: {reason}")
        if not gate.entities:
            click.echo(f"{company.key}: nothing landed: every entity asked for is switched off in the tenant's "
                       "settings (turn Sync on in the admin app's Settings to land it)")
            return
        wanted = gate.entities
        progress = _SyncProgress(sys.stdout.isatty())
        try:
            feed = FeedRecorder(runtime, company)
            # The outcome is recorded for the admin card (Accounting Integrations), as Dagster's is.
            with recorded_landing(runtime.sync_runs, company.key, source="cli",
                                  mode="full" if full else "incremental") as landing:
                result = landing.result = land(
                    client, runtime.warehouse, company.key, wanted, full=full, progress=progress, on_changes=feed,
                    lock_wait_s=wait_s, on_wait=lambda message: click.echo(message, err=True))
        except (ValueError, CompanyBusyError) as exc:
            raise click.ClickException(str(exc)) from None
        except QBOError as exc:
            raise click.ClickException(_sync_error(company.key, exc)) from None
        finally:
            progress.close()
    _print_sync_summary(result)


def _reconnect_message(key: str, state: str) -> str:
    return (f"company {key} is not connected (state: {state.replace('_', ' ')}). Next: reconnect it in the admin "
            "web app (Accounting Integrations > Reconnect), then run this command again.")


def _sync_error(key: str, exc: Exception) -> str:
    from qb_pipelines.sync.failures import next_step

    return f"company {key}: {exc}\nNext: {next_step(exc)}."


class _SyncProgress:
    """Progress of a sync: a bar over the entities on a terminal, a line per page otherwise (logs, cron)."""

    def __init__(self, tty: bool) -> None:
        from qb_pipelines.qbo import registry

        self.tty = tty
        self.seen: list[str] = []
        self.bar: Any = None
        if tty:
            self.bar = click.progressbar(length=len(registry.ENTITIES), label="landing", show_pos=True,
                                         item_show_func=lambda item: item)
            self.bar.__enter__()

    def __call__(self, event: dict[str, Any]) -> None:
        entity = str(event.get("entity"))
        if entity not in self.seen:
            self.seen.append(entity)
            if self.bar is not None and len(self.seen) > 1:
                self.bar.update(1)  # the previous entity is done: entities land one after another
        text = (f"{entity}: {event.get('mode')}, page {event.get('page')}, +{event.get('rows', 0):,} rows "
                f"({event.get('rows_done', 0):,} so far)")
        if self.bar is not None:
            self.bar.current_item = text
            self.bar.render_progress()
        else:
            click.echo(f"  {text}")

    def close(self) -> None:
        if self.bar is not None:
            if self.seen:
                self.bar.update(1)
            self.bar.__exit__(None, None, None)


def _print_sync_summary(result: Any) -> None:
    headers = ("entity", "mode", "inserted", "updated", "deleted", "api calls", "pages")
    rows = [(name, e.mode, e.inserted, e.updated, e.deleted, e.api_calls, e.pages)
            for name, e in result.entities.items()]
    widths = [max(len(str(h)), *(len(f"{r[i]:,}" if isinstance(r[i], int) else str(r[i])) for r in rows))
              for i, h in enumerate(headers)]

    def line(values: tuple) -> str:
        cells = [f"{v:,}".rjust(w) if isinstance(v, int) else str(v).ljust(w) for v, w in zip(values, widths, strict=True)]
        return "  ".join(cells).rstrip()

    click.echo("")
    click.echo(line(headers))
    click.echo("  ".join("-" * w for w in widths))
    for row in rows:
        click.echo(line(row))
    seconds = (result.finished_at - result.started_at).total_seconds() if result.finished_at else 0.0
    click.echo(f"\n{result.company_key}: {result.inserted:,} inserted, {result.updated:,} updated, "
               f"{result.deleted:,} deleted with {result.api_calls} API calls in {seconds:.1f} s")
    if result.touched_months:
        months = sorted(m for _, m in result.touched_months)
        click.echo(f"report months touched: {', '.join(months)} (re-materialize their report partitions in Dagster)")
