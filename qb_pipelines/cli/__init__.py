"""The ``qb-pipelines`` command line: the emulator, its control API, the demo, sync and benchmarks.

Everything here is a thin shell, one module per command group:

* :mod:`~qb_pipelines.cli.emulator` (``emulator serve``, ``emulator bench``) and
  :mod:`~qb_pipelines.cli.emulator_control` (the other ``emulator`` subcommands: HTTP clients of
  the emulator's control API, so they drive an emulator started anywhere, by anyone);
* :mod:`~qb_pipelines.cli.demo` (``demo``: the orchestration lives in :mod:`qb_pipelines.demo`);
* :mod:`~qb_pipelines.cli.sync` (``sync``: one company landed without Dagster) and
  :mod:`~qb_pipelines.cli.push` (``push``: one company's outbox pushed without Dagster);
* :mod:`~qb_pipelines.cli.api_keys` (``api-keys``: the records API's keys) and
  :mod:`~qb_pipelines.cli.feed` (``feed``: the change feed's signed callback);
* :mod:`~qb_pipelines.cli.bench` (``bench ingest``: :mod:`qb_pipelines.bench`);
* :mod:`~qb_pipelines.cli.admin` (``web``, ``users``, ``tenants``, ``connections``, ``keys``).

Commands that start processes (``demo``, ``bench ingest``) supervise them
(:mod:`qb_pipelines.devtools`): however the command ends -- done, failed, Ctrl-C, SIGTERM, or a
child dying first -- every process it started, and every process those started, is stopped.
Heavy modules are imported inside the commands, so ``qb-pipelines --help`` stays fast.
"""

from __future__ import annotations

import click

from qb_pipelines.cli.admin import connections, keys, tenants, users, web
from qb_pipelines.cli.api_keys import api_keys
from qb_pipelines.cli.bench import bench_group
from qb_pipelines.cli.common import CliGroup
from qb_pipelines.cli.demo import demo
from qb_pipelines.cli.emulator import emulator
from qb_pipelines.cli.feed import feed
from qb_pipelines.cli.push import push
from qb_pipelines.cli.reference_app import reference_app
from qb_pipelines.cli.sync import sync

__all__ = ["cli", "main"]


@click.group(cls=CliGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """qb_pipelines: a Dagster-native QuickBooks Online integration and its QBO emulator."""


for _command in (emulator, demo, sync, push, bench_group, web, users, tenants, connections, keys, api_keys,
                 feed, reference_app):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point (``qb-pipelines``)."""
    cli(prog_name="qb-pipelines")
