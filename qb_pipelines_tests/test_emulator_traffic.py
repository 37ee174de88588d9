"""Traffic control: QBO's throttles (§6), injected faults (§4.7), counters and metering.

Throttles are checked both at the hook every v3 request goes through (``Traffic.admit``, used
directly where a test needs many or concurrent requests without timing games) and over real
HTTP against ``/v3/company/{realm}/...``, where a client sees QBO's 429 body and headers.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests

from qb_pipelines.emulator.faults import AuthFailure, QBOFault
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.emulator.traffic import DropConnection, Traffic
from qb_pipelines_tests.emulator_client import control


@dataclass
class Company:
    """A company in a running emulator, and what a client needs to call it."""

    running: RunningEmulator
    realm: str
    headers: dict[str, str]

    @property
    def url(self) -> str:
        return self.running.url

    @property
    def traffic(self) -> Traffic:
        return self.running.emu.traffic

    def v3(self, path: str) -> str:
        return f"{self.url}/v3/company/{self.realm}/{path}"

    def companyinfo(self, **kwargs: object) -> requests.Response:
        return requests.get(self.v3(f"companyinfo/{self.realm}"), headers=self.headers, **kwargs)

    def create_customer(self, name: str, requestid: str | None = None, **kwargs: object) -> requests.Response:
        params = {"minorversion": "75", **({"requestid": requestid} if requestid else {})}
        return requests.post(self.v3("customer"), params=params, json={"DisplayName": name},
                             headers=self.headers, **kwargs)

    def customers_named(self, name: str) -> list[dict]:
        response = requests.get(self.v3("query"), headers=self.headers,
                                params={"query": f"select * from Customer where DisplayName = '{name}'"})
        assert response.status_code == 200, response.text
        return response.json()["QueryResponse"].get("Customer", [])

    def faults(self, body: dict) -> dict:
        response = control(self.url, "POST", "faults", json=body)
        assert response.status_code == 200, response.text
        return response.json()

    def counters(self) -> dict:
        return control(self.url, "GET", f"companies/{self.realm}/counters").json()


@pytest.fixture
def company(emulator: RunningEmulator) -> Iterator[Company]:
    created = control(emulator.url, "POST", "companies", json={"name": "Traffic Test Landscaping"})
    assert created.status_code == 201, created.text
    realm = created.json()["realmId"]
    tokens = control(emulator.url, "POST", f"companies/{realm}/tokens").json()
    yield Company(emulator, realm, {"Authorization": f"Bearer {tokens['access_token']}",
                                    "Accept": "application/json"})


def _fill(traffic: Traffic, realm: str, count: int, kind: str = "read", app_key: str = "app") -> None:
    """Spend ``count`` requests of the company's budget through the admission hook."""
    for _ in range(count):
        with traffic.admit(realm, kind=kind, app_key=app_key, path=f"/v3/company/{realm}/query"):
            pass


def _throttled(traffic: Traffic, realm: str, kind: str = "read", app_key: str = "app") -> QBOFault | None:
    try:
        with traffic.admit(realm, kind=kind, app_key=app_key):
            return None
    except QBOFault as fault:
        return fault


def _assert_3001(fault: QBOFault | None) -> None:
    assert fault is not None
    assert fault.status == 429
    assert fault.type == "SERVICE"
    assert [e.code for e in fault.errors] == ["3001"]
    assert int(fault.headers["Retry-After"]) >= 1


# --- throttles at the hook ------------------------------------------------------------------


def test_eleventh_concurrent_request_per_realm_and_app_is_throttled(company: Company) -> None:
    traffic, realm = company.traffic, company.realm
    release = threading.Event()
    lock = threading.Lock()
    admitted: list[int] = []
    refused: list[QBOFault] = []

    def call(i: int) -> None:
        try:
            with traffic.admit(realm, kind="read", app_key="app-1"):
                with lock:
                    admitted.append(i)
                release.wait(10)
        except QBOFault as fault:
            with lock:
                refused.append(fault)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 10
    while len(admitted) + len(refused) < 12 and time.monotonic() < deadline:
        time.sleep(0.01)
    # another app on the same company has its own 10 slots
    other_app = _throttled(traffic, realm, app_key="app-2")
    release.set()
    for t in threads:
        t.join()
    assert len(admitted) == 10
    assert len(refused) == 2
    for fault in refused:
        _assert_3001(fault)
    assert other_app is None
    # slots are released when requests finish
    assert _throttled(traffic, realm, app_key="app-1") is None


