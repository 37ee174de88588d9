"""``qb-pipelines demo``: the whole product on this machine (see :mod:`qb_pipelines.demo`).

The interactive demo runs until Ctrl-C; ``--headless`` proves it end to end and exits 0 or 1.
Both run under :func:`~qb_pipelines.devtools.signals.interrupt_on_signals`, so SIGTERM stops
them exactly as Ctrl-C does: every process they started, and what those started, is stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from qb_pipelines.demo.config import DemoError
from qb_pipelines.devtools.processes import ProcessError, stop_all
from qb_pipelines.devtools.signals import interrupt_on_signals
from qb_pipelines.qbo.environments import DEFAULT_EMULATOR_PORT

__all__ = ["demo"]


@click.command()
@click.option("--headless", is_flag=True,
              help="No UI: land everything in-process, check it, prove a webhook change arrives, exit 0 or 1.")
@click.option("--port", default=DEFAULT_EMULATOR_PORT, show_default=True, type=int, help="Emulator port.")
@click.option("--dagster-port", default=3000, show_default=True, type=int, help="Dagster UI port.")
@click.option("--web-port", default=None, type=int,
              help="Admin web app port (default 8000; a free port with --headless).")
@click.option("--refapp-port", default=None, type=int,
              help="Reference app (Fieldwise) port (default 8100; a free port with --headless).")
@click.option(
    "--demo-dir",
    type=click.Path(file_okay=False),
    default=".demo",
    show_default=True,
    help="Folder for the demo's emulator data, store, secrets and Dagster instance (not used by --headless, "
    "which runs in a fresh temporary folder).",
)
def demo(headless: bool, port: int, dagster_port: int, web_port: int | None, refapp_port: int | None,
         demo_dir: str) -> None:
    """Start QuickBooks (the emulator), connect the demo company, open the admin web app and Dagster.

    The demo company is connected for the tenant `demo` and the emulator's webhooks reach the web
    app, so a change made in QuickBooks lands in the warehouse within seconds (webhook, sensor,
    run). Ctrl-C (or SIGTERM) stops everything.

    The reference app (Fieldwise) runs beside them, integrated through the records API and the
    change feed.

    With --headless: the same without the UI, in a temporary folder; every entity, report month
    and check is materialized in-process, then a customer created in QuickBooks must reach the
    warehouse through the daemon, and an invoice made in Fieldwise must reach QuickBooks and its
    payment come back. Exits 0 only when all of it worked.
    """
    with interrupt_on_signals():
        try:
            if headless:
                _headless(port, web_port, refapp_port)
                return
            from qb_pipelines.demo.ui import run_ui

            run_ui(port=port, dagster_port=dagster_port, web_port=web_port or 8000, refapp_port=refapp_port or 8100,
                   root=Path(demo_dir).resolve(), out=click.echo)
        except (DemoError, ProcessError) as exc:
            raise click.ClickException(str(exc)) from None
        finally:
            stop_all()  # nothing is left even if a step forgot to stop what it started


def _headless(port: int, web_port: int | None, refapp_port: int | None) -> None:
    from qb_pipelines.demo.headless import run_headless
    from qb_pipelines.devtools.ports import free_port
    from qb_pipelines.sync.reports import REPORTS

    report = run_headless(port=port, web_port=web_port or free_port(), refapp_port=refapp_port or free_port(),
                          out=click.echo)
    click.echo("")
    click.echo(f"entities landed:   {report.entities_landed}/{report.entities_expected}"
               + (" (every entity)" if report.entities_landed == report.entities_expected else ""))
    click.echo(f"report partitions: {report.report_partitions} ({len(REPORTS)} reports x "
               f"{report.report_partitions // len(REPORTS)} months)")
    click.echo(f"checks passed:     {report.checks_passed}/{report.checks_total}"
               + (" (every check)" if report.checks_total and report.checks_passed == report.checks_total else ""))
    if report.webhook_latency_s is not None and report.webhook_run_id:
        click.echo(f"webhook change:    arrived in the warehouse {report.webhook_latency_s:.1f} s after it was made "
                   f"(run {report.webhook_run_id})")
    else:
        click.echo("webhook change:    did NOT arrive")
    if report.payment_back_latency_s is not None:
        click.echo(f"reference app:     pushed in {report.push_latency_s:.1f} s, payment back in "
                   f"{report.payment_back_latency_s:.1f} s, {report.feed_echoes} feed echoes")
    else:
        click.echo("reference app:     the loop did NOT complete")
    click.echo(f"took:              {report.seconds:.0f} s")
    for failure in report.failures:
        click.echo(f"FAILED: {failure}", err=True)
    click.echo(json.dumps(report.as_dict(), sort_keys=True))
    if not report.ok:
        raise SystemExit(1)
