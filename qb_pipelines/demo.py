"""The demo, end to end: QuickBooks (the emulator), the admin web app, Dagster, all wired together.

``qb-pipelines demo`` (``make demo``) and ``qb-pipelines demo --headless`` call this module; the
webhook latency bench (:mod:`qb_pipelines.sync.webhook_latency`) reuses its pieces. It is plain
Python, so every step can be read, reused and tested apart from the command line:

1. **Secrets** (:func:`load_secrets`): the Fernet key that encrypts tokens, the web app's session
   secret, the webhook verifier token and the demo admin's password are generated once and kept
   in ``<demo dir>/secrets.env`` (mode 600). The demo prints where they are, never their values
   (the admin password is printed once, when it is created, so the user can sign in).
2. **Store** (:func:`prepare_store`): the integration store and warehouse
   (``QB_DATABASE_URL=sqlite:///<demo dir>/qb_pipelines.sqlite``) are migrated, the admin user
   ``admin@example.com`` and the tenant ``demo`` created, and the demo company **connected** the
   way the OAuth callback connects one -- tokens, the connecting user (userinfo) and CompanyInfo,
   saved through ``ConnectionStore.save_tokens_on_connect`` -- but with tokens from the emulator's
   control route instead of a browser consent. Default settings are saved, so the tenant is
   "configured" (the Setup Wizard's job in the browser).
3. **Emulator wiring** (:func:`register_with_emulator`): the web app's OAuth callback is registered
   as a redirect URI of the emulator's developer app (so Reconnect works from the web page), and
   the emulator's webhooks are subscribed to the web app's ``/webhooks/quickbooks`` (CloudEvents,
   signed with the verifier token, grouped over a 1 s window).
4. **Processes**: the admin web app (``qb-pipelines web``), then Dagster -- ``dagster dev`` (UI +
   daemon) for the interactive demo, ``dagster-daemon run`` for the headless one -- all with the
   same environment (:func:`demo_environment`) and ``DAGSTER_HOME`` inside the demo folder.

A change in QuickBooks then travels: emulator -> signed webhook -> web app -> webhook inbox ->
``qbo_webhook_sensor`` (in the daemon) -> incremental run (CDC) -> warehouse row.

The headless demo (:func:`run_headless`) does all that in a fresh temporary folder, materializes
every entity, every report month and every check in-process against the same Dagster instance,
then proves the webhook path with a customer created in QuickBooks, and returns 0 only when
everything landed, every check passed and the change arrived through a webhook-triggered run.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

__all__ = [
    "ADMIN_EMAIL",
    "DEMO_TENANT",
    "ConnectedDemo",
    "DaemonProcess",
    "DemoError",
    "HeadlessReport",
    "LoadSummary",
    "Stack",
    "act",
    "demo_environment",
    "headless_stack",
    "land_in_process",
    "load_secrets",
    "open_instance",
    "prepare_store",
    "process_environment",
    "register_with_emulator",
    "row_sync_token",
    "run_daemon_process",
    "run_headless",
    "run_web_process",
    "skip_report_backlog",
    "sqlite_url",
    "wait_for_daemon",
    "wait_for_row",
    "wait_for_runs",
    "webhook_runs",
    "write_demo_instance",
]

ROOT = Path(__file__).resolve().parent.parent
WORKSPACE = ROOT / "workspace.yaml"

#: The demo's tenant (the app's customer that connects the demo company) and its admin.
DEMO_TENANT = "demo"
DEMO_TENANT_NAME = "Demo Landscaping (tenant)"
ADMIN_EMAIL = "admin@example.com"
#: The emulator's built-in developer app (README, "OAuth 2.0 and OpenID Connect").
EMULATOR_CLIENT_ID = "emulator-client-id"
EMULATOR_CLIENT_SECRET = "emulator-client-secret"
#: Grouping window of the emulator's webhook deliveries (QBO groups changes too).
WEBHOOK_WINDOW_S = 1.0
#: How long the headless demo waits for a change to reach the warehouse through the daemon.
WEBHOOK_TIMEOUT_S = 60.0

SECRETS_FILE = "secrets.env"
#: Generated once per demo folder and kept in ``secrets.env``.
SECRET_NAMES = ("QB_FERNET_KEY", "QB_SESSION_SECRET", "QBO_WEBHOOK_VERIFIER_TOKEN", "QB_DEMO_ADMIN_PASSWORD")

Out = Callable[[str], Any]


class DemoError(RuntimeError):
    """A demo step failed; the message names the step and what to do."""


# ------------------------------------------------------------------------------------------ secrets


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
    secret, redirect URI and verifier token) and Dagster (``DAGSTER_HOME``).
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
    # The children must import this very checkout, installed or not.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# ------------------------------------------------------------------------------------ Dagster home


def write_demo_instance(dagster_home: Path, *, dequeue_interval_s: int | None = None) -> Path:
    """Create the demo's own Dagster instance folder with default (SQLite) storage.

    The top-level ``dagster.yaml`` configures PostgreSQL for deployments; the demo must need no
    database server, so it gets its own ``DAGSTER_HOME`` whose ``dagster.yaml`` leaves storage and
    run launcher at Dagster's defaults (SQLite files in that folder, runs in subprocesses) and
    queues runs with the project's :class:`~qb_pipelines.defs.run_coordinator.CompanyRunCoordinator`
    and the deployment's per-company run limits.

    Args:
        dagster_home: the folder (created when missing).
        dequeue_interval_s: how often the daemon's run queue launches queued runs (Dagster's
            default, 5 s, when ``None``); the latency bench shortens it.
    """
    dagster_home.mkdir(parents=True, exist_ok=True)
    text = (
        "# Written by `qb-pipelines demo`. No `storage:` key: Dagster's default SQLite storage\n"
        "# in this folder, so the demo needs no database server.\n"
        "telemetry:\n"
        "  enabled: false\n"
        # The queue tags runs launched from the UI with their company, then one run at a time per
        # company (landings and reports), one push at a time per company (see ../dagster.yaml).
        "run_coordinator:\n"
        "  module: qb_pipelines.defs.run_coordinator\n"
        "  class: CompanyRunCoordinator\n"
    )
    if dequeue_interval_s is not None:
        text += f"  config:\n    dequeue_interval_seconds: {int(dequeue_interval_s)}\n"
    text += "concurrency:\n  runs:\n    tag_concurrency_limits:\n"
    for tag in ("qbo/company", "qbo/company-push"):
        text += f"      - key: {tag}\n        value:\n          applyLimitPerUniqueValue: true\n        limit: 1\n"
    (dagster_home / "dagster.yaml").write_text(text)
    return dagster_home


# ------------------------------------------------------------------------------------------ store


@dataclass
class ConnectedDemo:
    """The demo company, connected for the demo tenant.

    Attributes:
        realm_id: the emulator company's realmId.
        company_name: its CompanyInfo name.
        company_key: the partition and warehouse key (``demo-<realmId>``).
        tenant_key: the tenant that connected it.
        admin_email: the admin user of the web app.
        admin_created: whether the admin was created now (its password is then new).
        connect_kind: ``first``, ``reconnect`` or ``switch``.
    """

    realm_id: str
    company_name: str
    company_key: str
    tenant_key: str
    admin_email: str
    admin_created: bool
    connect_kind: str


def _demo_realm(emulator_url: str) -> str:
    from qb_pipelines.emulator.seed import DEMO_COMPANY_NAME

    companies = requests.get(f"{emulator_url}/_emulator/companies", timeout=30).json()
    for company in companies:
        if company.get("name") == DEMO_COMPANY_NAME:
            return str(company["realmId"])
    if not companies:
        raise DemoError(f"the emulator at {emulator_url} holds no company; expected the seeded demo company")
    return str(companies[0]["realmId"])


def prepare_store(env: Mapping[str, str], emulator_url: str, admin_password: str, *, realm_id: str | None = None,
                  tenant_key: str = DEMO_TENANT) -> ConnectedDemo:
    """Migrate the store, create the admin and the tenant, connect the demo company, save settings.

    Idempotent: a restarted demo reuses its admin, reconnects the same company (configuration
    kept) and leaves saved settings alone.

    Args:
        env: from :func:`demo_environment` (store URL, token key).
        emulator_url: the running emulator.
        admin_password: the demo admin's password (from ``secrets.env``).
        realm_id: the company to connect; the demo company by default.
        tenant_key: the tenant connecting it.

    Raises:
        DemoError: the emulator refused a step (the message names it).
    """
    from qb_pipelines.qbo.client import MemoryTokenSource, QBOClient
    from qb_pipelines.qbo.oauth import TokenSet
    from qb_pipelines.sync.companies import company_key
    from qb_pipelines.sync.connections import live_lists
    from qb_pipelines.sync.runtime import Runtime

    with Runtime.from_env(env) as runtime:
        settings = runtime.settings
        users = runtime.users
        admin_created = users.get(ADMIN_EMAIL) is None
        if admin_created:
            users.create(ADMIN_EMAIL, admin_password, "admin")
        else:
            # the password in secrets.env is the one that works, even if someone changed it by hand
            users.set_password(ADMIN_EMAIL, admin_password)
        store = runtime.connections
        runtime.tenants.ensure_tenant(tenant_key, DEMO_TENANT_NAME)

        realm = realm_id or _demo_realm(emulator_url)
        resp = requests.post(f"{emulator_url}/_emulator/companies/{realm}/tokens", timeout=30)
        if resp.status_code != 200:
            raise DemoError(f"the emulator refused tokens for company {realm}: {resp.status_code} {resp.text[:300]}")
        tokens = TokenSet.from_response(resp.json(), realm_id=realm)
        oauth = settings.oauth("emulator")
        # What the OAuth callback reads before storing a connection: who connected, which company.
        user = oauth.userinfo(tokens.access_token)
        source = MemoryTokenSource(oauth, tokens)
        client = QBOClient(realm, source, settings.environment("emulator"))
        info = client.company_info()
        company_name = str(info.get("CompanyName") or info.get("LegalName") or f"Company {realm}")
        kind = store.save_tokens_on_connect(
            tenant_key, "emulator", realm, company_name, str(user.get("email") or ""),
            str(user.get("givenName") or ""), str(user.get("familyName") or ""), source.tokens,
        )
        if not runtime.tenant_settings.get(tenant_key).configured:
            # What the Setup Wizard saves: every entity on, default directions and policy, and the
            # company's own income account and tax code (read live, as the wizard lists them).
            accounts, codes = live_lists(client)
            income = next((a for a in accounts if "services" in a.name.lower()), accounts[0] if accounts else None)
            if income is None:
                raise DemoError(f"company {realm} has no income account to use as the default")
            values: dict[str, Any] = {"default_income_account_id": income.id, "default_income_account_name": income.name,
                                      "mode": "test"}
            if codes:
                values.update(default_tax_code_id=codes[0].id, default_tax_code_name=codes[0].name)
            runtime.tenant_settings.save(tenant_key, values)
        return ConnectedDemo(realm, company_name, company_key(tenant_key, realm), tenant_key, ADMIN_EMAIL,
                             admin_created, str(getattr(kind, "value", kind)))


def register_with_emulator(emulator_url: str, *, redirect_uri: str, webhook_url: str, verifier_token: str,
                           window_s: float = WEBHOOK_WINDOW_S) -> dict[str, Any]:
    """Tell the emulator about the web app: its OAuth callback, and where to send webhooks.

    Returns:
        The webhook subscription as the emulator describes it.

    Raises:
        DemoError: the emulator refused either registration.
    """
    app = requests.post(f"{emulator_url}/_emulator/apps",
                        json={"client_id": EMULATOR_CLIENT_ID, "redirect_uris": [redirect_uri]}, timeout=30)
    if app.status_code >= 400:
        raise DemoError(f"registering the redirect URI with the emulator failed: {app.status_code} {app.text[:300]}")
    sub = requests.post(f"{emulator_url}/_emulator/webhooks",
                        json={"url": webhook_url, "verifier_token": verifier_token, "format": "cloudevents",
                              "window_s": window_s}, timeout=30)
    if sub.status_code >= 400:
        raise DemoError(f"subscribing the emulator's webhooks failed: {sub.status_code} {sub.text[:300]}")
    return sub.json()


# -------------------------------------------------------------------------------------- processes


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _script(name: str) -> str:
    """A console script of this environment (``dagster``, ``dagster-daemon``)."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if not found:
        raise DemoError(f"the `{name}` command is missing: run `make demo` (it installs the project)")
    return found