def test_501st_request_in_a_rolling_minute_is_throttled_until_the_window_frees(company: Company) -> None:
    traffic, realm = company.traffic, company.realm
    _fill(traffic, realm, 300, kind="read")
    _fill(traffic, realm, 200, kind="write", app_key="another-app")  # the budget is per company
    company.running.emu.advance_clock(20)
    fault = _throttled(traffic, realm)
    _assert_3001(fault)
    assert fault is not None and 1 <= int(fault.headers["Retry-After"]) <= 40
    assert _throttled(traffic, "some-other-realm") is None
    company.running.emu.advance_clock(41)
    assert _throttled(traffic, realm) is None


def test_batch_caps_per_realm_and_app_and_per_realm(company: Company) -> None:
    traffic, realm = company.traffic, company.realm
    _fill(traffic, realm, 40, kind="batch", app_key="a")
    _assert_3001(_throttled(traffic, realm, kind="batch", app_key="a"))
    assert _throttled(traffic, realm, kind="read", app_key="a") is None  # plain calls still pass
    _fill(traffic, realm, 40, kind="batch", app_key="b")
    _fill(traffic, realm, 40, kind="batch", app_key="c")
    _assert_3001(_throttled(traffic, realm, kind="batch", app_key="d"))  # 120 per company
    company.running.emu.advance_clock(61)
    assert _throttled(traffic, realm, kind="batch", app_key="d") is None


# --- throttles over HTTP --------------------------------------------------------------------


def test_http_client_sees_qbos_429_with_retry_after(company: Company) -> None:
    _fill(company.traffic, company.realm, 500)
    response = company.companyinfo()
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert response.headers["intuit_tid"]
    body = response.json()
    assert body["Fault"]["type"] == "SERVICE"
    assert body["Fault"]["Error"] == [{
        "Message": "message=ThrottleExceeded; errorCode=003001; statusCode=429",
        "Detail": "The request limit was reached.  Try again later",
        "code": "3001",
    }]
    assert "time" in body


def test_limits_are_configurable_through_the_control_api(company: Company) -> None:
    url = company.url
    defaults = control(url, "GET", "limits").json()
    assert defaults == {"per_minute": 500, "concurrent": 10, "batch_per_minute_app": 40,
                        "batch_per_minute_realm": 120, "window_s": 60.0, "coreplus_per_month": None,
                        "enabled": True}
    assert control(url, "POST", "limits", json={"per_minute": 3}).json()["per_minute"] == 3
    assert [company.companyinfo().status_code for _ in range(4)] == [200, 200, 200, 429]
    bad = control(url, "POST", "limits", json={"per_minut": 3})
    assert bad.status_code == 400 and "per_minut" in bad.json()["error"]
    control(url, "POST", "limits", json={"enabled": False})
    assert company.companyinfo().status_code == 200
    assert control(url, "POST", "limits", json={"reset": True}).json() == defaults


def test_monthly_coreplus_cap_blocks_reads_not_writes(company: Company) -> None:
    control(company.url, "POST", "limits", json={"coreplus_per_month": 2})
    assert [company.companyinfo().status_code for _ in range(3)] == [200, 200, 429]
    assert company.create_customer("Cap Write Ltd").status_code == 200


# --- injected faults ------------------------------------------------------------------------


def test_fail_the_next_n_requests_then_recover(company: Company) -> None:
    config = company.faults({"next": {"fault": "500", "count": 2}})
    assert config["next"] == [{"fault": "500", "count": 2, "scope": None}]
    responses = [company.companyinfo() for _ in range(3)]
    assert [r.status_code for r in responses] == [500, 500, 200]
    fault = responses[0].json()["Fault"]
    assert fault["type"] == "SystemFault" and fault["Error"][0]["code"] == "10000"
    assert company.counters()["injected"] == {"500": 2}
    assert company.faults({})["next"] == []


def test_injected_500_on_a_write_is_decided_before_it_runs(company: Company) -> None:
    company.faults({"next": {"fault": "500", "count": 1, "scope": {"kinds": ["write"]}}})
    assert company.companyinfo().status_code == 200  # a read does not consume a write-scoped fault
    assert company.create_customer("Never Applied Inc").status_code == 500
    assert company.customers_named("Never Applied Inc") == []
    assert company.create_customer("Never Applied Inc").status_code == 200
    assert len(company.customers_named("Never Applied Inc")) == 1


