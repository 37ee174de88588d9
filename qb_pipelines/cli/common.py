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

__all__ = ["CliGroup", "announce_store", "control_errors", "echo_json", "friendly_errors", "load_json_arg",
           "runtime_from_env", "show", "url_option"]


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

    Says on stderr which database it opens when no URL was given (the default SQLite file).

    Raises:
        click.ClickException: a missing or invalid setting, named with what to put in it.
    """
    import os

    from qb_pipelines.config import SettingsError
    from qb_pipelines.sync.runtime import Runtime

    env = dict(os.environ)
    if database_url:
        env["QB_DATABASE_URL"] = database_url
    announce_store(env)
    try:
        return Runtime.from_env(env)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def announce_store(env: Any = None) -> None:
    """One stderr line naming the store when ``QB_DATABASE_URL`` is not set (the default SQLite file).

    A command run in another folder than the deployment's would otherwise silently open (and
    create) another, empty store.
    """
    import os

    from qb_pipelines.store.db import DATABASE_URL_ENV_VAR, default_url

    env = os.environ if env is None else env
    if not (env.get(DATABASE_URL_ENV_VAR) or "").strip():
        click.echo(f"using the store {default_url()} ({DATABASE_URL_ENV_VAR} is not set; "
                   "export it to use another database)", err=True)


def _database_hint() -> str:
    return "set QB_DATABASE_URL to sqlite:////path/to/store.sqlite or postgresql://user@host:5432/dbname"


def _shown_url() -> str:
    """The store's URL from the environment, password hidden."""
    import os

    url = (os.environ.get("QB_DATABASE_URL") or "").strip()
    if not url:
        return "the default store"
    try:
        import sqlalchemy as sa

        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "QB_DATABASE_URL"


def describe_setup_error(exc: BaseException) -> str | None:
    """One line with the next step for a configuration failure, or ``None`` when ``exc`` is not one."""
    from sqlalchemy import exc as sa_exc

    from qb_pipelines.config import SettingsError
    from qb_pipelines.store.crypto import DecryptionError

    if isinstance(exc, SettingsError | DecryptionError):
        return str(exc)
    if isinstance(exc, sa_exc.NoSuchModuleError | sa_exc.ArgumentError):
        return f"QB_DATABASE_URL is not a database URL this app can open ({exc}): {_database_hint()}."
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        lowered = reason.lower()
        if "does not exist" in lowered and "database" in lowered:
            step = "create the database (e.g. `createdb NAME`) or fix the name in QB_DATABASE_URL"
        elif "refused" in lowered or "could not connect" in lowered or "timeout" in lowered:
            step = "start the database server or fix the host and port in QB_DATABASE_URL"
        elif "unable to open database file" in lowered:
            step = "check that the SQLite file's folder exists and is writable, or fix QB_DATABASE_URL"
        else:
            step = f"check QB_DATABASE_URL ({_database_hint()})"
        return f"cannot open the store at {_shown_url()}: {reason[:200]}. Next: {step}."
    return None


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Turn configuration failures into one line with the next step, and keep tokens out of any error shown.

    Wrapped around every command by :class:`CliGroup`: a wrong ``QB_DATABASE_URL`` (unknown scheme,
    closed port, missing database, a SQLite folder that does not exist), a malformed
    ``QB_FERNET_KEY`` or a stored secret that cannot be decrypted end as ``Error: ...`` and exit 1.
    """
    from qb_pipelines.qbo.redact import redact

    try:
        yield
    except click.ClickException as exc:
        exc.message = redact(exc.message) or ""
        raise
    except (click.exceptions.Exit, click.exceptions.Abort, KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:
        line = describe_setup_error(exc)
        if line is None:
            raise
        raise click.ClickException(redact(line) or "") from None


class CliGroup(click.Group):
    """The top-level group: token redaction on every log record, setup errors as one line."""

    def invoke(self, ctx: click.Context) -> Any:
        from qb_pipelines.qbo.redact import install_redaction

        install_redaction("qb_pipelines", "uvicorn", "uvicorn.error", "uvicorn.access", "dagster")
        with friendly_errors():
            return super().invoke(ctx)