@contextlib.contextmanager
def run_web_process(port: int, env: Mapping[str, str], log_file: Path, *,
                    startup_timeout: float = 60.0) -> Iterator[str]:
    """``qb-pipelines web --port PORT`` as a child process; yields its URL once ``/healthz`` answers."""
    from qb_pipelines.cli import port_is_free

    if not port_is_free(port):
        raise DemoError(f"port {port} is in use: stop what runs there or pass --web-port")
    url = f"http://127.0.0.1:{port}"
    with open(log_file, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "qb_pipelines.cli", "web", "--host", "127.0.0.1",
                                 "--port", str(port)], env=dict(env), stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if proc.poll() is not None:
                raise DemoError(f"the admin web app exited with code {proc.returncode}:\n{_tail(log_file)}")
            try:
                if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise DemoError(f"the admin web app did not answer on {url} in time:\n{_tail(log_file)}")
            time.sleep(0.2)
        yield url
    finally:
        _stop(proc)


@dataclass
class DaemonProcess:
    """``dagster-daemon run`` as a child process (sensors, schedules, the run queue)."""

    proc: subprocess.Popen
    log_file: Path

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        return _tail(self.log_file)


@contextlib.contextmanager
def run_daemon_process(env: Mapping[str, str], cwd: Path, log_file: Path) -> Iterator[DaemonProcess]:
    """Start the Dagster daemon on the demo's code location; stop it on exit.

    ``cwd`` is the demo folder, not the checkout: Dagster warns about the top-level
    ``dagster.yaml`` (the deployment's PostgreSQL settings) when started beside it.
    """
    with open(log_file, "ab") as log:
        proc = subprocess.Popen([_script("dagster-daemon"), "run", "-w", str(WORKSPACE)], env=dict(env),
                                cwd=str(cwd), stdout=log, stderr=subprocess.STDOUT)
    running = DaemonProcess(proc, log_file)
    try:
        yield running
    finally:
        # SIGINT is how a terminal stops it: the daemon shuts its threads and code server down.
        _stop(proc, signal.SIGINT, timeout=30)


