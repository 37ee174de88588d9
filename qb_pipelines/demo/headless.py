"""``qb-pipelines demo --headless``: the whole demo without the UI, proved end to end."""

from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qb_pipelines.demo.check import check_emulator
from qb_pipelines.demo.config import WEBHOOK_TIMEOUT_S, DemoError, Out
from qb_pipelines.demo.instance import (
    open_instance,
    process_environment,
    skip_report_backlog,
    wait_for_daemon,
    wait_for_runs,
    webhook_runs,
)
from qb_pipelines.demo.landing import LoadSummary, land_in_process
from qb_pipelines.demo.refapp import LoopFigures, measure_loop
from qb_pipelines.demo.stack import headless_stack
from qb_pipelines.demo.warehouse import wait_for_row
from qb_pipelines.devtools.processes import SupervisedProcess
from qb_pipelines.devtools.services import run_daemon_process
from qb_pipelines.qbo.emulator_control import EmulatorControl, EmulatorControlError

__all__ = ["HeadlessReport", "run_headless"]


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
    push_latency_s: float | None = None
    payment_back_latency_s: float | None = None
    feed_echoes: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "emulator_url": self.emulator_url, "realmId": self.realm_id,
            "company_name": self.company_name, "company_key": self.company_key, "counts": self.counts,
            "entities_landed": self.entities_landed, "entities_expected": self.entities_expected,
            "report_partitions": self.report_partitions, "checks_passed": self.checks_passed,
            "checks_total": self.checks_total, "webhook_latency_s": self.webhook_latency_s,
            "webhook_run_id": self.webhook_run_id, "failures": self.failures, "seconds": round(self.seconds, 1),
            "push_latency_s": self.push_latency_s, "payment_back_latency_s": self.payment_back_latency_s,
            "feed_echoes": self.feed_echoes,
        }


def run_headless(*, port: int, web_port: int, refapp_port: int, out: Out = print, keep_dir: Path | None = None
                 ) -> HeadlessReport:
    """The whole demo without the UI (see :mod:`qb_pipelines.demo`). Never raises for a failed step.

    Ctrl-C and SIGTERM (under :func:`~qb_pipelines.devtools.signals.interrupt_on_signals`) still
    raise, after every process started here is stopped.

    Args:
        port: the emulator's port.
        web_port: the admin web app's port.
        refapp_port: the reference app's port.
        out: where progress lines go.
        keep_dir: run in this folder and keep it (a fresh temporary folder, removed, by default).
    """
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
    loop = LoopFigures()
    try:
        with headless_stack(root, port=port, web_port=web_port, out=out, refapp_port=refapp_port) as stack:
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
                with run_daemon_process(stack.env, root, root / "daemon.log") as daemon, \
                        EmulatorControl(stack.emulator_url) as control:
                    waited = wait_for_daemon(instance, daemon)
                    out(f"dagster-daemon running (sensors ticking after {waited:.1f} s)")
                    engine = make_engine(stack.env["QB_DATABASE_URL"])
                    try:
                        name = f"Webhook Demo Customer {secrets.token_hex(3)}"
                        started = time.monotonic()
                        customer = control.act(stack.connected.realm_id, "Customer", "create",
                                               {"DisplayName": name})["Customer"]
                        out(f"created customer {customer['Id']} ({name}) in QuickBooks; waiting for the webhook ...")
                        control.flush_webhooks()
                        waited_row = wait_for_row(engine, "Customer", company, customer["Id"],
                                                  timeout=WEBHOOK_TIMEOUT_S - (time.monotonic() - started),
                                                  still_possible=daemon.alive)
                        if waited_row is None:
                            failures.append(_webhook_diagnosis(control, instance, company, daemon))
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
                        # Fieldwise -> QuickBooks -> Fieldwise, through the daemon's push, landing and feed
                        try:
                            loop = measure_loop(stack.refapp_url, stack.web_url, stack.refapp_env,
                                                realm_id=stack.connected.realm_id, emulator_url=stack.emulator_url,
                                                engine=engine, company_key=company, out=out,
                                                still_possible=lambda: daemon.alive() and stack.refapp_alive())
                            if loop.feed_echoes:
                                failures.append(f"{loop.feed_echoes} feed entries echoed the integration's own writes")
                        except DemoError as exc:
                            failures.append(f"reference app loop: {exc}")
                    finally:
                        engine.dispose()
                        left = wait_for_runs(instance, timeout=60.0 if daemon.alive() else 0.0)
                        if left:
                            failures.append(f"runs still in progress when the demo stopped: {', '.join(left)}")
    except Exception as exc:  # a failed step must end in a clear line and exit 1, not a traceback
        failures.append(f"{type(exc).__name__}: {exc}")
    finally:
        if keep_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return HeadlessReport(
        ok=not failures and latency is not None and loop.payment_back_latency_s is not None, emulator_url=report["emulator_url"], realm_id=report["realm_id"],
        company_name=report["company_name"], company_key=report["company_key"], counts=report["counts"],
        entities_landed=len(load.entities), entities_expected=len(registry.ENTITIES),
        report_partitions=sum(load.reports.values()), checks_passed=sum(load.checks.values()),
        checks_total=len(load.checks), webhook_latency_s=round(latency, 2) if latency is not None else None,
        webhook_run_id=run_id, failures=failures, seconds=time.perf_counter() - t0,
        push_latency_s=loop.push_latency_s, payment_back_latency_s=loop.payment_back_latency_s,
        feed_echoes=loop.feed_echoes,
    )


def _webhook_diagnosis(control: EmulatorControl, instance: Any, company: str, daemon: SupervisedProcess) -> str:
    """Say where a change got stuck: delivery, intake, sensor or run."""
    try:
        deliveries: Any = control.webhook_deliveries()
    except EmulatorControlError:
        deliveries = "unknown"
    runs = webhook_runs(instance, company)
    states = ", ".join(f"{r.run_id[:8]} {r.status.value}" for r in runs[:5]) or "none"
    what = (f"the webhook change did not reach the warehouse within {WEBHOOK_TIMEOUT_S:.0f} s" if daemon.alive()
            else f"dagster-daemon {daemon.exit_description()} before the webhook change reached the warehouse")
    return (f"{what}: deliveries {json.dumps(deliveries)[:400]}; webhook runs: {states}; daemon {daemon.exit_description()}; "
            f"daemon log tail:\n{daemon.tail()}")
