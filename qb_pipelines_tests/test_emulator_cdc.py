"""The emulator's Change Data Capture: envelope, tombstones, look-back, the 1000-object cap.

Objects are written into the real SQLite ``objects`` table as the engine stores them, then read
through ``cdc.changes``, the function the ``/cdc`` route calls. Shapes are compared with
``shared/reference/samples/cdc_response.json``.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import orjson
import pytest

from qb_pipelines.emulator import cdc
from qb_pipelines.emulator.clock import PACIFIC, qbo_timestamp
from qb_pipelines.emulator.faults import QBOFault
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines_tests.emulator_client import connect, issue_tokens
from qb_pipelines_tests.emulator_rows import REALM, EmulatorRows
from qb_pipelines_tests.samples import SAMPLES

DAY = 86400.0


@pytest.fixture
def store() -> EmulatorRows:
    return EmulatorRows()


def _now(store: EmulatorRows) -> float:
    return store.clock.timestamp()


def _since(ts: float) -> str:
    return qbo_timestamp(ts)


def _changes(store: EmulatorRows, entities: str, since: str) -> dict:
    return orjson.loads(cdc.changes(store.emu, REALM, entities, since))


def _fault(store: EmulatorRows, entities: str, since: str) -> dict:
    with pytest.raises(QBOFault) as info:
        cdc.changes(store.emu, REALM, entities, since)
    assert info.value.status == 400
    return info.value.fault_json()["Error"][0]


def _sample() -> dict:
    return json.loads((SAMPLES / "cdc_response.json").read_text())


def test_changes_have_the_sample_envelope_and_blocks(store: EmulatorRows) -> None:
    now = _now(store)
    customer = store.put("Customer", 63, {"DisplayName": "Amy's Bird Sanctuary"}, updated=now - 3600)
    estimate = store.put("Estimate", 34, {"TxnStatus": "Pending", "TotalAmt": 582.5}, updated=now - 1800)
    deleted = store.put("Estimate", 979, deleted=True, updated=now - 600)
    resp = _changes(store, "Customer,Estimate", _since(now - DAY))
    sample = _sample()["changes"]
    assert set(resp) == set(sample) == {"CDCResponse", "time"}
    assert isinstance(resp["CDCResponse"], list) and len(resp["CDCResponse"]) == 1
    blocks = resp["CDCResponse"][0]["QueryResponse"]
    sample_blocks = sample["CDCResponse"][0]["QueryResponse"]
    assert [set(b) - {"totalCount"} for b in blocks] == [set(b) for b in sample_blocks]
    assert blocks[0] == {"Customer": [customer], "startPosition": 1, "maxResults": 1, "totalCount": 1}
    assert blocks[1]["Estimate"] == [estimate, deleted]
    assert blocks[1]["maxResults"] == 2
    # the tombstone has exactly the sample's keys
    sample_tombstone = sample_blocks[1]["Estimate"][1]
    assert set(blocks[1]["Estimate"][1]) == set(sample_tombstone)
    assert set(blocks[1]["Estimate"][1]["MetaData"]) == {"LastUpdatedTime"}
    # envelope time: milliseconds and a numeric offset, like the sample's
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", resp["time"])


def test_no_changes_is_the_exact_empty_shape(store: EmulatorRows) -> None:
    now = _now(store)
    store.put("Customer", 1, {"DisplayName": "Old"}, updated=now - 5 * DAY)
    raw = cdc.changes(store.emu, REALM, "Customer", _since(now - DAY))
    resp = orjson.loads(raw)
    assert resp["CDCResponse"] == _sample()["no_changes"]["CDCResponse"] == [{"QueryResponse": [{}]}]
    assert raw.startswith(b'{"CDCResponse":[{"QueryResponse":[{}]}],"time":"')


def test_entities_without_changes_are_empty_blocks_in_request_order(store: EmulatorRows) -> None:
    now = _now(store)
    store.put("Invoice", 5, {"TotalAmt": 1}, updated=now - 60)
    blocks = _changes(store, "customer, INVOICE ,Item", _since(now - DAY))["CDCResponse"][0]["QueryResponse"]
    assert blocks[0] == {} and blocks[2] == {}
    assert [row["Id"] for row in blocks[1]["Invoice"]] == ["5"]


def test_inactive_and_voided_objects_are_ordinary_updates(store: EmulatorRows) -> None:
    now = _now(store)
    inactive = store.put("Customer", 7, {"DisplayName": "Gone (deleted)"}, active=False, updated=now - 60)
    voided = store.put("Invoice", 8, {"TotalAmt": 0, "PrivateNote": "Voided"}, updated=now - 30)
    blocks = _changes(store, "Customer,Invoice", _since(now - DAY))["CDCResponse"][0]["QueryResponse"]
    assert blocks[0]["Customer"] == [inactive]
    assert blocks[1]["Invoice"] == [voided]


def test_changed_since_accepts_dates_any_offset_and_plus_as_space(store: EmulatorRows) -> None:
    now = _now(store)
    store.put("Customer", 1, {"DisplayName": "A"}, updated=now - 2 * 3600)
    store.put("Customer", 2, {"DisplayName": "B"}, updated=now - 60)
    cutoff = now - 3600
    variants = [
        datetime.fromtimestamp(cutoff, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        datetime.fromtimestamp(cutoff, timezone(timedelta(hours=2))).isoformat(),
        datetime.fromtimestamp(cutoff, timezone(timedelta(hours=-7))).isoformat(timespec="milliseconds"),
    ]
    variants.append(variants[1].replace("+", " "))  # the '+' of the offset decoded as a space
    for since in variants:
        blocks = _changes(store, "Customer", since)["CDCResponse"][0]["QueryResponse"]
        assert [r["Id"] for r in blocks[0]["Customer"]] == ["2"], since
    # a bare date means midnight, company time: two days back covers both changes
    two_days_ago = datetime.fromtimestamp(now - 2 * DAY, PACIFIC).date().isoformat()
    blocks = _changes(store, "Customer", two_days_ago)["CDCResponse"][0]["QueryResponse"]
    assert [r["Id"] for r in blocks[0]["Customer"]] == ["1", "2"]


def test_look_back_is_30_days_of_emulator_time(store: EmulatorRows) -> None:
    now = _now(store)
    store.put("Customer", 1, {"DisplayName": "A"}, updated=now - 60)
    ok_since = _since(now - 29 * DAY)
    assert _changes(store, "Customer", ok_since)["CDCResponse"][0]["QueryResponse"][0]["maxResults"] == 1
    too_old = _since(now - 31 * DAY)
    err = _fault(store, "Customer", too_old)
    assert err["code"] == "4001"
    assert err["Detail"] == (
        f"Operation cdc with changedSince date {too_old} which is older than fixed days is not supported."
    )
    # advancing the emulator clock ages a cursor that was fine a moment ago
    store.clock.advance(2 * DAY)
    assert _fault(store, "Customer", ok_since)["code"] == "4001"


def test_response_is_capped_at_1000_oldest_changes_in_total(store: EmulatorRows) -> None:
    now = _now(store)
    # 700 customers and 700 invoices, interleaved in time (customer first in each second)
    for i in range(1, 701):
        store.put("Customer", i, {"DisplayName": f"C{i}"}, updated=now - 3000 + 2 * i)
        store.put("Invoice", i, {"TotalAmt": i}, updated=now - 3000 + 2 * i + 1)
    blocks = _changes(store, "Customer,Invoice", _since(now - DAY))["CDCResponse"][0]["QueryResponse"]
    customers, invoices = blocks[0]["Customer"], blocks[1]["Invoice"]
    assert len(customers) + len(invoices) == 1000
    assert [c["Id"] for c in customers] == [str(i) for i in range(1, 501)]
    assert [v["Id"] for v in invoices] == [str(i) for i in range(1, 501)]
    assert blocks[0]["maxResults"] == 500 and blocks[0]["totalCount"] == 700
    # a client that advances to the newest time it received gets the rest
    newest = invoices[-1]["MetaData"]["LastUpdatedTime"]
    rest = _changes(store, "Customer,Invoice", newest)["CDCResponse"][0]["QueryResponse"]
    assert int(rest[0]["Customer"][0]["Id"]) == 501 and rest[1]["Invoice"][-1]["Id"] == "700"


def test_unknown_unsupported_and_missing_parameters_fault(store: EmulatorRows) -> None:
    since = _since(_now(store) - DAY)
    assert _fault(store, "Customer,Widget", since) == {
        "Message": "Invalid query", "Detail": "QueryValidationError: invalid context declaration: Widget",
        "code": "4001"}
    err = _fault(store, "TaxCode", since)
    assert err["code"] == "4001" and "TaxCode" in err["Detail"]
    assert _fault(store, "", since)["code"] == "2020"
    assert _fault(store, "Customer", "")["code"] == "2020"
    assert _fault(store, "Customer", "yesterday")["code"] == "4001"


def test_changes_do_not_cross_companies(store: EmulatorRows) -> None:
    now = _now(store)
    store.put("Customer", 1, {"DisplayName": "Other company"}, updated=now - 60, realm="123145730715194")
    assert _changes(store, "Customer", _since(now - DAY))["CDCResponse"] == [{"QueryResponse": [{}]}]


# --- over HTTP, against the real engine ------------------------------------------------------


def test_cdc_over_http_shows_updates_voids_and_deletions(emulator: RunningEmulator) -> None:
    client = connect(emulator)
    emu = emulator.emu
    start = qbo_timestamp(emu.clock.timestamp() - 60)
    customer = client.make("Customer", {"DisplayName": "Amy's Bird Sanctuary"})
    account = client.ok(client.query("SELECT * FROM Account WHERE AccountType = 'Income' MAXRESULTS 1"),
                        "QueryResponse")["Account"][0]
    item = client.make("Item", {"Name": "Design", "Type": "Service", "IncomeAccountRef": {"value": account["Id"]}})
    line = [{"Amount": 75, "DetailType": "SalesItemLineDetail",
             "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": 1}}]
    kept = client.make("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": line})
    voided = client.make("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": line})
    deleted = client.make("Invoice", {"CustomerRef": {"value": customer["Id"]}, "Line": line})
    assert client.void("Invoice", voided["Id"], voided["SyncToken"]).status_code == 200
    assert client.delete("Invoice", deleted["Id"], deleted["SyncToken"]).status_code == 200

    # changedSince with its '+'/'-' offset; a '+' left unencoded arrives as a space
    since = quote(start, safe="+")
    response = client.session.get(f"{client.url('cdc')}?entities=invoice,Customer,Estimate&changedSince={since}"
                                  "&minorversion=75")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"CDCResponse", "time"}
    invoices, customers, estimates = body["CDCResponse"][0]["QueryResponse"]
    assert estimates == {}
    assert [c["Id"] for c in customers["Customer"]] == [customer["Id"]]
    by_id = {row["Id"]: row for row in invoices["Invoice"]}
    assert set(by_id) == {kept["Id"], voided["Id"], deleted["Id"]}
    assert by_id[deleted["Id"]] == {"domain": "QBO", "status": "Deleted", "Id": deleted["Id"],
                                    "MetaData": {"LastUpdatedTime": by_id[deleted["Id"]]["MetaData"]["LastUpdatedTime"]}}
    assert by_id[voided["Id"]]["TotalAmt"] == 0 and "status" not in by_id[voided["Id"]]
    assert invoices["maxResults"] == 3 and invoices["startPosition"] == 1
    # tombstones stay out of queries
    listed = client.ok(client.query("SELECT * FROM Invoice"), "QueryResponse")["Invoice"]
    assert deleted["Id"] not in {row["Id"] for row in listed}

    # 31 days later the same cursor is too old
    emu.advance_clock(31 * DAY)
    fresh = issue_tokens(emulator, client.realm)["access_token"]  # the old access token lapsed too
    client.session.headers["Authorization"] = f"Bearer {fresh}"
    stale = client.raw("GET", "cdc", params={"entities": "Invoice", "changedSince": start})
    assert stale.status_code == 400
    assert stale.json()["Fault"]["Error"][0]["code"] == "4001"
