"""The emulator's QBO query language: shapes, paging, faults and every quirk real clients send.

Rows are written into the emulator's real SQLite ``objects`` table exactly as the engine stores
them (body = the JSON QBO returns), then queried through ``query.execute``, the function the
``/query`` route and batch query items call. Shapes are compared with the real payloads in
``shared/reference/samples``.
"""

from __future__ import annotations

import json
from urllib.parse import quote

import orjson
import pytest

from qb_pipelines.emulator import query
from qb_pipelines.emulator.faults import QBOFault
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines_tests.emulator_client import connect
from qb_pipelines_tests.emulator_rows import BASE, REALM, EmulatorRows
from qb_pipelines_tests.samples import SAMPLES


def _sample(name: str) -> dict:
    path = SAMPLES / name
    if path.exists():
        return json.loads(path.read_text())
    # Inline fallback so the suite also runs outside the shared workspace (shape only).
    return {
        "query_response": {
            "QueryResponse": {"Item": [{"Name": "Concrete", "Id": "3"}], "startPosition": 1, "maxResults": 1}
        }
    }


class Store(EmulatorRows):
    """The rows, queried through ``query.execute`` as the ``/query`` route does."""

    def run(self, text: str, **kw: object) -> dict:
        return orjson.loads(query.execute(self.emu, REALM, text, **kw))

    def raw(self, text: str, **kw: object) -> bytes:
        return query.execute(self.emu, REALM, text, **kw)

    def fault(self, text: str) -> QBOFault:
        with pytest.raises(QBOFault) as info:
            query.execute(self.emu, REALM, text)
        return info.value


@pytest.fixture
def store() -> Store:
    return Store()


def _ids(resp: dict, entity: str) -> list[str]:
    return [row["Id"] for row in resp.get(entity, [])]


def _customers(store: Store) -> None:
    store.put("Customer", 1, {"DisplayName": "Adam's Candy Shop", "GivenName": "Adam", "Balance": 10.5})
    store.put("Customer", 2, {"DisplayName": "Greg Gardens", "GivenName": "Greg", "Balance": 250})
    store.put("Customer", 3, {"DisplayName": "Old Client", "GivenName": "Olga", "Balance": 0}, active=False)
    store.put("Customer", 4, {"DisplayName": "Ada_Lovelace", "GivenName": "Ada", "Balance": 99.99})
    store.put("Customer", 5, {"DisplayName": "AdaXLovelace", "GivenName": "Adax", "Balance": 1000})


# --- shapes ----------------------------------------------------------------------------------


def test_select_star_page_has_the_sample_shape_and_the_stored_bytes(store: Store) -> None:
    sample = _sample("item_read_and_query_responses.json")["query_response"]["QueryResponse"]
    stored = [store.put("Item", i, {"Name": f"Item {i}", "Type": "Service", "UnitPrice": i}) for i in (3, 4, 19)]
    raw = store.raw("SELECT * FROM Item")
    resp = orjson.loads(raw)
    assert set(resp) == set(sample)  # Item, startPosition, maxResults
    assert resp["startPosition"] == 1 and resp["maxResults"] == 3
    assert resp["Item"] == stored
    # rows are the stored bytes, joined, not re-serialised
    assert orjson.dumps(stored[0]) in raw
    for key in ("domain", "sparse", "Id", "SyncToken", "MetaData"):
        assert type(resp["Item"][0][key]) is type(sample["Item"][0][key])


def test_empty_result_is_exactly_an_empty_object(store: Store) -> None:
    assert store.raw("SELECT * FROM Invoice") == b"{}"
    store.put("Invoice", 1, {"DocNumber": "1001", "TotalAmt": 5})
    assert store.raw("SELECT * FROM Invoice WHERE DocNumber = '9999'") == b"{}"
    assert store.raw("SELECT * FROM Invoice STARTPOSITION 2") == b"{}"  # page past the end


def test_count_returns_total_count_only(store: Store) -> None:
    _customers(store)
    assert store.run("SELECT COUNT(*) FROM Customer") == {"totalCount": 4}  # active only
    assert store.run("select count(*) from customer where Active IN (true, false)") == {"totalCount": 5}
    assert store.run("SELECT COUNT(*) FROM Invoice") == {"totalCount": 0}
    assert store.run("SELECT COUNT(*) FROM Customer WHERE Balance > '50' MAXRESULTS 1") == {"totalCount": 3}


