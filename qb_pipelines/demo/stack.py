"""The headless stack: emulator, store, web app and reference app in one folder, stopped together."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qb_pipelines.demo.config import DEMO_SEED, DEMO_TENANT, SECRETS_FILE, Out
from qb_pipelines.demo.connect import ConnectedDemo, prepare_store, register_with_emulator
from qb_pipelines.demo.instance import write_demo_instance
from qb_pipelines.demo.refapp import reference_app_environment
from qb_pipelines.demo.secrets_file import demo_environment, load_secrets, sqlite_url
from qb_pipelines.devtools.services import run_emulator_process, run_reference_app_process, run_web_process

__all__ = ["Stack", "headless_stack"]


@dataclass
class Stack:
    """A running demo stack: emulator, web app, store, Dagster home (the daemon comes later)."""

    root: Path
    emulator_url: str
    web_url: str
    env: dict[str, str]
    connected: ConnectedDemo
    dagster_home: Path
    refapp_url: str | None = None
    refapp_env: dict[str, str] | None = None
    refapp_alive: Any = None


@contextlib.contextmanager
def headless_stack(root: Path, *, port: int, web_port: int, out: Out, refapp_port: int | None = None,
                   database_url: str | None = None, tenant_key: str = DEMO_TENANT,
                   dequeue_interval_s: int | None = 1) -> Iterator[Stack]:
    """Emulator (demo company, in memory) + store + web app (+ reference app) in ``root``: what headless runs need.

    The processes are supervised: they stop (with whatever they started) when the block ends,
    however it ends.

    Args:
        root: folder for the secrets, the SQLite store (unless ``database_url``), logs and
            ``DAGSTER_HOME``.
        port: the emulator's port.
        web_port: the web app's port.
        refapp_port: the reference app's port (Fieldwise, polling the feed every second and
            registered as the tenant's callback); ``None``: no reference app.
        out: where progress lines go.
        database_url: the store and warehouse; ``<root>/qb_pipelines.sqlite`` by default.
        tenant_key: the tenant that connects the demo company.
        dequeue_interval_s: the run queue's polling interval (1 s: a webhook's run starts at once).
    """
    values, _ = load_secrets(root / SECRETS_FILE)
    dagster_home = write_demo_instance(root / "dagster_home", dequeue_interval_s=dequeue_interval_s)
    with run_emulator_process(port, seed=DEMO_SEED) as emu:
        env = demo_environment(values, database_url=database_url or sqlite_url(root / "qb_pipelines.sqlite"),
                               emulator_url=emu.url, web_port=web_port, dagster_home=dagster_home,
                               secrets_path=root / SECRETS_FILE)
        connected = prepare_store(env, emu.url, values["QB_DEMO_ADMIN_PASSWORD"], tenant_key=tenant_key)
        out(f"connected {connected.company_name} (realm {connected.realm_id}) as {connected.company_key}")
        with run_web_process(web_port, env, root / "web.log") as web:
            register_with_emulator(emu.url, redirect_uri=env["QBO_REDIRECT_URI"],
                                   webhook_url=f"{web.url}/webhooks/quickbooks",
                                   verifier_token=values["QBO_WEBHOOK_VERIFIER_TOKEN"])
            out(f"admin web app at {web.url}; emulator webhooks -> {web.url}/webhooks/quickbooks")
            if refapp_port is None:
                yield Stack(root, emu.url, web.url, env, connected, dagster_home)
                return
            refapp_env = reference_app_environment(env, root / SECRETS_FILE, root, web_url=web.url, port=refapp_port,
                                                   tenant=tenant_key)
            with run_reference_app_process(refapp_port, refapp_env, root / "refapp.log") as refapp:
                out(f"reference app (Fieldwise) at {refapp.url}")
                yield Stack(root, emu.url, web.url, env, connected, dagster_home, refapp.url, refapp_env,
                            refapp.process.alive)
