"""The ``qb-pipelines`` command line: the emulator, its control API, and the demo.

Everything here is a thin shell. ``emulator serve`` builds an :class:`Emulator` and hands it
to the server; the other ``emulator`` subcommands are HTTP clients of the emulator's control
API (``/_emulator/...``), so they drive an emulator started anywhere, by anyone, exactly as a
script or a tool outside the project would. ``demo`` wires the whole product together (the
orchestration lives in :mod:`qb_pipelines.demo`): the emulator, the admin web app and Dagster as
child processes, stopped on Ctrl-C. ``sync`` lands one company without Dagster
(:func:`qb_pipelines.sync.ingest.land`), and ``bench ingest`` measures landing and webhook latency.

Emulator modules are imported inside the commands: ``qb-pipelines --help`` and the control
clients stay fast, and a command whose module is missing fails alone with a clear message.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import requests

DEFAULT_EMULATOR_URL = "http://127.0.0.1:8765"
LISTENING_PREFIX = "QBO emulator listening on "
# Seed of the demo company: fixed, so every demo shows the same books.
DEMO_SEED = 7


def main() -> None:
    """Console-script entry point (``qb-pipelines``)."""
    cli(prog_name="qb-pipelines")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """qb_pipelines: a Dagster-native QuickBooks Online integration and its QBO emulator."""


# --------------------------------------------------------------------------------------------
# Control API client
# --------------------------------------------------------------------------------------------


def _serve_hint(url: str) -> str:
    port = url.rstrip("/").rsplit(":", 1)[-1] if url.count(":") >= 2 else "8765"
    return f"start one with `qb-pipelines emulator serve --port {port}`, or pass --url / set QBO_EMULATOR_URL"


class ControlClient:
    """A minimal client of the emulator's control API (``{url}/_emulator/...``).

    Errors become :class:`click.ClickException` with the next step to take, because the user
    of these commands is a person at a terminal or a shell script reading the exit status.
    """

    def __init__(self, url: str, timeout: float | None = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = requests.Session()

    def call(self, method: str, path: str, body: Any = None, *, timeout: float | None = -1.0) -> Any:
        """Send one control request and return its decoded JSON (or text) body."""
        target = f"{self.url}/_emulator/{path.lstrip('/')}"
        try:
            resp = self.session.request(
                method,
                target,
                json=body,
                headers={"Accept": "application/json"},
                timeout=self.timeout if timeout == -1.0 else timeout,
            )
        except requests.ConnectionError as exc:
            raise click.ClickException(f"no emulator at {self.url}: {_serve_hint(self.url)}") from exc
        except requests.Timeout as exc:
            raise click.ClickException(
                f"the emulator at {self.url} did not answer {method} {target} in time; "
                "check it is running and not overloaded"
            ) from exc
        try:
            data: Any = resp.json()
        except ValueError:
            data = resp.text
        if resp.status_code == 404 and "/companies/" in target:
            raise click.ClickException(
                f"{method} {target} answered 404: {_short(data)}\n"
                "The company may not exist here: list them with `qb-pipelines emulator companies`."
            )
        if resp.status_code >= 400:
            raise click.ClickException(f"{method} {target} answered {resp.status_code}: {_short(data)}")
        return data


def _short(data: Any) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    return text if len(text) < 2000 else text[:2000] + "..."


def _echo_json(data: Any) -> None:
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


def _load_json_arg(value: str) -> Any:
    """Parse ``--data``: inline JSON, ``@path`` to a JSON file, or ``-`` for stdin."""
    if value == "-":
        value = sys.stdin.read()
    elif value.startswith("@"):
        value = Path(value[1:]).read_text()
    try:
        return json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--data") from exc


# --------------------------------------------------------------------------------------------
# qb-pipelines emulator ...
# --------------------------------------------------------------------------------------------


@cli.group()
def emulator() -> None:
    """Run the QuickBooks Online emulator and drive it through its control API."""


@emulator.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8765, show_default=True, type=int, help="TCP port to listen on.")
@click.option("--seed", type=int, default=None, help="Seed a demo company with this seed if no company exists yet.")
@click.option(
    "--data-file",
    type=click.Path(dir_okay=False),
    default=None,
    help="SQLite file that keeps companies across restarts (in memory when absent).",
)
@click.option(
    "--clock-scale",
    type=float,
    default=1.0,
    show_default=True,
    help="Emulator seconds per real second for token and webhook lifetimes (tests use large values).",
)
def serve(host: str, port: int, seed: int | None, data_file: str | None, clock_scale: float) -> None:
    """Serve QBO's v3 API, Intuit OAuth and the control API until stopped (Ctrl-C)."""
    from qb_pipelines.emulator.core import Emulator, EmulatorSettings
    from qb_pipelines.emulator.server import serve as serve_forever

    if data_file:
        Path(data_file).parent.mkdir(parents=True, exist_ok=True)
    emu = Emulator(EmulatorSettings(data_file=data_file, seed=seed or 0, clock_scale=clock_scale))
    url = f"http://{host}:{port}"
    emu.set_base_url(url)
    try:
        companies = emu.engine.companies()
        if seed is not None and not companies:
            seed_demo_company = _import_seeder()
            seed_demo_company(emu, seed=seed)
            companies = emu.engine.companies()
    except BaseException:
        emu.close()
        raise
    # Scripts and tests wait for exactly this line (see qb_pipelines_tests/test_cli.py).
    click.echo(f"{LISTENING_PREFIX}{url}")
    for company in companies:
        click.echo(f"  company {company.get('realmId')}: {company.get('name') or company.get('CompanyName', '')}")
    sys.stdout.flush()
    serve_forever(emu, host, port)