def test_injected_429_503_and_expired_token(company: Company) -> None:
    company.faults({"next": [{"fault": "429", "count": 1}, {"fault": "503", "count": 1},
                             {"fault": "expired_token", "count": 1}]})
    throttled = company.companyinfo()
    assert throttled.status_code == 429 and throttled.json()["Fault"]["Error"][0]["code"] == "3001"
    assert int(throttled.headers["Retry-After"]) >= 1
    unavailable = company.companyinfo()
    assert unavailable.status_code == 503
    assert not unavailable.headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError):
        unavailable.json()
    expired = company.companyinfo()
    assert expired.status_code == 401
    error = expired.json()["fault"]["error"][0]
    assert error["code"] == "3200" and error["detail"].startswith("Token expired: ")
    assert company.companyinfo().status_code == 200


def _401_without_time(response: requests.Response) -> tuple[dict, str]:
    body = response.json()
    body.pop("time")
    return body, response.headers["www-authenticate"]


def test_an_injected_expired_token_looks_exactly_like_a_natural_one_and_never_quotes_the_token(
        company: Company) -> None:
    token = company.headers["Authorization"].split(" ", 1)[1]
    company.faults({"next": {"fault": "expired_token", "count": 1}})
    injected = company.companyinfo()
    assert injected.status_code == 401
    assert token not in injected.text and token not in str(injected.headers)
    # the same token expiring for real: Intuit's 401 names the token by its id, never by its value
    expired = control(company.url, "POST", "oauth/expire", json={"realmId": company.realm, "what": "access"})
    assert expired.status_code == 200, expired.text
    natural = company.companyinfo()
    assert natural.status_code == 401 and token not in natural.text
    assert _401_without_time(injected) == _401_without_time(natural)
    detail = injected.json()["fault"]["error"][0]["detail"]
    assert re.fullmatch(r"Token expired: AB0\d{10}[A-Za-z0-9]{37}", detail), detail


def test_path_scoped_injection(company: Company) -> None:
    company.faults({"next": {"fault": "500", "count": 1, "scope": {"paths": ["/query$"]}}})
    assert company.companyinfo().status_code == 200
    response = requests.get(company.v3("query"), headers=company.headers,
                            params={"query": "select * from Customer"})
    assert response.status_code == 500
    assert company.customers_named("nobody") == []


def test_seeded_rates_give_the_same_outcomes_every_run(company: Company) -> None:
    traffic, realm = company.traffic, company.realm

    def outcomes() -> list[str]:
        out = []
        for _ in range(40):
            try:
                with traffic.admit(realm, kind="read", app_key="app"):
                    out.append("ok")
            except QBOFault as fault:
                out.append(str(fault.status))
            except AuthFailure:
                out.append("401")
        return out

    company.faults({"clear": True, "seed": 7, "rates": {"500": 0.3, "429": 0.2, "expired_token": 0.1}})
    first = outcomes()
    company.faults({"clear": True, "seed": 7, "rates": {"500": 0.3, "429": 0.2, "expired_token": 0.1}})
    assert outcomes() == first
    assert {"ok", "500", "429", "401"} <= set(first)
    company.faults({"clear": True})
    assert set(outcomes()) == {"ok"}


def test_rates_scoped_to_writes_leave_reads_alone(company: Company) -> None:
    company.faults({"rates": {"500": 1.0}, "scope": {"kinds": ["write"]}})
    assert company.companyinfo().status_code == 200
    assert company.create_customer("Scoped Write Co").status_code == 500


def test_invalid_fault_configuration_is_refused_whole(company: Company) -> None:
    for body in ({"rates": {"500": 1.5}}, {"rates": {"500": 0.6, "429": 0.6}}, {"rates": {"boom": 0.1}},
                 {"next": {"fault": "boom"}}, {"scope": {"kinds": ["reads"]}}, {"unknown": 1}):
        response = control(company.url, "POST", "faults", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]
    assert control(company.url, "GET", "faults").json()["rates"]["500"] == 0.0


def test_slow_response_makes_a_short_client_timeout_fire(company: Company) -> None:
    company.faults({"next": {"fault": "slow", "count": 1}, "slow_delay_s": 1.0})
    with pytest.raises(requests.exceptions.ReadTimeout):
        company.companyinfo(timeout=0.3)
    assert company.companyinfo(timeout=5).status_code == 200