def wait_for_daemon(instance: Any, daemon: DaemonProcess, timeout: float = 90.0) -> float:
    """Wait until the daemon's sensor loop has reported a heartbeat; returns the seconds waited.

    Raises:
        DemoError: the daemon exited or stayed silent.
    """
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if not daemon.alive():
            raise DemoError(f"dagster-daemon exited with code {daemon.proc.returncode}:\n{daemon.tail()}")
        beats = instance.get_daemon_heartbeats()
        if "SENSOR" in {str(getattr(k, "value", k)) for k in beats}:
            return time.monotonic() - t0
        time.sleep(0.5)
    raise DemoError(f"dagster-daemon gave no heartbeat in {timeout:.0f} s:\n{daemon.tail()}")


# ------------------------------------------------------------------------------ in-process landing


@dataclass
class LoadSummary:
    """What the in-process materializations landed and proved.

    Attributes:
        entities: registry entity -> ``{"mode", "rows", "inserted", "api_calls"}``.
        reports: report month -> number of report assets materialized.
        checks: ``"<asset>:<check>[@month]"`` -> passed.
        failures: what did not land or did not pass, in words.
        seconds: wall time.
    """

    entities: dict[str, dict[str, Any]] = field(default_factory=dict)
    reports: dict[str, int] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


