"""The demo's secrets file and the environment every demo process shares."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from qb_pipelines.demo.config import EMULATOR_CLIENT_ID, EMULATOR_CLIENT_SECRET, SECRET_NAMES
from qb_pipelines.devtools.processes import child_env

__all__ = ["demo_environment", "load_secrets", "save_secrets", "sqlite_url"]


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
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.strip().partition("=")
            if sep and not key.startswith("#"):
                values[key.strip()] = value.strip()
    created = [n for n in SECRET_NAMES if not values.get(n)]
    for name in created:
        values[name] = _generate(name)
    if created or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        body = "# Demo secrets written by `qb-pipelines demo`: keep private (they decrypt the demo's tokens).\n"
        body += "".join(f"{k}={values[k]}\n" for k in sorted(values))
        # created 600 from the start: never readable by others, not even for a moment
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(body)
    os.chmod(path, 0o600)
    return values, created


def save_secrets(path: Path, updates: Mapping[str, str]) -> dict[str, str]:
    """Add or replace values in the secrets file (mode 600 kept); returns every value now in it."""
    values, _ = load_secrets(path)
    values.update(updates)
    body = "# Demo secrets written by `qb-pipelines demo`: keep private (they decrypt the demo's tokens).\n"
    body += "".join(f"{k}={values[k]}\n" for k in sorted(values))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(body)
    os.chmod(path, 0o600)
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
) -> dict[str, str]:
    """Every variable the web app, ``qb-pipelines sync`` and the Dagster definitions need.

    Read by :meth:`qb_pipelines.sync.settings.AppSettings.from_env` (store, token key, Intuit
    app, emulator), :meth:`qb_pipelines.web.config.WebSettings.from_env` (plus the session
    secret, redirect URI and verifier token) and Dagster (``DAGSTER_HOME``). The children
    import this very checkout, installed or not (``PYTHONPATH``).
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
    })
    return child_env(env)
