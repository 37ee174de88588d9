"""What the commands share: JSON output, the ``--url`` option, and errors turned into next steps.

The user of these commands is a person at a terminal or a script reading the exit status, so
every failure the commands expect ends as one :class:`click.ClickException` line saying what to
do, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from qb_pipelines.qbo.emulator_control import (
    DEFAULT_EMULATOR_URL,
    EmulatorControl,
    EmulatorControlError,
    EmulatorUnreachableError,
    serve_hint,
)

__all__ = ["control_errors", "echo_json", "load_json_arg", "runtime_from_env", "show", "url_option"]


def echo_json(data: Any) -> None:
    """Print ``data`` as indented JSON."""
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def url_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--url`` option shared by every control-API command."""
    return click.option(
        "--url",
        envvar="QBO_EMULATOR_URL",
        default=DEFAULT_EMULATOR_URL,
        show_default=True,
        show_envvar=True,
        help="Base URL of a running emulator.",
    )(func)


def load_json_arg(value: str) -> Any:
    """Parse ``--data``: inline JSON, ``@path`` to a JSON file, or ``-`` for stdin."""
    if value == "-":
        value = sys.stdin.read()
    elif value.startswith("@"):
        value = Path(value[1:]).read_text()
    try:
        return json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--data") from exc


@contextmanager
def control_errors() -> Iterator[None]:
    """Turn a failed control request into a one-line error with the next step."""
    try:
        yield
    except EmulatorUnreachableError as exc:
        raise click.ClickException(
            f"no emulator at {exc.url}: {serve_hint(exc.url)}, or pass --url / set QBO_EMULATOR_URL") from exc
    except EmulatorControlError as exc:
        raise click.ClickException(str(exc)) from exc


def show(url: str, action: Callable[[EmulatorControl], Any], *, timeout: float | None = 30.0) -> None:
    """Run ``action`` on a client of the emulator at ``url`` and print its answer as JSON."""
    with control_errors(), EmulatorControl(url, timeout_s=timeout) as control:
        echo_json(action(control))


def runtime_from_env(database_url: str | None = None) -> Any:
    """The integration's runtime from the environment (``--database-url`` overriding ``QB_DATABASE_URL``).

    Raises:
        click.ClickException: a missing or invalid setting, named with what to put in it.
    """
    import os

    from qb_pipelines.config import SettingsError
    from qb_pipelines.sync.runtime import Runtime

    env = dict(os.environ)
    if database_url:
        env["QB_DATABASE_URL"] = database_url
    try:
        return Runtime.from_env(env)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
