"""``qb-pipelines emulator ...``: serve the QBO emulator, drive it, benchmark it.

``serve`` builds an :class:`~qb_pipelines.emulator.core.Emulator` and hands it to the server;
the control subcommands (:mod:`qb_pipelines.cli.emulator_control`) are HTTP clients of its
control API; ``bench`` is :mod:`qb_pipelines.bench.emulator`. Emulator modules are imported
inside the commands: ``--help`` stays fast, and a missing module fails its command alone.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from qb_pipelines.cli.emulator_control import CONTROL_COMMANDS
from qb_pipelines.devtools.services import LISTENING_PREFIX
from qb_pipelines.devtools.signals import interrupt_on_signals
from qb_pipelines.qbo.environments import DEFAULT_EMULATOR_PORT

__all__ = ["emulator"]


@click.group()
def emulator() -> None:
    """Run the QuickBooks Online emulator and drive it through its control API."""


@emulator.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=DEFAULT_EMULATOR_PORT, show_default=True, type=int, help="TCP port to listen on.")
@click.option("--seed", type=int, default=None, help="Seed a demo company with this seed if no company exists yet.")
@click.option(
    "--data-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="SQLite file that keeps companies across restarts (in memory when absent).",
)
@click.option(
    "--clock-scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Emulator seconds per real second for token and webhook lifetimes (tests use large values).",
)
@click.option("--now", "pinned_now", default=None, metavar="ISO-DATETIME",
              help="Start the emulator's clock at this instant (e.g. 2028-03-01T08:00:00Z; no offset means "
                   "UTC); it runs on from there. The demo seed dates its year back from it.")
@click.option("--frozen-clock", is_flag=True, default=False,
              help="Emulator time stands still (only `emulator clock --advance` moves it).")
def serve(host: str, port: int, seed: int | None, data_file: str | None, clock_scale: float,
          pinned_now: str | None, frozen_clock: bool) -> None:
    """Serve QBO's v3 API, Intuit OAuth and the control API until stopped (Ctrl-C)."""
    from qb_pipelines.emulator.core import Emulator, EmulatorSettings
    from qb_pipelines.emulator.server import serve as serve_forever

    if data_file:
        Path(data_file).parent.mkdir(parents=True, exist_ok=True)
    try:
        start = datetime.fromisoformat(pinned_now.replace("Z", "+00:00")) if pinned_now else None
    except ValueError as exc:
        raise click.BadParameter(f"not an ISO date or datetime: {pinned_now}", param_hint="--now") from exc
    try:
        emu = Emulator(EmulatorSettings(data_file=data_file, seed=seed or 0, clock_scale=clock_scale, now=start,
                                        frozen_clock=frozen_clock))
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    url = f"http://{host}:{port}"
    emu.set_base_url(url)
    try:
        companies = emu.engine.companies()
        if seed is not None and not companies:
            seed_demo_company = _import_seeder()
            seed_demo_company(emu, seed=seed)
            companies = emu.engine.companies()
    except BaseException:
        emu.close()
        raise
    # Scripts and tests wait for exactly this line (see qb_pipelines.devtools.services).
    click.echo(f"{LISTENING_PREFIX}{url}")
    for company in companies:
        click.echo(f"  company {company.get('realmId')}: {company.get('name') or company.get('CompanyName', '')}")
    sys.stdout.flush()
    serve_forever(emu, host, port)


def _import_seeder() -> Callable[..., Any]:
    try:
        from qb_pipelines.emulator.seed import seed_demo_company
    except ImportError as exc:
        raise click.ClickException(
            f"cannot seed a demo company: qb_pipelines.emulator.seed is not available ({exc}). "
            "Start the emulator without --seed and create a company with `qb-pipelines emulator create-company`."
        ) from exc
    return seed_demo_company


for _command in CONTROL_COMMANDS:
    emulator.add_command(_command)


@emulator.command()
@click.option("--invoices", type=int, default=None, help="Invoices in the large company (the bench's default when absent).")
@click.option("--page-size", type=int, default=1000, show_default=True, help="MAXRESULTS of each query page.")
@click.option("--data-file", type=click.Path(dir_okay=False), default=None, help="SQLite file for the bench company.")
def bench(invoices: int | None, page_size: int, data_file: str | None) -> None:
    """Measure query throughput on Invoice pages and memory for a large company.

    The last line printed is one JSON object (``invoices_per_s``, ``peak_rss_mb``, ...).
    """
    try:
        from qb_pipelines.bench.emulator import run
    except ImportError as exc:
        raise click.ClickException(f"the emulator benchmark is not available: {exc}") from exc
    kwargs: dict[str, Any] = {"page_size": page_size, "data_file": data_file}
    if invoices is not None:
        kwargs["invoices"] = invoices
    with interrupt_on_signals():  # SIGTERM too removes the bench's temporary files
        result = run(**kwargs)
    click.echo(json.dumps(result, sort_keys=True))