def test_dropped_connection_is_a_connection_error_and_the_request_never_ran(company: Company) -> None:
    company.faults({"next": {"fault": "drop", "count": 1}})
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        company.create_customer("Dropped Before Running")
    assert company.customers_named("Dropped Before Running") == []
    assert company.counters()["injected"] == {"drop": 1}


def test_timeout_after_commit_then_retry_with_same_requestid_is_not_duplicated(company: Company) -> None:
    company.faults({"next": {"fault": "timeout_after_commit", "count": 1}, "after_commit": "drop"})
    requestid = str(uuid.uuid4())
    with pytest.raises((requests.exceptions.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        company.create_customer("Committed Then Dropped", requestid)
    # the write was applied although the client never saw the answer
    assert len(company.customers_named("Committed Then Dropped")) == 1
    retry = company.create_customer("Committed Then Dropped", requestid)
    assert retry.status_code == 200
    assert len(company.customers_named("Committed Then Dropped")) == 1
    assert retry.json()["Customer"]["Id"] == company.customers_named("Committed Then Dropped")[0]["Id"]


def test_timeout_after_commit_as_a_delay_is_a_read_timeout(company: Company) -> None:
    company.faults({"next": {"fault": "timeout_after_commit", "count": 1}, "after_commit": "delay",
                    "after_commit_delay_s": 1.0})
    requestid = str(uuid.uuid4())
    with pytest.raises(requests.exceptions.ReadTimeout):
        company.create_customer("Committed Then Slow", requestid, timeout=0.3)
    retry = company.create_customer("Committed Then Slow", requestid, timeout=5)
    assert retry.status_code == 200
    assert len(company.customers_named("Committed Then Slow")) == 1


def test_drop_at_the_hook_raises_drop_connection(company: Company) -> None:
    company.faults({"next": {"fault": "drop", "count": 1}})
    with pytest.raises(DropConnection), company.traffic.admit(company.realm, kind="read", app_key="app"):
        pass


# --- counters and metering ------------------------------------------------------------------


def test_counters_and_monthly_metering(company: Company) -> None:
    url, realm = company.url, company.realm
    for _ in range(3):
        assert company.companyinfo().status_code == 200
    assert company.create_customer("Metered Write LLC").status_code == 200
    assert len(company.customers_named("Metered Write LLC")) == 1
    control(url, "POST", "limits", json={"per_minute": 5})
    assert company.companyinfo().status_code == 429

    counters = company.counters()
    assert counters["requests"] == {"total": 6, "read": 5, "write": 1, "batch": 0}
    assert counters["endpoints"] == {"companyinfo": 4, "customer": 1, "query": 1}
    assert counters["throttled"] == 1
    month = company.running.emu.clock.now().astimezone(company.running.emu.company_tz(realm)).strftime("%Y-%m")
    assert counters["metering"] == {month: {"read": 4, "write": 1}}  # the throttled call is not metered

    metering = control(url, "GET", "metering", params={"realmId": realm, "month": month}).json()
    assert metering == {"metering": [{"realmId": realm, "month": month, "read": 4, "write": 1}]}
    assert control(url, "GET", "metering", params={"month": "1999-01"}).json() == {"metering": []}

    assert control(url, "POST", "counters/reset", json={}).json() == {"reset": True}
    after = company.counters()
    assert after["requests"]["total"] == 0 and after["throttled"] == 0
    assert after["metering"] == {month: {"read": 4, "write": 1}}  # metering is kept: it is billing
    control(url, "POST", "counters/reset", json={"realmId": realm, "metering": True, "windows": True})
    assert company.counters()["metering"] == {}
    assert company.companyinfo().status_code == 200  # the window was emptied too


def test_metering_survives_a_restart(tmp_path: object) -> None:
    from qb_pipelines.emulator.core import Emulator, EmulatorSettings

    path = str(tmp_path) + "/emu.db"  # type: ignore[operator]
    first = Emulator(EmulatorSettings(data_file=path))
    _fill(first.traffic, "123", 3, kind="read")
    _fill(first.traffic, "123", 2, kind="write")
    first.close()
    second = Emulator(EmulatorSettings(data_file=path))
    try:
        assert [(m["read"], m["write"]) for m in second.traffic.metering("123")] == [(3, 2)]
    finally:
        second.close()