def _import_seeder() -> Callable[..., Any]:
    try:
        from qb_pipelines.emulator.seed import seed_demo_company
    except ImportError as exc:
        raise click.ClickException(
            f"cannot seed a demo company: qb_pipelines.emulator.seed is not available ({exc}). "
            "Start the emulator without --seed and create a company with `qb-pipelines emulator create-company`."
        ) from exc
    return seed_demo_company


@emulator.command()
@url_option
def companies(url: str) -> None:
    """List the emulator's companies (realmId and name)."""
    _echo_json(ControlClient(url).call("GET", "companies"))


@emulator.command("create-company")
@click.argument("name")
@url_option
def create_company(name: str, url: str) -> None:
    """Create an empty company (chart of accounts, tax codes, terms) named NAME."""
    _echo_json(ControlClient(url).call("POST", "companies", {"name": name}))


@emulator.command()
@click.argument("realm")
@url_option
def reset(realm: str, url: str) -> None:
    """Reset company REALM to a fresh company (all its data is dropped)."""
    _echo_json(ControlClient(url).call("POST", f"companies/{realm}/reset"))


@emulator.command()
@click.argument("realm")
@url_option
def tokens(realm: str, url: str) -> None:
    """Issue OAuth tokens and client credentials for REALM, skipping the browser consent."""
    _echo_json(ControlClient(url).call("POST", f"companies/{realm}/tokens"))


@emulator.command("seed")
@click.argument("realm")
@click.option("--invoices", type=int, required=True, help="Number of invoices to create (with customers, items, payments).")
@click.option("--seed", "seed_value", type=int, default=0, show_default=True, help="Random seed: same seed, same data.")
@url_option
def seed_company(realm: str, invoices: int, seed_value: int, url: str) -> None:
    """Seed company REALM deterministically with about N invoices and their related records."""
    # Large seeds take minutes: no client-side timeout.
    _echo_json(
        ControlClient(url, timeout=None).call("POST", f"companies/{realm}/seed", {"invoices": invoices, "seed": seed_value})
    )


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


@emulator.command()
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
    client = ControlClient(url)
    body: dict[str, Any] = {}
    if clear:
        body["clear"] = True
    rates = {key.removeprefix("rate_"): v for key, v in rate_options.items() if v is not None}
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
    if not body:
        _echo_json(client.call("GET", "faults"))
        return
    _echo_json(client.call("POST", "faults", body))


@emulator.command()
@click.argument("realm")
@url_option
def counters(realm: str, url: str) -> None:
    """Print request, throttling and metering counters for REALM."""
    _echo_json(ControlClient(url).call("GET", f"companies/{realm}/counters"))


@emulator.command()
@click.option("--advance", "advance_seconds", type=float, required=True, help="Seconds to move emulator time forward.")
@url_option
def clock(advance_seconds: float, url: str) -> None:
    """Move the emulator's clock forward (expire tokens, age CDC windows, fire webhook retries)."""
    _echo_json(ControlClient(url).call("POST", "clock", {"advance_seconds": advance_seconds}))