#: In-process runs log to the console at DEBUG by default: keep the demo's output to its summary
#: (every event is still in the instance, for the UI).
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _meta_value(value: Any) -> Any:
    return getattr(value, "value", value)


def land_in_process(instance: Any, company: str, out: Out, *, with_reports: bool = True,
                    with_checks: bool = True) -> LoadSummary:
    """Materialize every entity (and report month) of ``company`` in this process, with checks.

    Uses the code location's own jobs (``qbo_daily_backstop_job`` lands every entity and runs
    the entity checks; ``qbo_reports_job`` lands the five reports of one month with their
    blocking checks), so what runs is exactly what the daemon and the UI run, against
    ``instance`` (the demo's ``DAGSTER_HOME``). Report months: every month the load touched that
    has a partition, and the current month.

    The resources read their settings from ``os.environ`` (set it with :func:`demo_environment`).
    """
    from qb_pipelines.definitions import defs
    from qb_pipelines.defs.assets import ENTITY_BY_KEY
    from qb_pipelines.defs.partitions import QBO_COMPANY_PARTITIONS_NAME, qbo_month_partitions, report_partition_key
    from qb_pipelines.qbo import registry

    summary = LoadSummary()
    t0 = time.perf_counter()
    if company not in instance.get_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME):
        instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [company])

    job_name = "qbo_daily_backstop_job" if with_checks else "qbo_incremental_job"
    out(f"landing every QuickBooks entity of {company} ({job_name}, in-process) ...")
    result = defs.resolve_job_def(job_name).execute_in_process(
        partition_key=company, instance=instance, raise_on_error=False, run_config=QUIET,
        tags={"qbo/company": company, "qbo/trigger": "demo"})
    months: set[str] = set()
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        entity = ENTITY_BY_KEY.get(mat.asset_key)
        if entity is None:
            continue
        meta = {k: _meta_value(v) for k, v in mat.metadata.items()}
        summary.entities[entity] = {"mode": meta.get("mode"), "inserted": meta.get("rows_inserted", 0),
                                    "updated": meta.get("rows_updated", 0), "api_calls": meta.get("api_calls", 0)}
        listed = meta.get("touched_months") or []
        months |= set(json.loads(listed) if isinstance(listed, str) else listed)
    missing = [e.name for e in registry.ENTITIES if e.name not in summary.entities]
    if not result.success:
        summary.failures.append(f"the landing run {result.run_id} failed: {_run_failure(result)}")
    if missing:
        summary.failures.append(f"entities not landed: {', '.join(missing)}")
    for evaluation in result.get_asset_check_evaluations():
        name = f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        summary.checks[name] = evaluation.passed
    checked = f", {sum(summary.checks.values())}/{len(summary.checks)} entity checks passed" if with_checks else ""
    out(f"  {len(summary.entities)}/{len(registry.ENTITIES)} entities landed, "
        f"{sum(int(v['inserted'] or 0) for v in summary.entities.values()):,} rows{checked}")

    if with_reports:
        valid = set(qbo_month_partitions.get_partition_keys())
        current = datetime.now(UTC).strftime("%Y-%m")
        wanted = sorted(m for m in months | {current} if m in valid)
        reports_job = defs.resolve_job_def("qbo_reports_job")
        out(f"landing the five reports for {len(wanted)} months ({wanted[0]}..{wanted[-1]}) with their checks ...")
        for month in wanted:
            run = reports_job.execute_in_process(
                partition_key=str(report_partition_key(company, month)), instance=instance, raise_on_error=False,
                run_config=QUIET, tags={"qbo/company": company, "qbo/trigger": "demo"})
            summary.reports[month] = len(run.get_asset_materialization_events())
            for evaluation in run.get_asset_check_evaluations():
                summary.checks[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}@{month}"] = \
                    evaluation.passed
            if not run.success:
                summary.failures.append(f"reports of {month} failed (run {run.run_id}): {_run_failure(run)}")
            elif summary.reports[month] != 5:
                summary.failures.append(f"reports of {month}: {summary.reports[month]}/5 landed")
        out(f"  {sum(summary.reports.values())} report partitions landed over {len(wanted)} months")
    failed = sorted(k for k, passed in summary.checks.items() if not passed)
    if failed:
        summary.failures.append(f"checks failed: {', '.join(failed[:20])}" + (" ..." if len(failed) > 20 else ""))
    summary.seconds = time.perf_counter() - t0
    return summary


