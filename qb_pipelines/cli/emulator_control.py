"""The ``qb-pipelines emulator`` commands that drive a running emulator through its control API.

Each is a thin shell over :class:`~qb_pipelines.qbo.emulator_control.EmulatorControl`, so they
drive an emulator started anywhere, by anyone, as a script outside the project would: ``--url``
(or ``QBO_EMULATOR_URL``) names it, the answer is printed as JSON, and a failure exits non-zero
with the next step to take.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import click

from qb_pipelines.cli.common import load_json_arg, show, url_option

__all__ = ["CONTROL_COMMANDS"]


@click.command()
@url_option
def companies(url: str) -> None:
    """List the emulator's companies (realmId and name)."""
    show(url, lambda c: c.companies())


@click.command("create-company")
@click.argument("name")
@url_option
def create_company(name: str, url: str) -> None:
    """Create an empty company (chart of accounts, tax codes, terms) named NAME."""
    show(url, lambda c: c.create_company(name))


@click.command()
@click.argument("realm")
@url_option
def reset(realm: str, url: str) -> None:
    """Reset company REALM to a fresh company (all its data is dropped)."""
    show(url, lambda c: c.reset_company(realm))


@click.command()
@click.argument("realm")
@url_option
def tokens(realm: str, url: str) -> None:
    """Issue OAuth tokens and client credentials for REALM, skipping the browser consent."""
    show(url, lambda c: c.tokens(realm))


@click.command("seed")
@click.argument("realm")
@click.option("--invoices", type=int, required=True, help="Number of invoices to create (with customers, items, payments).")
@click.option("--seed", "seed_value", type=int, default=0, show_default=True, help="Random seed: same seed, same data.")
@url_option
def seed_company(realm: str, invoices: int, seed_value: int, url: str) -> None:
    """Seed company REALM deterministically with about N invoices and their related records."""
    # Large seeds take minutes: no client-side timeout.
    show(url, lambda c: c.seed_company(realm, invoices, seed=seed_value), timeout=None)


# Fault names of the control API (``POST /_emulator/faults`` body ``{"rates": {name: share}}``).
_FAULT_RATES: tuple[tuple[str, str, str], ...] = (
    ("--rate-429", "429", "Share of API requests answered 429 (fault 3001, throttled)."),
    ("--rate-500", "500", "Share of API requests answered 500."),
    ("--rate-503", "503", "Share of API requests answered 503."),
    ("--rate-drop", "drop", "Share of API requests whose connection is dropped without a response."),
    ("--rate-expired-token", "expired_token", "Share of API requests answered 401 as if the access token expired."),
    ("--rate-timeout-after-commit", "timeout_after_commit", "Share of writes applied but never answered."),
    ("--rate-slow", "slow", "Share of API requests delayed by --slow-delay-s (combines with the others)."),
)


def _fault_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for flag, name, help_text in reversed(_FAULT_RATES):
        func = click.option(flag, f"rate_{name}", type=float, default=None, help=help_text)(func)
    return func


def faults_body(clear: bool, rates: dict[str, float], slow_delay_s: float | None, realms: tuple[str, ...],
                next_faults: tuple[str, ...], extra: tuple[str, ...]) -> dict[str, Any]:
    """The ``POST /_emulator/faults`` body of the ``faults`` options (empty: show, change nothing)."""
    body: dict[str, Any] = {}
    if clear:
        body["clear"] = True
    if rates:
        body["rates"] = rates
    if slow_delay_s is not None:
        body["slow_delay_s"] = slow_delay_s
    if realms:
        body["scope"] = {"realms": list(realms)}
    if next_faults:
        items = []
        for item in next_faults:
            name, _, count = item.partition(":")
            if count and not count.isdigit():
                raise click.BadParameter(f"expected FAULT[:COUNT], got {item!r}", param_hint="--next")
            items.append({"fault": name, "count": int(count or 1)})
        body["next"] = items
    for item in extra:
        key, sep, raw = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=JSON, got {item!r}", param_hint="--set")
        try:
            body[key] = json.loads(raw)
        except ValueError:
            body[key] = raw
    return body


@click.command()
@_fault_options
@click.option("--slow-delay-s", type=float, default=None, help="Delay of a slow response, in seconds.")
@click.option("--realm", "realms", multiple=True, help="Limit faults to this company (repeatable; all when absent).")
@click.option("--next", "next_faults", multiple=True, metavar="FAULT[:COUNT]", help="Inject FAULT on the next COUNT requests.")
@click.option("--set", "extra", multiple=True, metavar="KEY=JSON", help="Any other key of the faults body, e.g. seed=3.")
@click.option("--clear", is_flag=True, help="Remove every injected fault first (alone: clear and exit).")
@url_option
def faults(
    slow_delay_s: float | None,
    realms: tuple[str, ...],
    next_faults: tuple[str, ...],
    extra: tuple[str, ...],
    clear: bool,
    url: str,
    **rate_options: float | None,
) -> None:
    """Show, inject or clear faults (429, 500, 503, dropped connections, expired tokens, slow answers).

    Without options, prints the current fault settings. Rates are shares of requests, 0 to 1.
    """
    rates = {key.removeprefix("rate_"): v for key, v in rate_options.items() if v is not None}
    body = faults_body(clear, rates, slow_delay_s, realms, next_faults, extra)
    show(url, lambda c: c.set_faults(body) if body else c.faults())


@click.command()
@click.argument("realm")
@url_option
def counters(realm: str, url: str) -> None:
    """Print request, throttling and metering counters for REALM."""
    show(url, lambda c: c.counters(realm))


@click.command()
@click.option("--advance", "advance_seconds", type=float, required=True, help="Seconds to move emulator time forward.")
@url_option
def clock(advance_seconds: float, url: str) -> None:
    """Move the emulator's clock forward (expire tokens, age CDC windows, fire webhook retries)."""
    show(url, lambda c: c.advance_clock(advance_seconds))


@click.command()
@click.argument("realm")
@click.argument("entity")
@click.argument("operation")
@click.option("--data", "data", default="{}", show_default=True, help="Entity body as JSON, @file.json, or - for stdin.")
@click.option("--from-id", default=None, help="merge: the Id merged away.")
@click.option("--into-id", default=None, help="merge: the Id that remains.")
@click.option("--send-to", default=None, help="send: the email address the document is sent to.")
@url_option
def act(
    realm: str,
    entity: str,
    operation: str,
    data: str,
    from_id: str | None,
    into_id: str | None,
    send_to: str | None,
    url: str,
) -> None:
    """Act as a QuickBooks user in REALM: OPERATION on ENTITY.

    OPERATION is create, update, delete, void, inactivate, merge or send. The change is made as
    if in the QuickBooks UI, so it shows in CDC and webhooks. Example:

    \b
    qb-pipelines emulator act 9341452000007919 Customer create --data '{"DisplayName": "Acme"}'
    """
    body = load_json_arg(data)
    show(url, lambda c: c.act(realm, entity, operation, body, from_id=from_id, into_id=into_id, send_to=send_to))


#: Added to the ``emulator`` group by :mod:`qb_pipelines.cli.emulator`.
CONTROL_COMMANDS = (companies, create_company, reset, tokens, seed_company, faults, counters, clock, act)