@emulator.command()
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
    request: dict[str, Any] = {"entity": entity, "operation": operation, "body": _load_json_arg(data)}
    extras = {"from_id": from_id, "into_id": into_id, "send_to": send_to}
    request.update({k: v for k, v in extras.items() if v is not None})
    _echo_json(ControlClient(url).call("POST", f"companies/{realm}/act", request))


@emulator.command()
@click.option("--invoices", type=int, default=None, help="Invoices in the large company (the bench's default when absent).")
@click.option("--page-size", type=int, default=1000, show_default=True, help="MAXRESULTS of each query page.")
@click.option("--data-file", type=click.Path(dir_okay=False), default=None, help="SQLite file for the bench company.")
def bench(invoices: int | None, page_size: int, data_file: str | None) -> None:
    """Measure query throughput on Invoice pages and memory for a large company.

    The last line printed is one JSON object (``invoices_per_s``, ``peak_rss_mb``, ...).
    """
    try:
        from qb_pipelines.emulator.bench import run
    except ImportError as exc:
        raise click.ClickException(f"the emulator benchmark is not available: {exc}") from exc
    kwargs: dict[str, Any] = {"page_size": page_size, "data_file": data_file}
    if invoices is not None:
        kwargs["invoices"] = invoices
    result = run(**kwargs)
    click.echo(json.dumps(result, sort_keys=True))


# --------------------------------------------------------------------------------------------
# qb-pipelines demo
# --------------------------------------------------------------------------------------------


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing accepts connections on ``host:port`` and we may bind it."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


