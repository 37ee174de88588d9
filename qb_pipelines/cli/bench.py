"""``qb-pipelines bench ...``: benchmarks that print figures, the last line one JSON object."""

from __future__ import annotations

import json

import click

from qb_pipelines.demo.config import DemoError
from qb_pipelines.devtools.processes import ProcessError, stop_all
from qb_pipelines.devtools.signals import interrupt_on_signals

__all__ = ["bench_group"]


@click.group("bench")
def bench_group() -> None:
    """Benchmarks: they print figures, the last line one JSON object."""


@bench_group.command("ingest")
@click.option("--invoices", type=int, required=True, help="Invoices in the bench company (customers, items, payments in proportion).")
@click.option("--database-url", default=None, help="Warehouse URL (the targets are for PostgreSQL); temporary SQLite by default.")
@click.option("--webhook-changes", type=int, default=20, show_default=True,
              help="Changes timed from QuickBooks to the warehouse through the Dagster daemon (0 skips it).")
@click.option("--data-file", type=click.Path(dir_okay=False), default=None,
              help="Emulator SQLite file for the bench company (reused when it holds it already).")
def bench_ingest(invoices: int, database_url: str | None, webhook_changes: int, data_file: str | None) -> None:
    """Full load, incremental run and webhook-to-warehouse latency of a company of N invoices.

    Prints invoices_per_s, api_calls, peak_rss_mb, incremental_s, incremental_api_calls,
    webhook_p50_s and webhook_p95_s (and more) as the last line, one JSON object. Ctrl-C or
    SIGTERM stops it and every process it started.
    """
    from qb_pipelines.bench import ingest

    with interrupt_on_signals():
        try:
            result = ingest.run(invoices, database_url, out=click.echo, data_file=data_file)
            if webhook_changes > 0:
                from qb_pipelines.bench.webhook_latency import measure

                result.update(measure(webhook_changes, out=click.echo, database_url=database_url))
        except (DemoError, ProcessError) as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            stop_all()
    click.echo(json.dumps(result, sort_keys=True))


@bench_group.command("push")
@click.option("--invoices", type=int, required=True, help="Invoices to push (with N/10 customers and N/100 items).")
@click.option("--database-url", default=None,
              help="PostgreSQL server URL: a fresh database is created there and dropped after (the targets are "
                   "for PostgreSQL); a temporary SQLite store by default.")
@click.option("--feed-samples", type=int, default=20, show_default=True,
              help="Changes made in QuickBooks timed to their entry in the change feed.")
@click.option("--latency-samples", type=int, default=20, show_default=True,
              help="Invoices timed from the HTTP enqueue to QuickBooks, through Dagster, one a second.")
def bench_push(invoices: int, database_url: str | None, feed_samples: int, latency_samples: int) -> None:
    """Push N invoices through the records API and the push engine; time enqueue -> QBO and QBO -> feed.

    Prints objects, objects_per_min, throttled, duplicates, unthrottled_objects_per_s,
    latency_p50_s, latency_p95_s, feed_latency_p50_s, feed_latency_p95_s, echoes and peak_rss_mb
    (and more) as the last line, one JSON object. Ctrl-C or SIGTERM stops it and every process
    it started.
    """
    from qb_pipelines.bench import push

    if invoices < 1 or feed_samples < 1 or latency_samples < 1:
        raise click.UsageError("--invoices, --feed-samples and --latency-samples must be at least 1")
    with interrupt_on_signals():
        try:
            result = push.run(invoices, database_url, out=click.echo, feed_samples=feed_samples,
                              latency_samples=latency_samples)
        except (DemoError, ProcessError) as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            stop_all()
    click.echo(json.dumps(result, sort_keys=True))
