"""``qb-pipelines push``: one push run of one company without Dagster (scripts, cron, a quick check).

The same run as the Dagster push job (:func:`qb_pipelines.sync.push.push`): resume batches left in
flight, gate, plan dependencies first, match before create, send batches of 30, record each answer.
"""

from __future__ import annotations

from typing import Any

import click

from qb_pipelines.cli.common import runtime_from_env

__all__ = ["push"]

#: The table's rows: what a push run counts, in the order a reader wants them.
_ROWS = (("created", "created in QuickBooks"), ("updated", "updated"), ("matched", "matched before create"),
         ("linked", "linked by the app's qbo_id"), ("deleted", "deleted or made inactive"), ("voided", "voided"),
         ("unchanged", "nothing to write"), ("dropped", "dropped (QuickBooks won)"),
         ("failed", "failed (see the dashboard)"), ("retrying", "retrying automatically"),
         ("blocked", "waiting on a dependency"), ("review", "waiting for a review"),
         ("waiting", "held back by a gate"), ("in_flight", "in flight (resumed next run)"),
         ("resumed", "resumed from an earlier run"), ("api_calls", "QuickBooks API calls"),
         ("batches", "batch calls"), ("throttled", "throttled (429)"), ("told_app", "feed entries for the app"))


@click.command()
@click.option("--company", "company_key", required=True, metavar="KEY",
              help="Company key '<tenant>-<realmId>' (as the Dagster partition), or a tenant key.")
@click.option("--max-batches", default=None, type=click.IntRange(min=1),
              help="Stop after this many batch calls (the rest waits for the next run).")
@click.option("--database-url", default=None, envvar="QB_DATABASE_URL", show_envvar=True,
              help="Store URL (SQLAlchemy).")
def push(company_key: str, max_batches: int | None, database_url: str | None) -> None:
    """Push one company's outbox (the app's changes) to QuickBooks once, without Dagster.

    Prints what happened per outcome; exits 1 with the reason when nothing could be sent (not
    connected, session expired, Setup Wizard not finished...). Records that fail stay in the
    admin web app's sync-errors dashboard. Needs QB_FERNET_KEY, QBO_CLIENT_ID, QBO_CLIENT_SECRET
    (and QBO_EMULATOR_URL for the emulator).
    """
    from qb_pipelines.qbo.errors import QBOError
    from qb_pipelines.sync.companies import UnknownCompanyError
    from qb_pipelines.sync.push import push as push_company

    with runtime_from_env(database_url) as runtime:
        try:
            company = runtime.resolve(company_key)
        except UnknownCompanyError as exc:
            listed = "\n".join(f"  {c.key}  ({c.state.value})" for c in runtime.companies()) \
                or "  none: connect one in the admin web app"
            raise click.ClickException(f"{exc}\nKnown companies:\n{listed}") from None
        click.echo(f"pushing {company.key} ({company.environment}, realm {company.realm_id})")
        try:
            result = push_company(runtime, company, max_batches=max_batches)
        except UnknownCompanyError as exc:
            raise click.ClickException(str(exc)) from None
        except QBOError as exc:
            from qb_pipelines.sync.failures import next_step

            raise click.ClickException(f"company {company.key}: {exc}\nNext: {next_step(exc)}.") from None
    _print(result)
    if result.gate:
        raise click.ClickException(f"nothing was sent: {result.gate}")


def _print(result: Any) -> None:
    counts = result.as_dict()
    rows = [(label, counts[key]) for key, label in _ROWS if counts.get(key)]
    width = max([len(label) for label, _ in rows] + [len("outcome")])
    click.echo("")
    click.echo(f"{'outcome'.ljust(width)}  {'count':>7}")
    click.echo(f"{'-' * width}  {'-' * 7}")
    for label, n in rows:
        click.echo(f"{label.ljust(width)}  {n:>7,}")
    click.echo(f"\n{result.company_key}: {result.written:,} written to QuickBooks, {result.failed:,} failed, "
               f"{result.review:,} to review, in {result.seconds:.1f} s")
    if result.failed or result.review or result.retrying or result.blocked:
        tenant = result.company_key.rsplit("-", 1)[0]
        click.echo(f"see them in the admin web app: /integrations/{tenant}/sync")