def _run_failure(result: Any) -> str:
    for event in result.all_events:
        if event.is_step_failure or event.is_failure:
            data = getattr(event.event_specific_data, "error", None)
            return (getattr(data, "message", None) or event.message or "failed").strip().splitlines()[0][:300]
    return "see the run in the Dagster UI"


def skip_report_backlog(instance: Any, env: Mapping[str, str], cwd: Path) -> int:
    """Start ``qbo_report_refresh_sensor`` past the report months already materialized here.

    The sensor re-materializes the report months a landing run touched. After an in-process
    load that already landed every report month, the first tick of a fresh daemon would request
    every one of them again (a dozen runs of five reports on a small machine). Its cursor is the
    event storage id it has read up to, so it is set to the newest landing materialization, with
    Dagster's own CLI (``dagster sensor start`` then ``dagster sensor cursor --set``), before the
    daemon starts. Later landings (webhooks, polling) are picked up as usual.

    Returns:
        The cursor set.
    """
    import dagster as dg

    from qb_pipelines.defs.assets import entity_asset_key
    from qb_pipelines.qbo import registry

    newest = 0
    # the sensor reads the transactions' materializations (they carry the touched months)
    for key in (entity_asset_key(e.name) for e in registry.ENTITIES if e.is_transaction):
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1, ascending=False)
        if records.records:
            newest = max(newest, records.records[0].storage_id)
    dagster = _script("dagster")
    base = ["-w", str(WORKSPACE)]
    for args in (["sensor", "start", "qbo_report_refresh_sensor", *base],
                 ["sensor", "cursor", "qbo_report_refresh_sensor", "--set", str(newest), *base]):
        done = subprocess.run([dagster, *args], env=dict(env), cwd=str(cwd), capture_output=True, text=True,
                              timeout=120)
        if done.returncode != 0:
            raise DemoError(f"`dagster {' '.join(args[:3])}` failed: {(done.stderr or done.stdout)[-1000:]}")
    return newest


