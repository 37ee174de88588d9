"""Batch calls and ``requestid`` idempotency of the QBO emulator, over real HTTP (reference §1.6, §5).

Batch: at most 30 items, results matched by ``bId``, per-item faults inside an HTTP 200, query
items, no rollback across items. requestid: a repeated id for the same company replays the first
response verbatim (same Id, SyncToken and ``time``) without running the request again, faults
included, even when ten copies race; ids over 50 characters are refused with 6000, and in a batch
``len(requestid) + len(bId) > 50`` faults the item.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

import pytest

from qb_pipelines_tests.emulator_client import QBOTestClient, connect


@pytest.fixture
def qbo(emulator: Any) -> QBOTestClient:
    return connect(emulator)


def _create_item(bid: str, name: str) -> dict:
    return {"bId": bid, "operation": "create", "Customer": {"DisplayName": name}}


def _by_bid(response: Any) -> dict[str, dict]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"BatchItemResponse", "time"}
    items = body["BatchItemResponse"]
    result = {item["bId"]: item for item in items}
    assert len(result) == len(items), "bIds must be unique in the response"
    return result


# ---------------------------------------------------------------------------- batch (§5)
def test_batch_of_30_items_runs_and_31_is_refused(qbo: QBOTestClient) -> None:
    items = [_create_item(f"b{n}", f"Customer {n:02d}") for n in range(30)]
    results = _by_bid(qbo.batch(items))
    assert set(results) == {f"b{n}" for n in range(30)}
    for n in range(30):
        item = results[f"b{n}"]
        assert set(item) == {"bId", "Customer"}
        assert item["Customer"]["DisplayName"] == f"Customer {n:02d}"  # matched by bId, not by position
        assert item["Customer"]["SyncToken"] == "0"
    assert qbo.count("Customer") == 30

    too_many = qbo.batch([_create_item(f"c{n}", f"Other {n:02d}") for n in range(31)])
    assert too_many.status_code == 400, too_many.text
    assert too_many.json()["Fault"]["Error"][0]["code"]
    assert qbo.count("Customer") == 30  # nothing of the refused batch ran


def test_batch_items_fault_independently_inside_http_200(qbo: QBOTestClient) -> None:
    qbo.make("Customer", {"DisplayName": "Taken Name"})
    item = qbo.make("Item", {"Name": "Design", "Type": "Service", "UnitPrice": 75, "IncomeAccountRef": {"value": "82"}})
    results = _by_bid(qbo.batch([
        {"bId": "dup", "operation": "create", "Vendor": {"DisplayName": "Taken Name"}},
        {"bId": "ok", "operation": "create", "Vendor": {"DisplayName": "Fresh Vendor"}},
        {"bId": "gone", "operation": "delete", "Invoice": {"Id": "4242", "SyncToken": "0"}},
        {"bId": "noname", "operation": "create", "Item": {"Type": "Service", "IncomeAccountRef": {"value": "82"}}},
        {"bId": "upd", "operation": "update", "Item": {"Id": item["Id"], "SyncToken": "0", "sparse": True,
                                                      "Description": "Custom Design"}},
        {"bId": "q", "Query": "SELECT * FROM Item WHERE Name = 'Design'"},
        {"bId": "empty", "Query": "SELECT * FROM Invoice"},
        {"bId": "count", "Query": "SELECT COUNT(*) FROM Item"},
    ]))
    codes = {bid: r["Fault"]["Error"][0]["code"] for bid, r in results.items() if "Fault" in r}
    assert codes == {"dup": "6240", "gone": "610", "noname": "2020"}
    for bid in codes:
        assert set(results[bid]) == {"bId", "Fault"} and results[bid]["Fault"]["type"] == "ValidationFault"
    assert set(results["ok"]) == {"bId", "Vendor"} and results["ok"]["Vendor"]["DisplayName"] == "Fresh Vendor"
    assert results["upd"]["Item"]["SyncToken"] == "1" and results["upd"]["Item"]["Description"] == "Custom Design"
    # execution order is not promised (§5): the query item is checked for what holds either way
    q = results["q"]["QueryResponse"]
    assert set(results["q"]) == {"bId", "QueryResponse"}
    assert [i["Id"] for i in q["Item"]] == [item["Id"]] and q["startPosition"] == 1 and q["maxResults"] == 1
    assert results["empty"] == {"bId": "empty", "QueryResponse": {}}
    assert results["count"]["QueryResponse"]["totalCount"] == 2  # the built-in "Services" and Design
    # a failed item rolls nothing else back
    assert qbo.count("Vendor") == 1 and qbo.get("Item", item["Id"])["Description"] == "Custom Design"


def test_batch_delete_and_void_items(qbo: QBOTestClient) -> None:
    cust = qbo.make("Customer", {"DisplayName": "Jeff's Jalopies"})
    item = qbo.make("Item", {"Name": "Hours", "Type": "Service", "UnitPrice": 10, "IncomeAccountRef": {"value": "1"}})
    line = {"Amount": 10.0, "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": 1, "UnitPrice": 10}}
    inv = qbo.make("Invoice", {"CustomerRef": {"value": cust["Id"]}, "Line": [line]})
    sr = qbo.make("SalesReceipt", {"CustomerRef": {"value": cust["Id"]}, "Line": [line]})
    results = _by_bid(qbo.batch([
        {"bId": "del", "operation": "delete", "Invoice": {"Id": inv["Id"], "SyncToken": "0"}},
        {"bId": "void", "operation": "update", "optionsData": "void",
         "SalesReceipt": {"Id": sr["Id"], "SyncToken": "0", "sparse": True}},
    ]))
    assert results["del"]["Invoice"] == {"domain": "QBO", "status": "Deleted", "Id": inv["Id"]}
    assert results["void"]["SalesReceipt"]["TotalAmt"] == 0
    assert results["void"]["SalesReceipt"]["PrivateNote"].startswith("Voided")
    assert qbo.read("Invoice", inv["Id"]).json()["Fault"]["Error"][0]["code"] == "610"


# ---------------------------------------------------------------------------- requestid (§1.6)
def test_repeated_requestid_replays_the_create(qbo: QBOTestClient) -> None:
    rid = str(uuid.uuid4())
    first = qbo.create("Customer", {"DisplayName": "Replay Customer"}, requestid=rid)
    assert first.status_code == 200, first.text
    again = qbo.create("Customer", {"DisplayName": "Replay Customer"}, requestid=rid)
    assert again.status_code == 200
    assert again.content == first.content  # verbatim: same Id, SyncToken and time
    assert again.json()["time"] == first.json()["time"]
    assert qbo.count("Customer") == 1
    # the object moved on since; the replay still shows the original response
    cust = first.json()["Customer"]
    qbo.ok(qbo.update("Customer", {"Id": cust["Id"], "SyncToken": "0", "Notes": "edited"}, sparse=True), "Customer")
    third = qbo.create("Customer", {"DisplayName": "Replay Customer"}, requestid=rid)
    assert third.content == first.content and third.json()["Customer"]["SyncToken"] == "0"
    # a new requestid runs again (and hits the duplicate name)
    assert qbo.create("Customer", {"DisplayName": "Replay Customer"}, requestid=str(uuid.uuid4())).status_code == 400
    assert qbo.count("Customer") == 1


def test_repeated_requestid_replays_a_fault(qbo: QBOTestClient) -> None:
    cust = qbo.make("Customer", {"DisplayName": "Smith Family Store"})
    rid = uuid.uuid4().hex
    first = qbo.create("Vendor", {"DisplayName": "Smith Family Store"}, requestid=rid)
    assert first.status_code == 400 and first.json()["Fault"]["Error"][0]["code"] == "6240"
    # remove the cause: a re-run would now succeed, a replay returns the original fault
    qbo.ok(qbo.update("Customer", {"Id": cust["Id"], "SyncToken": "0", "DisplayName": "Smith Family Shop"},
                      sparse=True), "Customer")
    again = qbo.create("Vendor", {"DisplayName": "Smith Family Store"}, requestid=rid)
    assert again.status_code == 400 and again.content == first.content
    assert qbo.count("Vendor") == 0


def test_requestid_is_per_company(emulator: Any, qbo: QBOTestClient) -> None:
    other = connect(emulator, "Second Company")
    rid = str(uuid.uuid4())
    a = qbo.create("Customer", {"DisplayName": "Shared Id Customer"}, requestid=rid)
    b = other.create("Customer", {"DisplayName": "Shared Id Customer"}, requestid=rid)
    assert a.status_code == b.status_code == 200
    assert qbo.count("Customer") == 1 and other.count("Customer") == 1


def test_concurrent_identical_requestids_create_one_object(qbo: QBOTestClient) -> None:
    rid = str(uuid.uuid4())
    bodies: list[bytes] = []
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(10)

    def post() -> None:
        client = QBOTestClient(qbo.base_url, qbo.realm, qbo.access_token)  # one connection per thread
        start.wait()
        response = client.create("Customer", {"DisplayName": "Racing Customer"}, requestid=rid)
        with lock:
            statuses.append(response.status_code)
            bodies.append(response.content)

    threads = [threading.Thread(target=post) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200] * 10, statuses
    assert len(set(bodies)) == 1  # every copy got the one response
    assert qbo.count("Customer") == 1


def test_requestid_longer_than_50_is_refused(qbo: QBOTestClient) -> None:
    too_long = "r" * 51
    response = qbo.create("Customer", {"DisplayName": "Long Id"}, requestid=too_long)
    assert response.status_code == 400, response.text
    error = response.json()["Fault"]["Error"][0]
    assert error["code"] == "6000"
    assert error["Detail"].startswith("Business Validation Error: You cannot enter more than 50 characters")
    assert qbo.count("Customer") == 0
    assert qbo.create("Customer", {"DisplayName": "Long Id"}, requestid="r" * 50).status_code == 200


def test_batch_requestid_plus_bid_over_50_faults_the_item(qbo: QBOTestClient) -> None:
    rid = "q" * 40
    results = _by_bid(qbo.batch([_create_item("short", "Fits Fine"), _create_item("b" * 11, "Too Long")],
                                requestid=rid))
    assert set(results["short"]) == {"bId", "Customer"}  # 40 + 5 <= 50
    error = results["b" * 11]["Fault"]["Error"][0]  # 40 + 11 > 50
    assert error["code"] == "6000" and "50 characters" in error["Detail"]
    assert qbo.count("Customer") == 1


def test_batch_with_requestid_is_replayed(qbo: QBOTestClient) -> None:
    rid = uuid.uuid4().hex[:30]
    items = [_create_item("a", "Batch Replay A"), _create_item("b", "Batch Replay B")]
    first = qbo.batch(items, requestid=rid)
    again = qbo.batch(items, requestid=rid)
    assert first.status_code == again.status_code == 200
    assert again.content == first.content
    assert qbo.count("Customer") == 2
