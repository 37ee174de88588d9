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
@click.argument("name", required=False)
@click.option("--parent", default=None, metavar="TENANT",
              help="Make KEY another company of tenant TENANT (needs QB_COMPANIES_PER_TENANT=several).")
def tenants_create(key: str, name: str | None, parent: str | None) -> None:
    """Create a tenant (or rename it) so an admin can connect its QuickBooks company.

    With --parent, KEY is a company connection tenant of PARENT: its own card, partition,
    settings and mappings; connect it with `qb-pipelines connections add KEY ...`.
    """
    with _runtime() as runtime:
        if parent is not None and not runtime.settings.several_companies:
            raise click.ClickException(
                "--parent needs QB_COMPANIES_PER_TENANT=several: this deployment connects one company per tenant.")
        if name is None:
            parent_view = runtime.tenants.get(parent) if parent else None
            name = f"{parent_view.name} ({key})" if parent_view else key
        try:
            tenant = runtime.tenants.ensure_tenant(key, name, parent_key=parent)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
    echo_json({"key": tenant.key, "name": tenant.name, **({"parent": tenant.parent_key} if tenant.parent_key else {})})


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
    from qb_pipelines.qbo.redact import redact

    for tenant, reason in summary.errors.items():
        click.echo(redact(f"tenant {tenant}: {reason}"), err=True)
    if summary.errors:
        raise SystemExit(1)


@connections.command("add")
@click.argument("tenant")
@click.option("--realm", required=True, metavar="REALM", help="The company's realm ID (the token's company).")
@click.option("--refresh-token-file", "token_file", required=True, type=click.File("r"), metavar="FILE",
              help="File holding the refresh token, or - to read it from stdin (never on the command line).")
@click.option("--tenant-name", default=None, metavar="NAME",
              help="Name of the tenant when this command creates it (default: the key).")
def connections_add(tenant: str, realm: str, token_file: Any, tenant_name: str | None) -> None:
    """Connect TENANT to QuickBooks company REALM with a refresh token, without the browser.

    For scripts: a refresh token from Intuit's OAuth Playground, or from `qb-pipelines emulator
    tokens REALM` for the emulator. The token is refreshed once (proving it, and rotating it), the
    connecting user and the company are read as the web app's Connect does, and only the rotated
    token is stored, encrypted. A tenant that does not exist yet is created.
    """
    import re

    from qb_pipelines.sync.connections import ConnectFlowError, connect_with_refresh_token

    refresh_token = token_file.read().strip()
    if not refresh_token:
        raise click.ClickException(f"no refresh token in {token_file.name}: put the token in the file "
                                   "(or pipe it with --refresh-token-file -).")
    with _runtime() as runtime:
        if runtime.connections.get(tenant) is None:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", tenant):
                raise click.ClickException(
                    f"no tenant {tenant!r}, and it cannot be created with that key: use lower-case letters, digits, "
                    "- or _ (up to 63), or create it first with `qb-pipelines tenants create KEY NAME`.")
            runtime.tenants.ensure_tenant(tenant, (tenant_name or tenant)[:200])
        try:
            result = connect_with_refresh_token(
                runtime.connections, runtime.oauth(), runtime.client, tenant, refresh_token, realm,
                environment_name=runtime.settings.environment_name)
        except ConnectFlowError as exc:
            raise click.ClickException(f"tenant {tenant}: {exc.reason}") from None
    echo_json({"tenant": tenant, "kind": result.kind, "realm_id": result.realm_id,
               "company_name": result.company_name, "user_email": result.user_email,
               "configured": result.configured})


@click.group()
def keys() -> None:
    """Encryption keys."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new Fernet key for QB_FERNET_KEY (tokens and secrets are encrypted with it)."""
    from qb_pipelines.store.crypto import generate_key

    click.echo(generate_key())
