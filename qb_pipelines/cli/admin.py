"""The admin side: the web app, its users, tenants, token refresh and encryption keys.

``qb-pipelines web``, ``users``, ``tenants``, ``connections`` and ``keys``: thin shells over
:mod:`qb_pipelines.web` and :mod:`qb_pipelines.store`, imported inside each command.
"""

from __future__ import annotations

from typing import Any

import click

from qb_pipelines.cli.common import announce_store, echo_json, runtime_from_env

__all__ = ["connections", "keys", "tenants", "users", "web"]


def _store_session_factory() -> Any:
    """The integration store (``QB_DATABASE_URL``), migrated to the latest schema."""
    from qb_pipelines.store.db import make_engine, migrate, session_factory

    announce_store()
    engine = make_engine()
    migrate(engine)
    return session_factory(engine)


def _runtime() -> Any:
    """The integration's runtime from the environment, or one clear line naming the missing setting."""
    return runtime_from_env()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port to listen on.")
def web(host: str, port: int) -> None:
    """Serve the admin web app (connections, settings, sync errors)."""
    from qb_pipelines.config import SettingsError
    from qb_pipelines.web.app import serve

    announce_store()
    try:
        serve(host, port)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def users() -> None:
    """Admin web app users."""


@users.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "viewer"]), default="admin", show_default=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
              help="At least 8 characters (prompted when omitted).")
def users_create(email: str, role: str, password: str) -> None:
    """Create a user who can sign in to the admin web app (passwords hashed with argon2id)."""
    from qb_pipelines.store.users import AdminUserStore, UserError

    try:
        user = AdminUserStore(_store_session_factory()).create(email, password, role)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    echo_json({"email": user.email, "role": str(user.role)})


@users.command("list")
def users_list() -> None:
    """List admin web app users (never their passwords)."""
    from qb_pipelines.store.users import AdminUserStore

    echo_json([{"email": u.email, "role": str(u.role)} for u in AdminUserStore(_store_session_factory()).list()])


@users.command("unlock")
@click.argument("email")
@click.option("--address", default=None, metavar="IP",
              help="Also unlock this client address (locked after 20 failed sign-ins in 15 minutes).")
def users_unlock(email: str, address: str | None) -> None:
    """Let a user locked out by failed sign-ins (10 in 15 minutes) try again now."""
    from qb_pipelines.store.signin_throttle import SigninThrottleStore
    from qb_pipelines.store.users import AdminUserStore, UnknownUserError

    sessions = _store_session_factory()
    user = AdminUserStore(sessions).get(email)
    if user is None:
        raise click.ClickException(str(UnknownUserError(f"No user with the e-mail {email.strip().lower()}: "
                                                         "see `qb-pipelines users list`.")))
    found = SigninThrottleStore(sessions).unlock(user.email, address)
    echo_json({"email": user.email, "unlocked": found, **({"address": address} if address else {})})


@users.command("remove")
@click.argument("email")
def users_remove(email: str) -> None:
    """Delete a user; every session they have in the admin web app ends at once."""
    from qb_pipelines.store.users import AdminUserStore, UserError

    try:
        AdminUserStore(_store_session_factory()).remove(email)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None
    echo_json({"email": email.strip().lower(), "removed": True})


@click.group()
def tenants() -> None:
    """Tenants of the app: each connects its own QuickBooks company."""


@tenants.command("create")
@click.argument("key")
@click.argument("name")
def tenants_create(key: str, name: str) -> None:
    """Create a tenant (or rename it) so an admin can connect its QuickBooks company."""
    with _runtime() as runtime:
        tenant = runtime.tenants.ensure_tenant(key, name)
    echo_json({"key": tenant.key, "name": tenant.name})


@click.group()
def connections() -> None:
    """QuickBooks connections."""


@connections.command("refresh")
@click.option("--within-minutes", default=10, show_default=True, type=int,
              help="Refresh access tokens that lapse within this many minutes.")
def connections_refresh(within_minutes: int) -> None:
    """Refresh tokens before they lapse; mark connections Intuit refuses as session expired."""
    from datetime import timedelta

    from qb_pipelines.sync.connections import refresh_due

    with _runtime() as runtime:
        summary = refresh_due(runtime.connections, runtime.oauth, timedelta(minutes=within_minutes))
    echo_json(summary.as_dict())
    for tenant, reason in summary.errors.items():
        click.echo(f"tenant {tenant}: {reason}", err=True)
    if summary.errors:
        raise SystemExit(1)


@click.group()
def keys() -> None:
    """Encryption keys."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new Fernet key for QB_FERNET_KEY (tokens and secrets are encrypted with it)."""
    from qb_pipelines.store.crypto import generate_key

    click.echo(generate_key())
