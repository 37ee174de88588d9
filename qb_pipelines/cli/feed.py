"""``qb-pipelines feed``: the change feed's signed callback (set, switch off, status, deliver) and reads.

The callback's delivery itself is :mod:`qb_pipelines.sync.feed_delivery`; ``feed deliver`` runs it
once without Dagster (scripts, cron, a quick check after setting a URL).
"""

from __future__ import annotations

import sys

import click

from qb_pipelines.cli.common import echo_json, runtime_from_env

__all__ = ["feed"]


def _when(value: object) -> str | None:
    return value.isoformat() if value is not None else None  # type: ignore[attr-defined]


def _read_secret(path: str) -> str:
    text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()  # noqa: SIM115
    return text.strip()


@click.group()
def feed() -> None:
    """The change feed: what changed in QuickBooks, for the app (cursor reads or a signed callback)."""


@feed.command("callback")
@click.argument("tenant")
@click.option("--url", required=True, help="Where to POST the feed (https://..., or http:// for a local app).")
@click.option("--secret-file", default=None, metavar="FILE|-",
              help="Read the HMAC secret (16+ characters) from FILE or stdin; a new one is generated and printed "
                   "once when omitted.")
@click.option("--from-start", is_flag=True,
              help="Deliver the whole feed from its first entry (default: only entries from now on).")
def callback(tenant: str, url: str, secret_file: str | None, from_start: bool) -> None:
    """Deliver TENANT's change feed to URL, signed with X-QBP-Signature (HMAC-SHA256 of the body)."""
    import secrets

    from qb_pipelines.store.repository import UnknownTenantError

    generated = secret_file is None
    secret = secrets.token_urlsafe(32) if generated else _read_secret(str(secret_file))
    with runtime_from_env() as runtime:
        try:
            view = runtime.feed.set_callback(tenant, url, secret, from_now=not from_start)
        except (UnknownTenantError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Tenant {tenant}: the change feed goes to {view.url} from entry {view.cursor + 1}, signed with "
               "X-QBP-Signature: sha256=<hex HMAC-SHA256 of the raw body>.")
    if generated:
        click.echo("Callback secret (shown only now: give it to the app, which verifies every delivery with it):")
        click.echo("")
        click.echo(f"  {secret}")
        click.echo("")
    click.echo(f"Switch it off with: qb-pipelines feed callback-off {tenant}")


@feed.command("callback-off")
@click.argument("tenant")
def callback_off(tenant: str) -> None:
    """Stop delivering TENANT's feed to its callback (its cursor is kept for when it is set again)."""
    from qb_pipelines.store.repository import UnknownTenantError

    with runtime_from_env() as runtime:
        try:
            if runtime.feed.callback(tenant) is None:
                raise click.ClickException(f"tenant {tenant} has no callback: nothing to switch off")
            runtime.feed.disable_callback(tenant)
        except UnknownTenantError as exc:
            raise click.ClickException(str(exc)) from None
    echo_json({"tenant": tenant, "callback": "off"})


@feed.command("status")
@click.argument("tenant")
def status(tenant: str) -> None:
    """TENANT's callback: URL, on or off, cursor, entries waiting, failed attempts and the last error."""
    from qb_pipelines.store.repository import UnknownTenantError

    with runtime_from_env() as runtime:
        try:
            view = runtime.feed.callback(tenant)
            latest = runtime.feed.latest_seq(tenant)
        except UnknownTenantError as exc:
            raise click.ClickException(str(exc)) from None
    if view is None:
        echo_json({"tenant": tenant, "callback": None, "latest_seq": latest})
        return
    echo_json({"tenant": tenant, "url": view.url, "enabled": view.enabled, "cursor": view.cursor,
               "latest_seq": latest, "waiting": max(0, latest - view.cursor), "attempts": view.attempts,
               "next_attempt_at": _when(view.next_attempt_at), "last_error": view.last_error,
               "last_delivered_at": _when(view.last_delivered_at)})


@feed.command("deliver")
@click.option("--tenant", default=None, help="Only this tenant (default: every tenant whose callback is due).")
def deliver(tenant: str | None) -> None:
    """Deliver due callbacks once, without Dagster; exits 1 when a delivery failed."""
    from qb_pipelines.store.repository import UnknownTenantError
    from qb_pipelines.sync.feed_delivery import deliver as deliver_one
    from qb_pipelines.sync.feed_delivery import deliver_due

    with runtime_from_env() as runtime:
        try:
            results = [deliver_one(runtime, tenant)] if tenant else deliver_due(runtime)
        except UnknownTenantError as exc:
            raise click.ClickException(str(exc)) from None
    echo_json([r.as_dict() for r in results])
    if any(r.failed for r in results):
        raise SystemExit(1)


@feed.command("changes")
@click.argument("tenant")
@click.option("--after", default=0, show_default=True, type=click.IntRange(min=0), help="Cursor: the last seq seen.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 1000))
def changes(tenant: str, after: int, limit: int) -> None:
    """Print TENANT's feed entries after a cursor, as GET /api/v1/tenants/TENANT/changes answers them."""
    from qb_pipelines.store.repository import UnknownTenantError

    with runtime_from_env() as runtime:
        try:
            found, next_seq = runtime.feed.read(tenant, after, limit)
        except UnknownTenantError as exc:
            raise click.ClickException(str(exc)) from None
    echo_json({"changes": [c.as_json() for c in found], "next": next_seq})
