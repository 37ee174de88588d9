"""The demo's secrets file and the environment every demo process shares.

``<demo dir>/secrets.env`` holds the generated secrets and, once the demo has started, everything a
command run beside the demo needs to talk to it (:data:`SHELL_NAMES`: the store's URL, the token
key, the Intuit app and the emulator, ``DAGSTER_HOME``, the web app's URL). It is a shell file::

    set -a; . .demo/secrets.env; set +a
    qb-pipelines users list        # the demo's store, not ./.qb_pipelines.sqlite

Values are shell-quoted where they need it; :func:`load_secrets` reads them back.
"""

from __future__ import annotations

import os
import secrets
import shlex
from collections.abc import Mapping
from pathlib import Path

from qb_pipelines.demo.config import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, SECRET_NAMES
from qb_pipelines.devtools.processes import child_env

__all__ = ["SHELL_NAMES", "demo_environment", "load_secrets", "save_secrets", "source_command", "sqlite_url",
           "write_shell_env"]

#: What a shell beside the running demo needs (written to ``secrets.env`` at each start).
SHELL_NAMES = ("QB_DATABASE_URL", "QB_FERNET_KEY", "QB_SESSION_SECRET", "QBO_WEBHOOK_VERIFIER_TOKEN", "QBO_CLIENT_ID",
               "QBO_CLIENT_SECRET", "QBO_ENVIRONMENT", "QBO_EMULATOR_URL", "QBO_REDIRECT_URI", "DAGSTER_HOME",
               "QB_DEMO_WEB_URL")
_HEADER = ("# Demo secrets written by `qb-pipelines demo`: keep private (they decrypt the demo's tokens).\n"
           "# Talk to the running demo from a shell: set -a; . {path}; set +a\n")


def _generate(name: str) -> str:
    if name == "QB_FERNET_KEY":
        from qb_pipelines.store.crypto import generate_key

        return generate_key()
    if name == "QB_DEMO_ADMIN_PASSWORD":
        return secrets.token_urlsafe(12)
    return secrets.token_urlsafe(48)


def load_secrets(path: Path) -> tuple[dict[str, str], list[str]]:
    """The demo's secrets from ``path`` (``KEY=value`` lines), generating and saving missing ones.

    The file is written with mode 600 (only its owner reads it): it holds the key that decrypts
    the stored tokens. Keeping it across runs is what lets a restarted demo read its own store.

    Returns:
        ``(secrets, created)``: every value of :data:`SECRET_NAMES`, and the names generated now.
    """
    values = _read(path)
    created = [n for n in SECRET_NAMES if not values.get(n)]
    for name in created:
        values[name] = _generate(name)
    if created or not path.exists():
        _write(path, values)
    os.chmod(path, 0o600)
    return values, created


def _read(path: Path) -> dict[str, str]:
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                value = value.strip()
                if value[:1] in ("'", '"'):
                    parts = shlex.split(value)
                    value = parts[0] if parts else ""
                values[key.strip()] = value
    return values


def _write(path: Path, values: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    body = _HEADER.format(path=shlex.quote(str(path)))
    body += "".join(f"{k}={shlex.quote(values[k])}\n" for k in sorted(values))
    # created 600 from the start: never readable by others, not even for a moment
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(body)
    os.chmod(path, 0o600)


def write_shell_env(path: Path, env: Mapping[str, str]) -> None:
    """Add to ``secrets.env`` everything a shell needs to talk to this demo (:data:`SHELL_NAMES` from ``env``).

    The secrets and any other line already there stay; the demo's URLs and folders are rewritten
    at each start (ports may differ).
    """
    values = _read(path)
    values.update({name: env[name] for name in SHELL_NAMES if env.get(name)})
    _write(path, values)


def source_command(path: Path) -> str:
    """The shell line that loads ``secrets.env`` (what the demo prints)."""
    return f"set -a; . {shlex.quote(str(path))}; set +a"


def save_secrets(path: Path, updates: Mapping[str, str]) -> dict[str, str]:
    """Add or replace values in the secrets file (mode 600 kept); returns every value now in it."""
    values, _ = load_secrets(path)
    values.update(updates)
    _write(path, values)
    return values


def sqlite_url(path: Path) -> str:
    """An absolute SQLite URL: the children run in other folders, so a relative one would move."""
    return f"sqlite:///{path.resolve()}"


def demo_environment(
    secret_values: Mapping[str, str],
    *,
    database_url: str,
    emulator_url: str,
    web_port: int,
    dagster_home: Path,
    base: Mapping[str, str] | None = None,
    secrets_path: Path | None = None,
) -> dict[str, str]:
    """Every variable the web app, ``qb-pipelines sync`` and the Dagster definitions need.

    Read by :meth:`qb_pipelines.sync.settings.AppSettings.from_env` (store, token key, Intuit
    app, emulator), :meth:`qb_pipelines.web.config.WebSettings.from_env` (plus the session
    secret, redirect URI and verifier token) and Dagster (``DAGSTER_HOME``). The children
    import this very checkout, installed or not (``PYTHONPATH``). With ``secrets_path``, the
    shell's share of it is written there too (:func:`write_shell_env`), for commands run beside
    the demo.
    """
    env = dict(os.environ if base is None else base)
    env.update({
        "QB_DATABASE_URL": database_url,
        "QB_FERNET_KEY": secret_values["QB_FERNET_KEY"],
        "QB_SESSION_SECRET": secret_values["QB_SESSION_SECRET"],
        "QBO_WEBHOOK_VERIFIER_TOKEN": secret_values["QBO_WEBHOOK_VERIFIER_TOKEN"],
        "QBO_CLIENT_ID": EMULATOR_CLIENT_ID,
        "QBO_CLIENT_SECRET": EMULATOR_CLIENT_SECRET,
        "QBO_ENVIRONMENT": "emulator",
        "QBO_EMULATOR_URL": emulator_url,
        "QBO_REDIRECT_URI": f"http://127.0.0.1:{web_port}/oauth/callback",
        "DAGSTER_HOME": str(dagster_home),
        "QB_DEMO_WEB_URL": f"http://127.0.0.1:{web_port}",
    })
    if secrets_path is not None:
        write_shell_env(secrets_path, env)
    return child_env(env)
