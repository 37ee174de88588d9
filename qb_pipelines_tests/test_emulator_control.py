"""The one client of the emulator's control API drives every route of a real emulator over HTTP."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from qb_pipelines.devtools.ports import free_port
from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.server import RunningEmulator, start_in_thread
from qb_pipelines.qbo.client import QBOClient
from qb_pipelines.qbo.emulator_control import (
    DEFAULT_EMULATOR_URL,
    EmulatorControl,
    EmulatorControlError,
    EmulatorUnreachableError,
)
from qb_pipelines.qbo.environments import environment


def test_companies_seeding_acting_and_reading_back(emulator: RunningEmulator) -> None:
    control = EmulatorControl(emulator.url)
    assert control.health()["status"] == "ok"
    realm = control.create_company("Control Co")["realmId"]
    assert [c["realmId"] for c in control.companies()] == [realm]
    summary = control.seed_company(realm, 12, seed=3)
    assert summary["invoices"] == 12
    assert control.counts(realm)["Invoice"]["active"] == 12

    created = control.act(realm, "Customer", "create", {"DisplayName": "Walk-in"})["Customer"]
    control.act(realm, "Customer", "update", {"Id": created["Id"], "Notes": "edited"})
    exported = {c["Id"]: c for c in control.export(realm, "Customer")}
    assert exported[created["Id"]]["Notes"] == "edited"
    invoice = control.export(realm, "Invoice")[0]
    control.act(realm, "Invoice", "send", {"Id": invoice["Id"]}, send_to="ap@example.com")
    assert [(s["id"], s["sendTo"]) for s in control.sends(realm)] == [(invoice["Id"], "ap@example.com")]

    control.reset_company(realm)
    assert control.counts(realm).get("Invoice", {}).get("active", 0) == 0


def test_tokens_apps_users_and_grants(emulator: RunningEmulator) -> None:
    control = EmulatorControl(emulator.url)
    realm = control.create_company("Token Co")["realmId"]
    tokens = control.tokens(realm)
    assert {"access_token", "refresh_token", "client_id", "client_secret"} <= set(tokens)
    app = control.register_app("emulator-client-id", ["http://127.0.0.1:9/cb"])
    assert "http://127.0.0.1:9/cb" in app["redirect_uris"]
    assert any(a["client_id"] == "emulator-client-id" for a in control.apps())
    control.add_user("amy@example.com", "secret", givenName="Amy", realmIds=[realm])
    assert "amy@example.com" in {u["email"] for u in control.users(realm)}
    assert control.expire_tokens(realm, "access")["expired"]["access"] >= 1
    assert control.revoke_all(realm)["revoked_grants"] >= 1


def test_clock_faults_limits_and_counters(emulator: RunningEmulator) -> None:
    control = EmulatorControl(emulator.url)
    realm = control.create_company("Traffic Co")["realmId"]
    before = control.clock()["offset_seconds"]
    assert control.advance_clock(3600)["offset_seconds"] >= before + 3600
    assert control.set_clock_scale(2.0)["scale"] == 2.0

    control.set_faults({"rates": {"429": 1.0}, "scope": {"realms": [realm]}})
    faults = control.faults()
    assert faults["rates"]["429"] == 1.0 and faults["scope"]["realms"] == [realm]
    token = control.tokens(realm)["access_token"]
    answered = requests.get(f"{emulator.url}/v3/company/{realm}/companyinfo/{realm}",
                            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}, timeout=10)
    assert answered.status_code == 429
    control.clear_faults()
    assert control.faults()["rates"]["429"] == 0.0
    counted = control.counters(realm)
    assert counted["requests"]["total"] >= 1 and sum(counted["injected"].values()) >= 1
    assert isinstance(control.metering(), dict)
    control.reset_counters()
    assert control.counters(realm)["requests"]["total"] == 0
    assert control.limits()["enabled"] is True
    control.set_limits({"enabled": False})
    assert control.limits()["enabled"] is False


def test_webhook_subscription_and_deliveries(emulator: RunningEmulator) -> None:
    received: list[bytes] = []

    import http.server

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        control = EmulatorControl(emulator.url)
        realm = control.create_company("Hook Co")["realmId"]
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        control.subscribe_webhooks(url, "verifier", window_s=0.2)
        assert [s["url"] for s in control.webhook_subscriptions()] == [url]
        control.act(realm, "Customer", "create", {"DisplayName": "Hooked"})
        control.flush_webhooks()
        deadline = time.monotonic() + 10
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received and b"Customer" in received[0]
        assert control.webhook_deliveries()["deliveries"][0]["ok"] is True
        assert control.unsubscribe_webhooks()["deleted"]
    finally:
        server.shutdown()


def test_errors_name_the_next_step(emulator: RunningEmulator) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(EmulatorUnreachableError) as unreachable:
        EmulatorControl(url, connect_retries=0).companies()
    assert str(unreachable.value).startswith(f"no emulator at {url}: start one with `qb-pipelines emulator serve")
    with pytest.raises(EmulatorControlError) as missing:
        EmulatorControl(emulator.url).tokens("123")
    assert missing.value.status == 404 and "qb-pipelines emulator companies" in str(missing.value)
    assert EmulatorControl().url == DEFAULT_EMULATOR_URL


def test_a_refused_connection_is_retried_while_the_emulator_starts() -> None:
    port = free_port()
    started: list[RunningEmulator] = []
    # the emulator comes up a moment after the first call was made
    timer = threading.Timer(0.3, lambda: started.append(start_in_thread(Emulator(EmulatorSettings()), port=port)))
    timer.start()
    try:
        assert EmulatorControl(f"http://127.0.0.1:{port}", connect_retries=6, backoff_s=0.2).companies() == []
    finally:
        timer.join()
        for running in started:
            running.stop()


def test_token_source_mints_a_new_token_when_the_old_one_is_stale(emulator: RunningEmulator) -> None:
    control = EmulatorControl(emulator.url)
    realm = control.create_company("Stale Co")["realmId"]
    source = control.token_source(realm)
    first = source.access_token()
    control.expire_tokens(realm, "access")
    client = QBOClient(realm, source, environment("emulator", emulator_url=emulator.url))
    assert client.company_info()["CompanyName"] == "Stale Co"  # the 401 made it ask for a fresh token
    assert source.access_token() != first
    assert first not in repr(source)
