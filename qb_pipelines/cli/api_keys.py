"""``qb-pipelines api-keys``: the records API's per-tenant keys (create, list, revoke).

A key is shown once, when it is created; the store keeps its SHA-256 and a short prefix
(``qbk_AbCdEfGh``) that lists show and ``revoke`` takes.
"""

from __future__ import annotations

import click

from qb_pipelines.cli.common import echo_json, runtime_from_env

__all__ = ["api_keys"]

#: A revoke needs the whole listed prefix ("qbk_" and 8 characters): a shorter one could match every key.
_PREFIX_LEN = 12


def _unknown_tenant(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group("api-keys")
def api_keys() -> None:
    """API keys of the records API (one tenant each; shown once, stored hashed)."""


@api_keys.command("create")
@click.argument("tenant")
@click.option("--name", default=None, help="What the key is for (e.g. 'field app production').")
@click.option("--quiet", "-q", is_flag=True, help="Print the key alone (for scripts).")
def create(tenant: str, name: str | None, quiet: bool) -> None:
    """Create an API key for TENANT and print it once: store it in the app's secrets now."""
    from qb_pipelines.store.repository import UnknownTenantError

    with runtime_from_env() as runtime:
        try:
            made = runtime.api_keys.create(tenant, name)
        except UnknownTenantError as exc:
            raise _unknown_tenant(exc) from None
    if quiet:
        click.echo(made.key)
        return
    click.echo(f"API key for tenant {tenant} ({made.view.prefix}...{f', {name}' if name else ''}). It is shown "
               "only now: store it in the app's secrets.")
    click.echo("")
    click.echo(f"  {made.key}")
    click.echo("")
    click.echo("Send it with every request to the records API, for example:")
    click.echo(f"  curl -H 'Authorization: Bearer {made.key}' \\")
    click.echo(f"       https://<admin web app>/api/v1/tenants/{tenant}/changes?after=0")
    click.echo(f"Revoke it with: qb-pipelines api-keys revoke {tenant} {made.view.prefix}")


@api_keys.command("list")
@click.argument("tenant")
def list_keys(tenant: str) -> None:
    """List TENANT's keys (prefix, name, created, last used, revoked), never the keys."""
    from qb_pipelines.store.repository import UnknownTenantError

    def when(value: object) -> str | None:
        return value.isoformat() if value is not None else None  # type: ignore[attr-defined]

    with runtime_from_env() as runtime:
        try:
            keys = runtime.api_keys.list_for(tenant)
        except UnknownTenantError as exc:
            raise _unknown_tenant(exc) from None
    echo_json([{"prefix": k.prefix, "name": k.name, "created_at": when(k.created_at),
                "last_used_at": when(k.last_used_at), "revoked_at": when(k.revoked_at),
                "active": k.revoked_at is None} for k in keys])


@api_keys.command("revoke")
@click.argument("tenant")
@click.argument("prefix")
def revoke(tenant: str, prefix: str) -> None:
    """Revoke TENANT's key whose prefix is PREFIX (as `api-keys list` shows it); it stops working at once."""
    from qb_pipelines.store.repository import UnknownTenantError

    prefix = prefix.strip()
    if len(prefix) < _PREFIX_LEN:
        raise click.BadParameter(f"give the whole prefix `api-keys list {tenant}` shows (like qbk_AbCdEfGh)",
                                 param_hint="PREFIX")
    with runtime_from_env() as runtime:
        try:
            revoked = runtime.api_keys.revoke(tenant, prefix)
        except UnknownTenantError as exc:
            raise _unknown_tenant(exc) from None
    if not revoked:
        raise click.ClickException(f"no active key of tenant {tenant} starts with {prefix[:_PREFIX_LEN]}: "
                                   f"see `qb-pipelines api-keys list {tenant}`")
    echo_json({"tenant": tenant, "prefix": prefix[:_PREFIX_LEN], "revoked": revoked})