def test_response_key_is_the_canonical_entity_name(store: Store) -> None:
    _customers(store)
    assert "Customer" in store.run("select * from cUstomer")


def test_company_info_and_preferences_are_queryable(store: Store) -> None:
    store.put("CompanyInfo", 1, {"CompanyName": "Sandbox Company_US_1", "Country": "US"})
    store.put("Preferences", 1, {"SalesFormsPrefs": {"CustomTxnNumbers": False}})
    info = store.run("SELECT * FROM CompanyInfo")
    assert info["CompanyInfo"][0]["CompanyName"] == "Sandbox Company_US_1"
    assert _ids(store.run("select * from preferences"), "Preferences") == ["1"]


# --- paging ----------------------------------------------------------------------------------


def test_default_page_is_100_and_max_results_is_rows_returned(store: Store) -> None:
    for i in range(1, 151):
        store.put("Invoice", i, {"DocNumber": str(1000 + i), "TotalAmt": i})
    first = store.run("SELECT * FROM Invoice")
    assert first["maxResults"] == 100 and first["startPosition"] == 1
    assert _ids(first, "Invoice") == [str(i) for i in range(1, 101)]
    second = store.run("SELECT * FROM Invoice STARTPOSITION 101 MAXRESULTS 100")
    assert second["maxResults"] == 50 and second["startPosition"] == 101
    assert _ids(second, "Invoice") == [str(i) for i in range(101, 151)]
    assert store.run("SELECT * FROM Invoice MAXRESULTS 1000")["maxResults"] == 150
    # clients also write MAXRESULTS before STARTPOSITION
    assert _ids(store.run("SELECT * FROM Invoice MAXRESULTS 2 STARTPOSITION 149"), "Invoice") == ["149", "150"]


def test_startposition_zero_is_served_as_one(store: Store) -> None:
    for i in range(1, 4):
        store.put("Invoice", i, {"TotalAmt": i})
    resp = store.run("SELECT * FROM Invoice STARTPOSITION 0 MAXRESULTS 2")
    assert _ids(resp, "Invoice") == ["1", "2"]
    assert resp["startPosition"] == 1


@pytest.mark.parametrize(
    ("clause", "detail"),
    [
        ("MAXRESULTS 1500", "QueryValidationError: value 1500 is too large. Max allowed value is 1000"),
        ("MAXRESULTS 1001", "QueryValidationError: value 1001 is too large. Max allowed value is 1000"),
        ("MAXRESULTS 0", "QueryValidationError: value 0 is too small. Min allowed value is 1"),
        ("STARTPOSITION -1", "QueryValidationError: value -1 is too small. Min allowed value is 1"),
    ],
)
def test_paging_out_of_range_is_4001(store: Store, clause: str, detail: str) -> None:
    fault = store.fault(f"SELECT * FROM Invoice {clause}")
    assert fault.status == 400 and fault.type == "ValidationFault"
    err = fault.fault_json()["Error"][0]
    assert err == {"Message": "Invalid query", "Detail": detail, "code": "4001"}