# ----------------------------------------------------------------------------------- webhook proof


def act(emulator_url: str, realm: str, entity: str, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    """Change the company as a QuickBooks user would (``/_emulator/.../act``); returns the object."""
    resp = requests.post(f"{emulator_url}/_emulator/companies/{realm}/act",
                         json={"entity": entity, "operation": operation, "body": body}, timeout=30)
    if resp.status_code != 200:
        raise DemoError(f"the emulator refused {operation} {entity}: {resp.status_code} {resp.text[:300]}")
    return resp.json()[entity]


def row_sync_token(engine: Any, entity: str, company: str, object_id: str) -> str | None:
    """The SyncToken of a landed row, ``None`` while it is not in the warehouse."""
    import sqlalchemy as sa

    from qb_pipelines.store.warehouse import tables_for

    main, _ = tables_for(entity)
    with engine.connect() as conn:
        return conn.execute(sa.select(main.c.sync_token).where(main.c.company_key == company,
                                                               main.c.id == str(object_id))).scalar()


def wait_for_row(engine: Any, entity: str, company: str, object_id: str, sync_token: str | None = None, *,
                 timeout: float = WEBHOOK_TIMEOUT_S, poll_s: float = 0.1) -> float | None:
    """Seconds until the row (with ``sync_token`` when given) is in the warehouse; ``None`` on timeout."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        token = row_sync_token(engine, entity, company, object_id)
        if token is not None and (sync_token is None or str(token) == str(sync_token)):
            return time.monotonic() - t0
        time.sleep(poll_s)
    return None


def wait_for_runs(instance: Any, timeout: float = 60.0) -> list[str]:
    """Wait until no run is queued or in progress (before stopping the daemon); returns those left.

    A run launched by the daemon lives in its own process: stopping the daemon does not stop it,
    and one still writing to a Dagster home being removed would recreate it.
    """
    import dagster as dg

    active = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
    deadline = time.monotonic() + timeout
    while True:
        left = [r.run_id for r in instance.get_runs(filters=dg.RunsFilter(statuses=active))]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def webhook_runs(instance: Any, company: str) -> list[Any]:
    """Runs the webhook sensor launched for ``company``, newest first."""
    import dagster as dg

    return list(instance.get_runs(filters=dg.RunsFilter(tags={"qbo/company": company, "qbo/trigger": "webhook"})))


# ------------------------------------------------------------------------------------------ headless


@dataclass
class HeadlessReport:
    """The outcome of ``qb-pipelines demo --headless`` (its last output line, as JSON)."""

    ok: bool
    emulator_url: str
    realm_id: str
    company_name: str
    company_key: str
    counts: dict[str, int]
    entities_landed: int
    entities_expected: int
    report_partitions: int
    checks_passed: int
    checks_total: int
    webhook_latency_s: float | None
    webhook_run_id: str | None
    failures: list[str]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "emulator_url": self.emulator_url, "realmId": self.realm_id,
            "company_name": self.company_name, "company_key": self.company_key, "counts": self.counts,
            "entities_landed": self.entities_landed, "entities_expected": self.entities_expected,
            "report_partitions": self.report_partitions, "checks_passed": self.checks_passed,
            "checks_total": self.checks_total, "webhook_latency_s": self.webhook_latency_s,
            "webhook_run_id": self.webhook_run_id, "failures": self.failures, "seconds": round(self.seconds, 1),
        }


@dataclass
class Stack:
    """A running demo stack: emulator, web app, store, Dagster home (the daemon comes later)."""

    root: Path
    emulator_url: str
    web_url: str
    env: dict[str, str]
    connected: ConnectedDemo
    dagster_home: Path


@contextlib.contextmanager
def headless_stack(root: Path, *, port: int, web_port: int, out: Out, database_url: str | None = None,
                   tenant_key: str = DEMO_TENANT, dequeue_interval_s: int | None = 1) -> Iterator[Stack]:
    """Emulator (demo company, in memory) + store + web app in ``root``: what headless runs need.

    Args:
        root: folder for the secrets, the SQLite store (unless ``database_url``), logs and
            ``DAGSTER_HOME``.
        port: the emulator's port.
        web_port: the web app's port.
        out: where progress lines go.
        database_url: the store and warehouse; ``<root>/qb_pipelines.sqlite`` by default.
        tenant_key: the tenant that connects the demo company.
        dequeue_interval_s: the run queue's polling interval (1 s: a webhook's run starts at once).
    """
    from qb_pipelines.cli import DEMO_SEED, run_emulator_process

    values, _ = load_secrets(root / SECRETS_FILE)
    dagster_home = write_demo_instance(root / "dagster_home", dequeue_interval_s=dequeue_interval_s)
    with run_emulator_process(port, seed=DEMO_SEED) as emu:
        env = demo_environment(values, database_url=database_url or sqlite_url(root / "qb_pipelines.sqlite"),
                               emulator_url=emu.url, web_port=web_port, dagster_home=dagster_home)
        connected = prepare_store(env, emu.url, values["QB_DEMO_ADMIN_PASSWORD"], tenant_key=tenant_key)
        out(f"connected {connected.company_name} (realm {connected.realm_id}) as {connected.company_key}")
        with run_web_process(web_port, env, root / "web.log") as web_url:
            register_with_emulator(emu.url, redirect_uri=env["QBO_REDIRECT_URI"],
                                   webhook_url=f"{web_url}/webhooks/quickbooks",
                                   verifier_token=values["QBO_WEBHOOK_VERIFIER_TOKEN"])
            out(f"admin web app at {web_url}; emulator webhooks -> {web_url}/webhooks/quickbooks")
            yield Stack(root, emu.url, web_url, env, connected, dagster_home)


def open_instance(dagster_home: Path) -> Any:
    """The Dagster instance of ``dagster_home`` (a context manager), shared with the daemon."""
    import dagster as dg

    return dg.DagsterInstance.from_config(str(dagster_home))


@contextlib.contextmanager
def process_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set ``env`` in this process for in-process runs (resources read it), restoring it after."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_headless(*, port: int, web_port: int, out: Out = print, keep_dir: Path | None = None) -> HeadlessReport:
    """The whole demo without the UI; see the module docstring. Never raises for a failed step.

    Args:
        port: the emulator's port.
        web_port: the admin web app's port.
        out: where progress lines go.
        keep_dir: run in this folder and keep it (a fresh temporary folder, removed, by default).
    """

    from qb_pipelines.cli import check_emulator
    from qb_pipelines.qbo import registry
    from qb_pipelines.store.db import make_engine

    t0 = time.perf_counter()
    root = keep_dir or Path(tempfile.mkdtemp(prefix="qbp-demo-headless-"))
    root.mkdir(parents=True, exist_ok=True)
    failures: list[str] = []
    report: dict[str, Any] = {"emulator_url": "", "realm_id": "", "company_name": "", "company_key": "",
                              "counts": {}}
    load = LoadSummary()
    latency: float | None = None
    run_id: str | None = None
    try:
        with headless_stack(root, port=port, web_port=web_port, out=out) as stack:
            check = check_emulator(stack.emulator_url)
            report.update(emulator_url=stack.emulator_url, realm_id=stack.connected.realm_id,
                          company_name=stack.connected.company_name, company_key=stack.connected.company_key,
                          counts=check.counts)
            out(f"get tokens: qb-pipelines emulator tokens {check.realm} --url {check.url}")
            company = stack.connected.company_key
            with process_environment(stack.env), open_instance(stack.dagster_home) as instance:
                load = land_in_process(instance, company, out)
                failures += load.failures
                skip_report_backlog(instance, stack.env, root)
                with run_daemon_process(stack.env, root, root / "daemon.log") as daemon:
                    waited = wait_for_daemon(instance, daemon)
                    out(f"dagster-daemon running (sensors ticking after {waited:.1f} s)")
                    engine = make_engine(stack.env["QB_DATABASE_URL"])
                    try:
                        name = f"Webhook Demo Customer {secrets.token_hex(3)}"
                        started = time.monotonic()
                        customer = act(stack.emulator_url, stack.connected.realm_id, "Customer", "create",
                                       {"DisplayName": name})
                        out(f"created customer {customer['Id']} ({name}) in QuickBooks; waiting for the webhook ...")
                        requests.post(f"{stack.emulator_url}/_emulator/webhooks/flush", timeout=30)
                        waited_row = wait_for_row(engine, "Customer", company, customer["Id"],
                                                  timeout=WEBHOOK_TIMEOUT_S - (time.monotonic() - started))
                        if waited_row is None:
                            failures.append(_webhook_diagnosis(stack.emulator_url, instance, company, daemon))
                        else:
                            latency = time.monotonic() - started
                            runs = [r for r in webhook_runs(instance, company)
                                    if "Customer" in r.tags.get("qbo/entities", "")]
                            run_id = runs[0].run_id if runs else None
                            if run_id is None:
                                failures.append("the customer landed, but not through a webhook-triggered run")
                            else:
                                out(f"the change reached the warehouse in {latency:.1f} s through webhook run "
                                    f"{run_id[:8]}")
                    finally:
                        engine.dispose()
                        left = wait_for_runs(instance)
                        if left:
                            failures.append(f"runs still in progress when the demo stopped: {', '.join(left)}")
    except Exception as exc:  # a failed step must end in a clear line and exit 1, not a traceback
        message = getattr(exc, "message", None) or str(exc)
        failures.append(f"{type(exc).__name__}: {message}")
    finally:
        if keep_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return HeadlessReport(
        ok=not failures and latency is not None, emulator_url=report["emulator_url"], realm_id=report["realm_id"],
        company_name=report["company_name"], company_key=report["company_key"], counts=report["counts"],
        entities_landed=len(load.entities), entities_expected=len(registry.ENTITIES),
        report_partitions=sum(load.reports.values()), checks_passed=sum(load.checks.values()),
        checks_total=len(load.checks), webhook_latency_s=round(latency, 2) if latency is not None else None,
        webhook_run_id=run_id, failures=failures, seconds=time.perf_counter() - t0,
    )


def _webhook_diagnosis(emulator_url: str, instance: Any, company: str, daemon: DaemonProcess) -> str:
    """Say where a change got stuck: delivery, intake, sensor or run."""
    try:
        deliveries = requests.get(f"{emulator_url}/_emulator/webhooks/deliveries", timeout=10).json()
    except requests.RequestException:
        deliveries = "unknown"
    runs = webhook_runs(instance, company)
    states = ", ".join(f"{r.run_id[:8]} {r.status.value}" for r in runs[:5]) or "none"
    alive = "running" if daemon.alive() else f"exited ({daemon.proc.returncode})"
    return (f"the webhook change did not reach the warehouse within {WEBHOOK_TIMEOUT_S:.0f} s: "
            f"deliveries {json.dumps(deliveries)[:400]}; webhook runs: {states}; daemon {alive}; "
            f"daemon log tail:\n{daemon.tail()}")