@dataclass
class EmulatorProcess:
    """An emulator running as a child process (``qb-pipelines emulator serve``).

    Attributes:
        url: its base URL, as printed on its "listening" line.
        proc: the child process.
        output: lines it printed so far (kept for error messages).
    """

    url: str
    proc: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def stop(self, timeout: float = 20.0) -> None:
        """Stop gracefully (SIGTERM lets it close its data file), then kill if it hangs."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def run_emulator_process(
    port: int,
    *,
    host: str = "127.0.0.1",
    seed: int | None = None,
    data_file: str | None = None,
    startup_timeout: float = 300.0,
) -> Iterator[EmulatorProcess]:
    """Start ``qb-pipelines emulator serve`` as a child process; stop it on exit.

    Waits until the child prints its listening line and answers ``GET /_emulator/companies``.
    The timeout is generous because seeding a demo company happens before the line is printed.

    Raises:
        click.ClickException: the port is taken, or the emulator exited or never answered.
    """
    if not port_is_free(port, host):
        raise click.ClickException(
            f"port {port} on {host} is in use (an emulator from an earlier run?): stop it or choose another --port"
        )
    cmd = [sys.executable, "-m", "qb_pipelines.cli", "emulator", "serve", "--host", host, "--port", str(port)]
    if seed is not None:
        cmd += ["--seed", str(seed)]
    if data_file:
        cmd += ["--data-file", data_file]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1, env=_child_env()
    )
    running = EmulatorProcess(url=f"http://{host}:{port}", proc=proc)
    ready = threading.Event()

    def pump() -> None:
        # Forward the child's output (warnings, tracebacks) and spot its listening line.
        assert proc.stdout is not None
        for line in proc.stdout:
            running.output.append(line.rstrip("\n"))
            if line.startswith(LISTENING_PREFIX):
                ready.set()
            elif not line.startswith("  company "):
                click.echo(f"[emulator] {line.rstrip()}", err=True)
        ready.set()

    threading.Thread(target=pump, name="emulator-output", daemon=True).start()
    try:
        _wait_until_answering(running, ready, startup_timeout)
        yield running
    finally:
        running.stop()


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    # The child must import this very checkout, installed or not.
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _wait_until_answering(running: EmulatorProcess, ready: threading.Event, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    ready.wait(timeout)
    while time.monotonic() < deadline:
        if running.proc.poll() is not None:
            break
        try:
            if requests.get(f"{running.url}/_emulator/companies", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    running.stop()
    raise click.ClickException(
        f"the emulator did not start on {running.url} (exit code {running.proc.returncode}); "
        "its output is above, prefixed [emulator]"
    )


@dataclass
class DemoCheck:
    """What ``demo --headless`` verified about the running emulator."""

    url: str
    realm: str
    company_name: str
    counts: dict[str, int]
    token_keys: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "emulator_url": self.url,
            "realmId": self.realm,
            "company_name": self.company_name,
            "counts": self.counts,
            "token_keys": self.token_keys,
        }


def check_emulator(url: str) -> DemoCheck:
    """Check a running emulator answers as QBO: companies, tokens, and v3 queries with those tokens.

    Raises:
        click.ClickException: any step fails (the message names the step).
    """
    client = ControlClient(url)
    companies = client.call("GET", "companies")
    if not isinstance(companies, list) or not companies:
        raise click.ClickException(f"the emulator at {url} has no company; expected the seeded demo company")
    realm = str(companies[0]["realmId"])
    creds = client.call("POST", f"companies/{realm}/tokens")
    missing = {"access_token", "refresh_token", "client_id", "client_secret"} - set(creds)
    if missing:
        raise click.ClickException(f"POST /_emulator/companies/{realm}/tokens lacks {sorted(missing)}")
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {creds['access_token']}", "Accept": "application/json"})

    def query(sql: str) -> dict[str, Any]:
        resp = session.get(
            f"{url}/v3/company/{realm}/query", params={"query": sql, "minorversion": "75"}, timeout=30
        )
        if resp.status_code != 200:
            raise click.ClickException(f"query {sql!r} answered {resp.status_code}: {_short(resp.text)}")
        return resp.json()["QueryResponse"]

    info = query("select * from CompanyInfo").get("CompanyInfo", [{}])[0]
    counts = {
        entity: int(query(f"select count(*) from {entity}").get("totalCount", 0))
        for entity in ("Customer", "Item", "Invoice", "Payment")
    }
    return DemoCheck(
        url=url,
        realm=realm,
        company_name=str(info.get("CompanyName", companies[0].get("name", ""))),
        counts=counts,
        token_keys=sorted(creds),
    )


def write_demo_instance(dagster_home: Path, *, dequeue_interval_s: int | None = None) -> Path:
    """Create the demo's own Dagster instance folder with default (SQLite) storage.

    See :func:`qb_pipelines.demo.write_demo_instance` (kept here for callers of the CLI module).
    """
    from qb_pipelines.demo import write_demo_instance as write

    return write(dagster_home, dequeue_interval_s=dequeue_interval_s)


def _print_connection_help(check: DemoCheck) -> None:
    click.echo(f"QBO emulator:      {check.url}")
    click.echo(f"Demo company:      {check.company_name} (realmId {check.realm})")
    click.echo(f"Records:           {', '.join(f'{n} {e}' for e, n in check.counts.items())}")
    click.echo("Get tokens:        " f"qb-pipelines emulator tokens {check.realm} --url {check.url}")
    click.echo(f"                   (or: curl -X POST {check.url}/_emulator/companies/{check.realm}/tokens)")
    click.echo(f"Query it as QBO:   GET {check.url}/v3/company/{check.realm}/query?query=select * from Invoice")
    click.echo("                   with header `Authorization: Bearer <access_token>`")


def _stop_dagster_dev(ui: subprocess.Popen[bytes]) -> int:
    """Stop ``dagster dev`` after Ctrl-C, letting it shut its webserver and daemon down cleanly.

    A terminal's Ctrl-C already reached it (same process group); SIGINT is sent again for the
    cases where it did not. ``dagster dev`` ignores SIGTERM while it shuts down, so the last
    resort is SIGKILL (its webserver and daemon exit when their shutdown pipe closes).
    """
    if ui.poll() is None:
        ui.send_signal(signal.SIGINT)
    try:
        return ui.wait(timeout=30)
    except subprocess.TimeoutExpired:
        ui.kill()
        return ui.wait()


@cli.command()
@click.option("--headless", is_flag=True,
              help="No UI: land everything in-process, check it, prove a webhook change arrives, exit 0 or 1.")
@click.option("--port", default=8765, show_default=True, type=int, help="Emulator port.")
@click.option("--dagster-port", default=3000, show_default=True, type=int, help="Dagster UI port.")
@click.option("--web-port", default=None, type=int,
              help="Admin web app port (default 8000; a free port with --headless).")
@click.option(
    "--demo-dir",
    type=click.Path(file_okay=False),
    default=".demo",
    show_default=True,
    help="Folder for the demo's emulator data, store, secrets and Dagster instance (not used by --headless, "
    "which runs in a fresh temporary folder).",
)
def demo(headless: bool, port: int, dagster_port: int, web_port: int | None, demo_dir: str) -> None:
    """Start QuickBooks (the emulator), connect the demo company, open the admin web app and Dagster.

    The demo company is connected for the tenant `demo` and the emulator's webhooks reach the web
    app, so a change made in QuickBooks lands in the warehouse within seconds (webhook, sensor,
    run). Ctrl-C stops everything.

    With --headless: the same without the UI, in a temporary folder; every entity, report month
    and check is materialized in-process, then a customer created in QuickBooks must reach the
    warehouse through the daemon. Exits 0 only when all of it worked.
    """
    if headless:
        _demo_headless(port, web_port)
        return
    _demo_ui(port, dagster_port, web_port or 8000, Path(demo_dir).resolve())


def _demo_headless(port: int, web_port: int | None) -> None:
    from qb_pipelines.demo import run_headless
    from qb_pipelines.emulator.server import free_port

    report = run_headless(port=port, web_port=web_port or free_port(), out=click.echo)
    click.echo("")
    click.echo(f"entities landed:   {report.entities_landed}/{report.entities_expected}"
               + (" (every entity)" if report.entities_landed == report.entities_expected else ""))
    click.echo(f"report partitions: {report.report_partitions} (5 reports x {report.report_partitions // 5} months)")
    click.echo(f"checks passed:     {report.checks_passed}/{report.checks_total}"
               + (" (every check)" if report.checks_total and report.checks_passed == report.checks_total else ""))
    if report.webhook_latency_s is not None and report.webhook_run_id:
        click.echo(f"webhook change:    arrived in the warehouse {report.webhook_latency_s:.1f} s after it was made "
                   f"(run {report.webhook_run_id})")
    else:
        click.echo("webhook change:    did NOT arrive")
    click.echo(f"took:              {report.seconds:.0f} s")
    for failure in report.failures:
        click.echo(f"FAILED: {failure}", err=True)
    click.echo(json.dumps(report.as_dict(), sort_keys=True))
    if not report.ok:
        raise SystemExit(1)


def _demo_ui(port: int, dagster_port: int, web_port: int, root: Path) -> None:
    from qb_pipelines import demo as demo_mod

    # Ctrl-C must stop the demo even when it was started with SIGINT ignored (a shell's background
    # job, some IDE runners): a Python handler here also gives the children SIGINT's default
    # disposition after exec, so dagster dev, the web app and the emulator shut down on it too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    root.mkdir(parents=True, exist_ok=True)
    secrets_path = root / demo_mod.SECRETS_FILE
    values, created = demo_mod.load_secrets(secrets_path)
    # The run queue is polled every second (Dagster: 5 s) so a webhook's run starts at once.
    dagster_home = write_demo_instance(root / "dagster_home", dequeue_interval_s=1)
    dagster = demo_mod._script("dagster")
    for what, number, flag in (("Dagster UI", dagster_port, "--dagster-port"), ("admin web app", web_port, "--web-port")):
        if not port_is_free(number):
            raise click.ClickException(f"port {number} ({what}) is in use: stop what runs there or pass {flag}")

    try:
        with run_emulator_process(port, seed=DEMO_SEED, data_file=str(root / "emulator.sqlite")) as emu:
            check = check_emulator(emu.url)
            _print_connection_help(check)
            env = demo_mod.demo_environment(values, database_url=demo_mod.sqlite_url(root / "qb_pipelines.sqlite"),
                                            emulator_url=emu.url, web_port=web_port, dagster_home=dagster_home)
            connected = demo_mod.prepare_store(env, emu.url, values["QB_DEMO_ADMIN_PASSWORD"])
            with demo_mod.run_web_process(web_port, env, root / "web.log") as web_url:
                demo_mod.register_with_emulator(emu.url, redirect_uri=env["QBO_REDIRECT_URI"],
                                                webhook_url=f"{web_url}/webhooks/quickbooks",
                                                verifier_token=values["QBO_WEBHOOK_VERIFIER_TOKEN"])
                _print_demo_help(connected, web_url, dagster_port, dagster_home, secrets_path,
                                 values["QB_DEMO_ADMIN_PASSWORD"] if "QB_DEMO_ADMIN_PASSWORD" in created else None,
                                 check.url)
                quiet = "ignore:Function `dev_command` is superseded"
                # `dagster dev` notes that `dg dev` supersedes it; `dg` needs the separate dagster-dg-cli
                # and a [tool.dg] project table, and the note means nothing to a demo user.
                env["PYTHONWARNINGS"] = ",".join(w for w in (env.get("PYTHONWARNINGS"), quiet) if w)
                cmd = [dagster, "dev", "-w", str(demo_mod.WORKSPACE), "-h", "127.0.0.1", "-p", str(dagster_port)]
                # cwd is the demo folder, not the checkout: Dagster warns about the top-level
                # dagster.yaml (the deployment's PostgreSQL config) when started beside it.
                ui = subprocess.Popen(cmd, env=env, cwd=str(root))
                try:
                    code = ui.wait()
                except KeyboardInterrupt:
                    code = _stop_dagster_dev(ui)
    except demo_mod.DemoError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        # Ctrl-C while a child was still starting or stopping: everything is stopped by now.
        code = 130
    if code not in (0, -signal.SIGINT, 130):
        raise SystemExit(code)


def _print_demo_help(connected: Any, web_url: str, dagster_port: int, dagster_home: Path, secrets_path: Path,
                     new_password: str | None, emulator_url: str) -> None:
    click.echo(f"Connected:         {connected.company_name} for tenant '{connected.tenant_key}' "
               f"(company key {connected.company_key})")
    click.echo(f"Admin web app:     {web_url}/integrations  (user {connected.admin_email})")
    if new_password:
        click.echo(f"Admin password:    {new_password}  (shown once; it is also kept in {secrets_path})")
    else:
        click.echo(f"Admin password:    QB_DEMO_ADMIN_PASSWORD in {secrets_path}")
    click.echo(f"Secrets:           {secrets_path} (mode 600: token key, session secret, webhook verifier token)")
    click.echo(f"DAGSTER_HOME:      {dagster_home}")
    click.echo(f"Dagster UI:        http://127.0.0.1:{dagster_port}  -> Assets, select all, Materialize all")
    click.echo("Try a webhook:     "
               f"qb-pipelines emulator act {connected.realm_id} Customer create --data '{{\"DisplayName\": \"New Co\"}}' "
               f"--url {emulator_url}")
    click.echo("                   (the customer lands in table qbo_customer within seconds: webhook, sensor, run)")
    click.echo("Ctrl-C stops the Dagster UI, the web app and the emulator.")


# --------------------------------------------------------------------------------------------
# qb-pipelines sync
# --------------------------------------------------------------------------------------------


@cli.command()
@click.option("--company", "company_key", required=True, metavar="KEY",
              help="Company key '<tenant>-<realmId>' (as the Dagster partition), or a tenant key.")
@click.option("--full", is_flag=True, help="Re-read every object (finds hard deletes CDC missed) instead of CDC.")
@click.option("--entities", default=None, metavar="A,B",
              help="Comma-separated QuickBooks entities (e.g. Customer,Invoice); every entity by default.")
@click.option("--database-url", default=None, envvar="QB_DATABASE_URL", show_envvar=True,
              help="Store and warehouse URL (SQLAlchemy).")
@click.option("--wait", "wait_s", type=click.FloatRange(min=0), default=600, show_default=True, metavar="SECONDS",
              help="How long to wait while another run lands the same company (0: fail at once).")
def sync(company_key: str, full: bool, entities: str | None, database_url: str | None, wait_s: float) -> None:
    """Land one company's QuickBooks entities in the warehouse, without Dagster (scripts, cron).

    The same landing as the Dagster asset qbo_raw_entities: incremental (CDC from the stored
    cursors) by default, a full refresh with --full or where no cursor exists yet. Prints a line
    per page, then a summary table; exits 1 with the next step to take when it cannot sync.
    One landing per company at a time: when another run (a Dagster run, another sync) is landing
    the company, this one says so and waits for it (--wait), then lands.
    Needs QB_FERNET_KEY, QBO_CLIENT_ID, QBO_CLIENT_SECRET (and QBO_EMULATOR_URL for the emulator).
    """
    from qb_pipelines.config import SettingsError
    from qb_pipelines.qbo.errors import QBOError
    from qb_pipelines.sync.companies import UnknownCompanyError
    from qb_pipelines.sync.ingest import CompanyBusyError, land
    from qb_pipelines.sync.runtime import Runtime

    env = dict(os.environ)
    if database_url:
        env["QB_DATABASE_URL"] = database_url
    try:
        runtime = Runtime.from_env(env)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    wanted = [e.strip() for e in entities.split(",") if e.strip()] if entities else None
    with runtime:
        try:
            company = runtime.resolve(company_key)
            client = runtime.client_for(company)
        except UnknownCompanyError as exc:
            known = runtime.companies()
            listed = "\n".join(f"  {c.key}  ({c.state.value})" for c in known) or "  none: connect one in the admin web app"
            raise click.ClickException(f"{exc}\nKnown companies:\n{listed}") from None
        if not company.is_connected:
            raise click.ClickException(_reconnect_message(company.key, company.state.value))
        click.echo(f"syncing {company.key} ({company.environment}, realm {company.realm_id}): "
                   + ("full refresh" if full else "incremental") + (f" of {', '.join(wanted)}" if wanted else ""))
        progress = _SyncProgress(sys.stdout.isatty())
        try:
            result = land(client, runtime.warehouse, company.key, wanted, full=full, progress=progress,
                          lock_wait_s=wait_s, on_wait=lambda message: click.echo(message, err=True))
        except (ValueError, CompanyBusyError) as exc:
            raise click.ClickException(str(exc)) from None
        except QBOError as exc:
            raise click.ClickException(_sync_error(company.key, exc)) from None
        finally:
            progress.close()
    _print_sync_summary(result)


def _reconnect_message(key: str, state: str) -> str:
    return (f"company {key} is not connected (state: {state.replace('_', ' ')}). Next: reconnect it in the admin "
            "web app (Accounting Integrations > Reconnect), then run this command again.")


def _sync_error(key: str, exc: Exception) -> str:
    from qb_pipelines.sync.failures import next_step

    return f"company {key}: {exc}\nNext: {next_step(exc)}."


class _SyncProgress:
    """Progress of a sync: a bar over the entities on a terminal, a line per page otherwise (logs, cron)."""

    def __init__(self, tty: bool) -> None:
        from qb_pipelines.qbo import registry

        self.tty = tty
        self.seen: list[str] = []
        self.bar: Any = None
        if tty:
            self.bar = click.progressbar(length=len(registry.ENTITIES), label="landing", show_pos=True,
                                         item_show_func=lambda item: item)
            self.bar.__enter__()

    def __call__(self, event: dict[str, Any]) -> None:
        entity = str(event.get("entity"))
        if entity not in self.seen:
            self.seen.append(entity)
            if self.bar is not None and len(self.seen) > 1:
                self.bar.update(1)  # the previous entity is done: entities land one after another
        text = (f"{entity}: {event.get('mode')}, page {event.get('page')}, +{event.get('rows', 0):,} rows "
                f"({event.get('rows_done', 0):,} so far)")
        if self.bar is not None:
            self.bar.current_item = text
            self.bar.render_progress()
        else:
            click.echo(f"  {text}")

    def close(self) -> None:
        if self.bar is not None:
            if self.seen:
                self.bar.update(1)
            self.bar.__exit__(None, None, None)


def _print_sync_summary(result: Any) -> None:
    headers = ("entity", "mode", "inserted", "updated", "deleted", "api calls", "pages")
    rows = [(name, e.mode, e.inserted, e.updated, e.deleted, e.api_calls, e.pages)
            for name, e in result.entities.items()]
    widths = [max(len(str(h)), *(len(f"{r[i]:,}" if isinstance(r[i], int) else str(r[i])) for r in rows))
              for i, h in enumerate(headers)]

    def line(values: tuple) -> str:
        cells = [f"{v:,}".rjust(w) if isinstance(v, int) else str(v).ljust(w) for v, w in zip(values, widths, strict=True)]
        return "  ".join(cells).rstrip()

    click.echo("")
    click.echo(line(headers))
    click.echo("  ".join("-" * w for w in widths))
    for row in rows:
        click.echo(line(row))
    seconds = (result.finished_at - result.started_at).total_seconds() if result.finished_at else 0.0
    click.echo(f"\n{result.company_key}: {result.inserted:,} inserted, {result.updated:,} updated, "
               f"{result.deleted:,} deleted with {result.api_calls} API calls in {seconds:.1f} s")
    if result.touched_months:
        months = sorted(m for _, m in result.touched_months)
        click.echo(f"report months touched: {', '.join(months)} (re-materialize their report partitions in Dagster)")


# --------------------------------------------------------------------------------------------
# qb-pipelines bench
# --------------------------------------------------------------------------------------------


@cli.group("bench")
def bench_group() -> None:
    """Benchmarks: they print figures, the last line one JSON object."""


@bench_group.command("ingest")
@click.option("--invoices", type=int, required=True, help="Invoices in the bench company (customers, items, payments in proportion).")
@click.option("--database-url", default=None, help="Warehouse URL (the targets are for PostgreSQL); temporary SQLite by default.")
@click.option("--webhook-changes", type=int, default=20, show_default=True,
              help="Changes timed from QuickBooks to the warehouse through the Dagster daemon (0 skips it).")
@click.option("--data-file", type=click.Path(dir_okay=False), default=None,
              help="Emulator SQLite file for the bench company (reused when it holds it already).")
def bench_ingest(invoices: int, database_url: str | None, webhook_changes: int, data_file: str | None) -> None:
    """Full load, incremental run and webhook-to-warehouse latency of a company of N invoices.

    Prints invoices_per_s, api_calls, peak_rss_mb, incremental_s, incremental_api_calls,
    webhook_p50_s and webhook_p95_s (and more) as the last line, one JSON object.
    """
    from qb_pipelines.sync import bench_ingest as bench_mod

    result = bench_mod.run(invoices, database_url, out=click.echo, data_file=data_file)
    if webhook_changes > 0:
        from qb_pipelines.sync.webhook_latency import measure

        result.update(measure(webhook_changes, out=click.echo, database_url=database_url))
    click.echo(json.dumps(result, sort_keys=True))


# --------------------------------------------------------------------------------------------
# Connections: admin web app, admin users, tenants, token refresh, keys
# --------------------------------------------------------------------------------------------


def _store_session_factory() -> Any:
    """The integration store (``QB_DATABASE_URL``), migrated to the latest schema."""
    from qb_pipelines.store.db import make_engine, migrate, session_factory

    engine = make_engine()
    migrate(engine)
    return session_factory(engine)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="TCP port to listen on.")
def web(host: str, port: int) -> None:
    """Serve the admin web app (connections, settings, sync errors)."""
    from qb_pipelines.config import SettingsError
    from qb_pipelines.web.app import serve

    try:
        serve(host, port)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


@cli.group()
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
    _echo_json({"email": user.email, "role": str(user.role)})


@users.command("list")
def users_list() -> None:
    """List admin web app users (never their passwords)."""
    from qb_pipelines.store.users import AdminUserStore

    _echo_json([{"email": u.email, "role": str(u.role)} for u in AdminUserStore(_store_session_factory()).list()])


@cli.group()
def tenants() -> None:
    """Tenants of the app: each connects its own QuickBooks company."""


@tenants.command("create")
@click.argument("key")
@click.argument("name")
def tenants_create(key: str, name: str) -> None:
    """Create a tenant (or rename it) so an admin can connect its QuickBooks company."""
    from qb_pipelines.config import SettingsError
    from qb_pipelines.sync.runtime import Runtime

    try:
        runtime = Runtime.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    with runtime:
        tenant = runtime.tenants.ensure_tenant(key, name)
    _echo_json({"key": tenant.key, "name": tenant.name})


@cli.group()
def connections() -> None:
    """QuickBooks connections."""


@connections.command("refresh")
@click.option("--within-minutes", default=10, show_default=True, type=int,
              help="Refresh access tokens that lapse within this many minutes.")
def connections_refresh(within_minutes: int) -> None:
    """Refresh tokens before they lapse; mark connections Intuit refuses as session expired."""
    from datetime import timedelta

    from qb_pipelines.config import SettingsError
    from qb_pipelines.sync.connections import refresh_due
    from qb_pipelines.sync.runtime import Runtime

    try:
        runtime = Runtime.from_env()
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None
    with runtime:
        summary = refresh_due(runtime.connections, runtime.oauth, timedelta(minutes=within_minutes))
    _echo_json(summary.as_dict())
    if summary.errors:
        raise SystemExit(1)


@cli.group()
def keys() -> None:
    """Encryption keys."""


@keys.command("generate")
def keys_generate() -> None:
    """Print a new Fernet key for QB_FERNET_KEY (tokens and secrets are encrypted with it)."""
    from qb_pipelines.store.crypto import generate_key

    click.echo(generate_key())

if __name__ == "__main__":
    main()