def test_sequential_pages_cover_every_row_once_with_ties_and_after_writes(store: Store) -> None:
    # 2500 invoices, five per second of LastUpdatedTime: ordering ties broken by Id.
    for i in range(1, 2501):
        store.put("Invoice", i, {"TotalAmt": i}, updated=BASE + (2500 - i) // 5)
    text = "SELECT * FROM Invoice WHERE Metadata.LastUpdatedTime >= '2024-01-01' ORDER BY Metadata.LastUpdatedTime ASC"
    expected = sorted(range(1, 2501), key=lambda i: ((2500 - i) // 5, i))

    def page_through() -> list[int]:
        seen: list[int] = []
        start = 1
        while True:
            resp = store.run(f"{text} STARTPOSITION {start} MAXRESULTS 1000")
            if not resp:
                return seen
            seen.extend(int(x) for x in _ids(resp, "Invoice"))
            start += resp["maxResults"]

    assert page_through() == expected
    assert page_through() == expected  # second pass is served from remembered positions
    # a page asked for out of sequence still matches plain OFFSET semantics
    resp = store.run(f"{text} STARTPOSITION 1501 MAXRESULTS 3")
    assert [int(x) for x in _ids(resp, "Invoice")] == expected[1500:1503]
    # a write between pages retires remembered positions: the next page reflects it
    store.run(f"{text} STARTPOSITION 1 MAXRESULTS 1000")
    store.put("Invoice", 7, {"TotalAmt": 7}, updated=BASE - 86400 * 365 * 2)  # now older than the filter
    resp = store.run(f"{text} STARTPOSITION 1001 MAXRESULTS 1")
    remaining = [i for i in expected if i != 7]
    assert [int(x) for x in _ids(resp, "Invoice")] == [remaining[1000]]


def test_descending_order_pages(store: Store) -> None:
    for i in range(1, 8):
        store.put("Invoice", i, {"TotalAmt": i})
    first = store.run("SELECT * FROM Invoice ORDERBY Id DESC MAXRESULTS 3")
    second = store.run("SELECT * FROM Invoice ORDERBY Id DESC STARTPOSITION 4 MAXRESULTS 3")
    assert _ids(first, "Invoice") + _ids(second, "Invoice") == ["7", "6", "5", "4", "3", "2"]


# --- parse and validation faults -------------------------------------------------------------


def test_parse_error_detail_matches_the_real_sample(store: Store) -> None:
    sample = next(f for f in json.loads((SAMPLES / "faults.json").read_text())["faults"] if f["code"] == "4000")
    expected = sample["json_real"]["Fault"]
    fault = store.fault("SELECT * FROM NULL")
    assert fault.status == 400
    assert fault.fault_json() == expected


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("SELECT * FORM Customer", 'QueryParserError: Encountered " <IDENTIFIER> "FORM "" at line 1, column 10.'),
        ("SELECT * FROM Customer WHERE", 'QueryParserError: Encountered "<EOF>" at line 1, column 29.'),
        ("SELECT * FROM Invoice WHERE TotalAmt > 1 OR TotalAmt < 0",
         'QueryParserError: Encountered " "or" "OR "" at line 1, column 42.'),
        ("SELECT * FROM Invoice WHERE TxnDate != '2024-01-01'",
         'QueryParserError: Encountered " "!=" "!= "" at line 1, column 37.'),
        ("SELECT * FROM Customer WHERE DisplayName = 'unterminated", "QueryParserError: Lexical error at line 1"),
        ("SELECT * FROM Customer MAXRESULTS ten", 'QueryParserError: Encountered " <IDENTIFIER> "ten "" at line 1'),
        ("", 'QueryParserError: Encountered "<EOF>" at line 1, column 1.'),
    ],
)
def test_syntax_errors_are_4000(store: Store, text: str, start: str) -> None:
    err = store.fault(text).fault_json()["Error"][0]
    assert err["code"] == "4000" and err["Message"] == "Error parsing query"
    assert err["Detail"].startswith(start), err["Detail"]
    assert "element" not in err


def test_unknown_entity_is_invalid_context_declaration(store: Store) -> None:
    err = store.fault("SELECT * FROM Check").fault_json()["Error"][0]
    assert err == {"Message": "Invalid query", "Detail": "QueryValidationError: invalid context declaration: Check",
                   "code": "4001"}


def test_unknown_property_is_4001_and_id_takes_only_equals_and_in(store: Store) -> None:
    _customers(store)
    err = store.fault("SELECT * FROM Customer WHERE NoSuchField = '1'").fault_json()["Error"][0]
    assert err["code"] == "4001"
    assert err["Detail"] == "QueryValidationError: Property NoSuchField not found for Entity Customer"
    assert store.fault("SELECT * FROM Customer WHERE Id > '1'").fault_json()["Error"][0]["code"] == "4001"


# --- quirks ----------------------------------------------------------------------------------


def test_keywords_spacing_order_by_spellings_and_metadata_case(store: Store) -> None:
    for i in range(1, 6):
        store.put("Invoice", i, {"TotalAmt": i}, updated=BASE + 100 - i)
    expected = ["5", "4", "3", "2", "1"]
    for text in (
        "SELECT * FROM Invoice ORDERBY MetaData.LastUpdatedTime",
        "SELECT * FROM Invoice ORDER BY Metadata.LastUpdatedTime ASC",
        "select  *  from  invoice  order  by  metadata.lastupdatedtime  asc  startposition  1  maxresults  10",
        "select *\nfrom Invoice\n  where Metadata.LastUpdatedTime > '2023-12-31'\n  orderby MetaData.LastUpdatedTime",
        "SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime >= '2024-01-01T10:00:00-08:00' "
        "ORDER BY Metadata.LastUpdatedTime ASC STARTPOSITION 1 MAXRESULTS 1000",
    ):
        assert _ids(store.run(text), "Invoice") == expected, text


def test_timestamps_with_different_offsets_compare_as_instants(store: Store) -> None:
    # updated at 10:00, 11:00, 12:00 Pacific (18:00, 19:00, 20:00 UTC) on 2024-01-01
    for i, hours in ((1, 0), (2, 1), (3, 2)):
        store.put("Invoice", i, {"TotalAmt": i}, updated=BASE + hours * 3600)
    text = ("SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime > '2024-01-01T18:30:00Z' "
            "AND Metadata.LastUpdatedTime <= '2024-01-01T21:00:00+01:00'")
    # > 18:30Z excludes 1; <= 20:00Z (21:00+01:00) includes 3
    assert _ids(store.run(text), "Invoice") == ["2", "3"]
    # the '+' of an offset that arrived URL-decoded as a space
    assert _ids(store.run("SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime >= '2024-01-01T21:00:00 02:00'"),
                "Invoice") == ["2", "3"]
    assert _ids(store.run("SELECT * FROM Invoice WHERE MetaData.LastUpdatedTime >= '2024-01-01T21:00:00.000 02:00'"),
                "Invoice") == ["2", "3"]
    assert _ids(store.run("SELECT * FROM Invoice WHERE MetaData.CreateTime < '2024-01-01T11:30:00-0800'"),
                "Invoice") == ["1", "2"]


def test_select_star_sku_returns_full_rows_with_sku(store: Store) -> None:
    store.put("Item", 1, {"Name": "Pump", "Sku": "PMP-1", "Type": "Inventory"})
    store.put("Item", 2, {"Name": "Design", "Type": "Service"})
    rows = store.run("SELECT *, Sku FROM Item")["Item"]
    assert rows[0]["Sku"] == "PMP-1" and rows[0]["Name"] == "Pump" and rows[0]["sparse"] is False
    assert "Sku" not in rows[1]
    # SELECT * with a modern minorversion shows Sku; the base version (no minorversion) hides it
    assert store.run("SELECT * FROM Item", minorversion="75")["Item"][0]["Sku"] == "PMP-1"
    assert "Sku" not in store.run("SELECT * FROM Item", minorversion=None)["Item"][0]
    assert store.run("SELECT *, Sku FROM Item", minorversion=None)["Item"][0]["Sku"] == "PMP-1"


def test_projection_returns_listed_fields(store: Store) -> None:
    _customers(store)
    rows = store.run("SELECT Id, DisplayName FROM Customer WHERE Id = '2'")["Customer"]
    assert rows == [{"domain": "QBO", "sparse": True, "Id": "2", "DisplayName": "Greg Gardens"}]


# --- filters ---------------------------------------------------------------------------------


def test_name_lists_are_active_only_unless_active_is_mentioned(store: Store) -> None:
    _customers(store)
    assert _ids(store.run("SELECT * FROM Customer"), "Customer") == ["1", "2", "4", "5"]
    assert _ids(store.run("SELECT * FROM Customer WHERE Active IN (true, false)"), "Customer") == [
        "1", "2", "3", "4", "5"]
    assert _ids(store.run("SELECT * FROM Customer WHERE Active = false"), "Customer") == ["3"]
    assert _ids(store.run("SELECT * FROM Customer WHERE active = 'true'"), "Customer") == ["1", "2", "4", "5"]
    # reading an inactive customer by Id in a query still filters it (QBO: use Active IN)
    assert store.raw("SELECT * FROM Customer WHERE Id = '3'") == b"{}"


def test_tombstones_never_appear(store: Store) -> None:
    store.put("Invoice", 1, {"TotalAmt": 1})
    store.put("Invoice", 2, deleted=True)
    assert _ids(store.run("SELECT * FROM Invoice"), "Invoice") == ["1"]
    assert store.run("SELECT COUNT(*) FROM Invoice") == {"totalCount": 1}


def test_like_in_and_escaped_apostrophe(store: Store) -> None:
    _customers(store)
    assert _ids(store.run("SELECT * FROM Customer WHERE DisplayName = 'Adam\\'s Candy Shop'"), "Customer") == ["1"]
    assert _ids(store.run("SELECT * FROM Customer WHERE DisplayName LIKE 'adam\\'s%'"), "Customer") == ["1"]
    assert _ids(store.run("SELECT * FROM Customer WHERE DisplayName LIKE '%GARDENS'"), "Customer") == ["2"]
    # '_' is not a wildcard in QBO
    assert _ids(store.run("SELECT * FROM Customer WHERE DisplayName LIKE 'Ada_%'"), "Customer") == ["4"]
    assert _ids(store.run("SELECT * FROM Customer WHERE Id IN ('1', '4', '99')"), "Customer") == ["1", "4"]
    assert _ids(store.run("SELECT * FROM Customer WHERE GivenName IN ('greg', 'ADA')"), "Customer") == ["2", "4"]


def test_values_compare_case_insensitively_and_numbers_numerically(store: Store) -> None:
    _customers(store)
    assert _ids(store.run("select * from customer where givenname = 'GREG'"), "Customer") == ["2"]
    assert _ids(store.run("SELECT * FROM Customer WHERE Balance > '99.5'"), "Customer") == ["2", "4", "5"]
    assert _ids(store.run("SELECT * FROM Customer WHERE Balance >= 250 AND Balance < 1000"), "Customer") == ["2"]
    assert _ids(store.run("SELECT * FROM Customer WHERE Balance = 10.5"), "Customer") == ["1"]


def test_reference_dates_and_booleans(store: Store) -> None:
    store.put("Invoice", 1, {"CustomerRef": {"value": "5", "name": "X"}, "TxnDate": "2024-01-05", "DocNumber": "1001",
                             "AllowOnlineACHPayment": True})
    store.put("Invoice", 2, {"CustomerRef": {"value": "6", "name": "Y"}, "TxnDate": "2024-02-05", "DocNumber": "1002",
                             "AllowOnlineACHPayment": False})
    assert _ids(store.run("SELECT * FROM Invoice WHERE CustomerRef = '5'"), "Invoice") == ["1"]
    assert _ids(store.run("SELECT * FROM Invoice WHERE CustomerRef IN ('5', '6')"), "Invoice") == ["1", "2"]
    assert _ids(store.run("SELECT * FROM Invoice WHERE TxnDate >= '2024-02-01'"), "Invoice") == ["2"]
    assert _ids(store.run("SELECT * FROM Invoice WHERE DocNumber = 1002"), "Invoice") == ["2"]
    assert _ids(store.run("SELECT * FROM Invoice WHERE AllowOnlineACHPayment = true"), "Invoice") == ["1"]
    assert _ids(store.run("SELECT * FROM Invoice ORDERBY TxnDate DESC"), "Invoice") == ["2", "1"]


def test_in_keeps_the_equality_rules_numbers_booleans_and_case(store: Store) -> None:
    _customers(store)
    store.put("Invoice", 1, {"DocNumber": "INV-7", "TotalAmt": 5, "AllowOnlineACHPayment": True})
    store.put("Invoice", 2, {"DocNumber": 1002, "TotalAmt": 12.5, "AllowOnlineACHPayment": False})
    store.put("Invoice", 3, {"DocNumber": "1002.0", "TotalAmt": 1})
    store.put("Invoice", 4, {"DocNumber": "inv-8"})
    store.put("Invoice", 5, {"DocNumber": True})
    store.put("Invoice", 6, {"DocNumber": "INV-9"}, deleted=True)
    # the document number (an indexed path): text ignoring case, a stored number numerically, never a flag
    assert _ids(store.run("SELECT * FROM Invoice WHERE DocNumber IN ('inv-7', 'INV-8', '1002', 'inv-9')"),
                "Invoice") == ["1", "2", "4"]
    assert _ids(store.run("SELECT * FROM Invoice WHERE DocNumber IN ('1')"), "Invoice") == []
    assert _ids(store.run("SELECT * FROM Invoice WHERE DocNumber IN (true)"), "Invoice") == ["5"]
    assert _ids(store.run("SELECT * FROM Invoice WHERE DocNumber = '1002.0'"), "Invoice") == ["2", "3"]
    assert store.run("SELECT COUNT(*) FROM Invoice WHERE DocNumber IN ('INV-7', 'inv-8')") == {"totalCount": 2}
    assert _ids(store.run("SELECT * FROM Invoice WHERE DocNumber IN ('inv-7', 'inv-8') AND TotalAmt = 5"),
                "Invoice") == ["1"]
    # other fields: the same rules
    assert _ids(store.run("SELECT * FROM Invoice WHERE TotalAmt IN ('12.50', 1)"), "Invoice") == ["2", "3"]
    assert _ids(store.run("SELECT * FROM Invoice WHERE AllowOnlineACHPayment IN (false)"), "Invoice") == ["2"]
    assert _ids(store.run("SELECT * FROM Customer WHERE DisplayName IN ('GREG GARDENS', 'old client', 'x')"),
                "Customer") == ["2"]


def test_queries_do_not_cross_companies(store: Store) -> None:
    store.put("Invoice", 1, {"TotalAmt": 1})
    store.put("Invoice", 1, {"TotalAmt": 1}, realm="123145730715194")
    assert query.execute(store.emu, "123145730715194", "SELECT COUNT(*) FROM Invoice") == b'{"totalCount":1}'
    assert query.execute(store.emu, "999", "SELECT * FROM Invoice") == b"{}"


def test_parse_exposes_the_structure() -> None:
    q = query.parse("SELECT *, Sku FROM item WHERE Name LIKE 'P%' AND Active IN (true,false) "
                    "ORDER BY Name DESC, Id STARTPOSITION 0 MAXRESULTS 5")
    assert q.entity == "item" and q.star and q.fields == ("Sku",)
    assert [c.op for c in q.where] == ["like", "in"]
    assert q.order == (("Name", True), ("Id", False))
    assert (q.start, q.max_results) == (0, 5)
    assert query.parse("select count(*) from Customer").count


# --- over HTTP, against the real engine ------------------------------------------------------


def test_query_over_http_get_and_post_with_the_real_engine(emulator: RunningEmulator) -> None:
    client = connect(emulator)
    adam = client.make("Customer", {"DisplayName": "Adam's Candy Shop", "GivenName": "Adam"})
    greg = client.make("Customer", {"DisplayName": "Greg Gardens", "GivenName": "Greg"})
    gone = client.make("Customer", {"DisplayName": "Old Client"})
    client.ok(client.update("Customer", {"Id": gone["Id"], "SyncToken": gone["SyncToken"], "Active": False},
                            sparse=True), "Customer")

    statement = "select * from Customer where DisplayName LIKE 'adam\\'s%'"
    by_get = client.query(statement)
    by_post = client.query(statement, method="POST")  # application/text body
    assert by_get.status_code == by_post.status_code == 200
    assert set(by_get.json()) == {"QueryResponse", "time"}
    assert by_get.json()["QueryResponse"] == by_post.json()["QueryResponse"]
    assert [c["Id"] for c in by_get.json()["QueryResponse"]["Customer"]] == [adam["Id"]]

    active = client.ok(client.query("SELECT * FROM Customer ORDER BY Id"), "QueryResponse")
    assert [c["Id"] for c in active["Customer"]] == [adam["Id"], greg["Id"]]
    both = client.ok(client.query("SELECT  *  FROM  Customer  WHERE  Active IN (true, false)  ORDERBY Id"),
                     "QueryResponse")
    assert [c["Id"] for c in both["Customer"]] == [adam["Id"], greg["Id"], gone["Id"]]
    assert client.count("Customer", "Active IN (true,false)") == 3

    # a '+' in the offset that the client left unencoded arrives as a space
    stmt = ("SELECT * FROM Customer WHERE Metadata.LastUpdatedTime >= '2000-01-01T00:00:00+01:00' "
            "STARTPOSITION 0 MAXRESULTS 1")
    response = client.session.get(f"{client.url('query')}?minorversion=75&query={quote(stmt, safe='+')}")
    assert response.status_code == 200, response.text
    assert response.json()["QueryResponse"]["maxResults"] == 1

    empty = client.query("SELECT * FROM Invoice")
    assert empty.status_code == 200
    assert empty.content.startswith(b'{"QueryResponse":{},"time":"')

    parse_error = client.query("SELECT * FROM NULL")
    assert parse_error.status_code == 400
    err = parse_error.json()["Fault"]["Error"][0]
    assert err["code"] == "4000" and err["Detail"].startswith('QueryParserError: Encountered " "null" "NULL ""')
    too_many = client.query("SELECT * FROM Customer MAXRESULTS 1001")
    assert too_many.status_code == 400
    assert too_many.json()["Fault"]["Error"][0]["Detail"] == (
        "QueryValidationError: value 1001 is too large. Max allowed value is 1000")

    items = client.ok(client.query("SELECT * FROM CompanyInfo"), "QueryResponse")["CompanyInfo"]
    assert items[0]["Id"] == "1"
