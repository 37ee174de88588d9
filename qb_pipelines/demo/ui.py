"""``qb-pipelines demo``: the emulator, the admin web app and ``dagster dev``, until Ctrl-C.

Every process is supervised (:mod:`qb_pipelines.devtools.services`): Ctrl-C or SIGTERM (under
:func:`~qb_pipelines.devtools.signals.interrupt_on_signals`) stops ``dagster dev`` (its UI,
daemon and code server), the web app and the emulator, in that order; if one of them stops on
its own (for example ``dagster dev``, when its daemon dies), the demo says which and stops the
others.
"""

from __future__ import annotations

import re
from pathlib import Path

from qb_pipelines.demo.check import check_emulator, print_connection_help
from qb_pipelines.demo.config import DEMO_SEED, SECRETS_FILE, DemoError, Out
from qb_pipelines.demo.connect import ConnectedDemo, prepare_store, register_with_emulator
from qb_pipelines.demo.instance import write_demo_instance
from qb_pipelines.demo.refapp import reference_app_environment
from qb_pipelines.demo.secrets_file import demo_environment, load_secrets, source_command, sqlite_url
from qb_pipelines.devtools.ports import port_is_free
from qb_pipelines.devtools.processes import console_script, wait_any
from qb_pipelines.devtools.services import (
    dagster_dev_process,
    run_emulator_process,
    run_reference_app_process,
    run_web_process,
)

__all__ = ["print_demo_help", "run_ui"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run_ui(*, port: int, dagster_port: int, web_port: int, root: Path, out: Out, refapp_port: int = 8100) -> None:
    """Run the interactive demo in ``root`` until interrupted.

    Returns when Ctrl-C or SIGTERM stopped it (everything it started is stopped by then).

    Raises:
        DemoError: a port is taken, a step failed, or a process stopped on its own.
        qb_pipelines.devtools.processes.ProcessError: a process did not start.
    """
    root.mkdir(parents=True, exist_ok=True)
    secrets_path = root / SECRETS_FILE
    values, created = load_secrets(secrets_path)
    # The run queue is polled every second (Dagster: 5 s) so a webhook's run starts at once.
    dagster_home = write_demo_instance(root / "dagster_home", dequeue_interval_s=1)
    console_script("dagster")  # missing: say so before starting anything
    for what, number, flag in (("Dagster UI", dagster_port, "--dagster-port"), ("admin web app", web_port, "--web-port"),
                               ("reference app", refapp_port, "--refapp-port")):
        if not port_is_free(number):
            raise DemoError(f"port {number} ({what}) is in use: stop what runs there or pass {flag}")

    try:
        with run_emulator_process(port, seed=DEMO_SEED, data_file=str(root / "emulator.sqlite")) as emu:
            check = check_emulator(emu.url)
            print_connection_help(check, out)
            env = demo_environment(values, database_url=sqlite_url(root / "qb_pipelines.sqlite"),
                                   emulator_url=emu.url, web_port=web_port, dagster_home=dagster_home,
                                   secrets_path=secrets_path)
            # The records API asks `dagster dev` for a push run at once (the outbox sensor stays
            # the backstop): best effort, so the web app may start before the Dagster UI answers.
            env["QB_DAGSTER_GRAPHQL_URL"] = f"http://127.0.0.1:{dagster_port}/graphql"
            connected = prepare_store(env, emu.url, values["QB_DEMO_ADMIN_PASSWORD"])
            with run_web_process(web_port, env, root / "web.log") as web:
                register_with_emulator(emu.url, redirect_uri=env["QBO_REDIRECT_URI"],
                                       webhook_url=f"{web.url}/webhooks/quickbooks",
                                       verifier_token=values["QBO_WEBHOOK_VERIFIER_TOKEN"])
                print_demo_help(connected, web.url, dagster_port, dagster_home, secrets_path,
                                values["QB_DEMO_ADMIN_PASSWORD"] if "QB_DEMO_ADMIN_PASSWORD" in created else None,
                                check.url, out)
                refapp_env = reference_app_environment(env, secrets_path, root, web_url=web.url, port=refapp_port,
                                                       tenant=connected.tenant_key)
                with run_reference_app_process(refapp_port, refapp_env, root / "refapp.log") as refapp:
                    out(f"reference app (Fieldwise) at {refapp.url}")
                    # cwd is the demo folder, not the checkout: Dagster warns about the top-level
                    # dagster.yaml (the deployment's PostgreSQL config) when started beside it.
                    with dagster_dev_process(dagster_port, _dagster_env(env), root) as ui:
                        ended = wait_any([ui, refapp.process, web.process, emu.process])
                        raise DemoError(f"{ended.name} stopped on its own ({ended.exit_description()})"
                                        f"{_reason(ended.tail(400))}; its last lines:\n{ended.tail(8)}\n"
                                        "Stopping everything the demo started.")
    except KeyboardInterrupt:
        # Ctrl-C or SIGTERM: the with-blocks above have stopped every process by now.
        out("Stopped: every process the demo started (Dagster, the web app, the emulator) is stopped.")


def _dagster_env(env: dict[str, str]) -> dict[str, str]:
    # `dagster dev` notes that `dg dev` supersedes it; `dg` needs the separate dagster-dg-cli
    # and a [tool.dg] project table, and the note means nothing to a demo user.
    quiet = "ignore:Function `dev_command` is superseded"
    return {**env, "PYTHONWARNINGS": ",".join(w for w in (env.get("PYTHONWARNINGS"), quiet) if w)}


def _reason(lines: str) -> str:
    """The line of a child's output that says why it stopped (``dagster dev`` names its dead service)."""
    found = [line for line in lines.splitlines() if "unexpectedly" in line or line.startswith("Error")]
    return f": {_ANSI.sub('', found[-1]).strip()}" if found else ""


def print_demo_help(connected: ConnectedDemo, web_url: str, dagster_port: int, dagster_home: Path, secrets_path: Path,
                    new_password: str | None, emulator_url: str, out: Out) -> None:
    """Where everything is, and a change to try."""
    kept = f", kept as you left it ({connected.state.replace('_', ' ')})" if connected.connect_kind == "kept" else ""
    out(f"Connected:         {connected.company_name} for tenant '{connected.tenant_key}' "
        f"(company key {connected.company_key}{kept})")
    out(f"Admin web app:     {web_url}/integrations  (user {connected.admin_email})")
    if new_password:
        out(f"Admin password:    {new_password}  (shown once; it is also kept in {secrets_path})")
    else:
        out(f"Admin password:    QB_DEMO_ADMIN_PASSWORD in {secrets_path}")
    out(f"Secrets:           {secrets_path} (mode 600: token key, session secret, webhook verifier token)")
    out(f"From a shell:      {source_command(secrets_path)}   (the demo's store, emulator and DAGSTER_HOME: "
        "then qb-pipelines users list, qb-pipelines sync --company demo)")
    out(f"DAGSTER_HOME:      {dagster_home}")
    out(f"Dagster UI:        http://127.0.0.1:{dagster_port}  -> Assets, select all, Materialize all")
    out("Try a webhook:     "
        f"qb-pipelines emulator act {connected.realm_id} Customer create --data '{{\"DisplayName\": \"New Co\"}}' "
        f"--url {emulator_url}")
    out("                   (the customer lands in table qbo_customer within seconds: webhook, sensor, run)")
    out("Ctrl-C stops the Dagster UI, the web app and the emulator.")
