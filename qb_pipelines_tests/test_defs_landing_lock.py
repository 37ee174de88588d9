"""The landing asset and the company lock: a Dagster run waits for a landing started elsewhere.

A real emulator over HTTP, a real SQLite store, a real ephemeral Dagster instance; the "other
landing" is a holder of the company's ``land`` lock taken with ``qb-pipelines sync``'s own code
path (``store.locks``) in another thread. The run logs whom it waits for, lands once the lock is
free, and, when the wait runs out, fails with the same words instead of a traceback.
"""

from __future__ import annotations

import secrets
import threading
import time
from pathlib import Path

import dagster as dg
import requests

from qb_pipelines.defs.assets import INGEST_OP_NAME, entity_asset_key, qbo_raw_entities
from qb_pipelines.defs.partitions import QBO_COMPANY_PARTITIONS_NAME
from qb_pipelines.defs.resources import QBOConnectionResource, WarehouseResource
from qb_pipelines.emulator.seed import seed_company
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.store.crypto import generate_key
from qb_pipelines.store.locks import CompanyLocks
from qb_pipelines.sync.companies import company_key
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.harness import complete_setup_wizard


def test_a_dagster_landing_waits_for_another_landing_of_its_company(emulator: RunningEmulator,
                                                                      tmp_path: Path) -> None:
    qbo = QBOConnectionResource(database_url=f"sqlite:///{tmp_path / 'qb.sqlite'}", fernet_key=generate_key(),
                                client_id="emulator-client-id", client_secret="emulator-client-secret",
                                environment="emulator", emulator_url=emulator.url, max_retries=1)
    runtime = qbo.runtime()
    resources = {"qbo": qbo, "warehouse": WarehouseResource(qbo=qbo)}
    realm = emulator.emu.engine.create_company("Locked Co")
    seed_company(emulator.emu, realm, invoices=5)
    tenant = f"t{secrets.token_hex(3)}"
    runtime.tenants.ensure_tenant(tenant, "Locked")
    body = requests.post(f"{emulator.url}/_emulator/companies/{realm}/tokens", timeout=10).json()
    runtime.connections.save_tokens_on_connect(tenant, "emulator", realm, "Co", "a@example.com", "A", "B",
                                               TokenSet.from_response(body, realm_id=realm))
    complete_setup_wizard(runtime, tenant)
    key = company_key(tenant, realm)
    locks = CompanyLocks(runtime.engine)

    def materialize(instance: dg.DagsterInstance, wait_s: float) -> dg.ExecuteInProcessResult:
        return dg.materialize([qbo_raw_entities], partition_key=key, resources=resources, instance=instance,
                              selection=[entity_asset_key("Customer")], raise_on_error=False,
                              run_config={"ops": {INGEST_OP_NAME: {"config": {"lock_wait_s": wait_s}}}})

    def logs(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> str:
        return "\n".join(str(e.user_message) for e in instance.all_logs(result.run_id))

    try:
        with dg.DagsterInstance.ephemeral() as instance:
            instance.add_dynamic_partitions(QBO_COMPANY_PARTITIONS_NAME, [key])
            # another landing (say `qb-pipelines sync`) holds the company for the whole wait: clear failure
            with locks.hold(key, "land", run_id="cli-run"):
                failed = materialize(instance, 0.5)
            assert not failed.success
            failure = failed.failure_data_for_node(INGEST_OP_NAME)
            assert failure is not None
            description = str(failure.user_failure_data.description)
            assert f"company {key} is still being landed by another run" in description
            assert "run cli-run" in description and "try again when that run ends" in description

            # it ends while the run waits: the run says whom it waits for, then lands
            held, release = threading.Event(), threading.Event()

            def other_landing() -> None:
                with locks.hold(key, "land", run_id="cli-run"):
                    held.set()
                    release.wait(30)

            thread = threading.Thread(target=other_landing)
            thread.start()
            assert held.wait(10)
            threading.Timer(1.5, release.set).start()
            started = time.monotonic()
            result = materialize(instance, 60)
            thread.join()
            assert result.success
            assert time.monotonic() - started >= 1.0
            assert f"company {key} is being landed by another run (pid " in logs(instance, result)
            assert runtime.warehouse.counts("Customer", key)["active"] > 0
    finally:
        Runtime.close_shared()
