"""Webhook signatures and payload parsing (qb_pipelines.qbo.webhooks), against Intuit's own vectors.

The legacy vector is the one Intuit's .NET SDK tests with (reference §9.2,
``samples/webhook_legacy_signed.json``): a real verifier token, raw body and ``intuit-signature``.
The CloudEvents bodies are the samples of §9.4 (blog and data-objects page).
"""

from __future__ import annotations

import json

import pytest

from qb_pipelines.qbo.webhooks import WebhookEvent, WebhookPayloadError, parse_notifications, sign, verify

TOKEN = "00faeec4-08d0-4996-bb37-698ae19f0149"
LEGACY_BODY = (
    b'{"eventNotifications":[{"realmId":"1269959970","dataChangeEvent":{"entities":[{"name":"Vendor","id":"40",'
    b'"operation":"Update","lastUpdated":"2016-10-05T03:09:04.000Z"},{"name":"Customer","id":"43","operation":'
    b'"Create","lastUpdated":"2016-10-05T03:07:04.000Z"}]}}]}'
)
LEGACY_SIGNATURE = "6q+xGyMirJupwKTh2/WBl2NcdxzxqdIbk3sneKTxLWM="

CLOUDEVENTS_BODY = (
    b'[{"specversion":"1.0","id":"d1a3aedd-9670-41bf-a4f9-c148a1cc4e03","source":'
    b'"intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=","type":"qbo.class.created.v1","time":'
    b'"2025-10-07T19:59:07.034359333Z","intuitentityid":"1234","intuitaccountid":"310687","data":'
    b'{"alternative_ids":[{"id":"djQuMTo5MTMwMzUyMjI1NzM5NDQ2OjlkNjk5ZTk2MDg:400000381","namespace":'
    b'"Intuit.sbseg.v4"}]}}]'
)
CLOUDEVENTS_SIGNATURE = "ktq4myr9mbYMub3J9NZ10yorpaDAvCtSer0tY6K4aj4="


def test_sign_reproduces_intuits_verified_vector() -> None:
    assert sign(LEGACY_BODY, TOKEN) == LEGACY_SIGNATURE
    assert sign(CLOUDEVENTS_BODY, TOKEN) == CLOUDEVENTS_SIGNATURE


def test_verify_accepts_the_vector_and_rejects_any_alteration() -> None:
    assert verify(LEGACY_BODY, LEGACY_SIGNATURE, TOKEN)
    # re-serialised JSON is a different byte string: only the raw body verifies
    reserialised = json.dumps(json.loads(LEGACY_BODY)).encode()
    assert not verify(reserialised, LEGACY_SIGNATURE, TOKEN)
    assert not verify(LEGACY_BODY, LEGACY_SIGNATURE, "another-token")
    assert not verify(LEGACY_BODY, LEGACY_SIGNATURE[:-2] + "A=", TOKEN)
    assert not verify(LEGACY_BODY, None, TOKEN)
    assert not verify(LEGACY_BODY, "", TOKEN)
    assert not verify(LEGACY_BODY, "not base64 ✓", TOKEN)


def test_parse_legacy_vector() -> None:
    assert parse_notifications(LEGACY_BODY) == [
        WebhookEvent("1269959970", "Vendor", "40", "Update", "2016-10-05T03:09:04.000Z"),
        WebhookEvent("1269959970", "Customer", "43", "Create", "2016-10-05T03:07:04.000Z"),
    ]


def test_parse_legacy_merge_carries_deleted_id_in_either_spelling() -> None:
    body = {
        "eventNotifications": [
            {"realmId": "1185883450", "dataChangeEvent": {"entities": [
                {"name": "Customer", "id": "1", "operation": "Create", "lastUpdated": "2015-10-05T14:42:19-0700"},
                {"name": "Customer", "id": "5", "operation": "Merge", "lastUpdated": "2015-10-05T14:42:19-0700",
                 "deletedId": "7"},
            ]}},
            {"realmId": "42", "dataChangeEvent": {"entities": [
                {"name": "Vendor", "id": "9", "operation": "Merge", "lastUpdated": "2016-10-05T03:09:04.000Z",
                 "deletedID": "8"},
            ]}},
        ]
    }
    events = parse_notifications(json.dumps(body))
    assert [(e.realm_id, e.entity_id, e.operation, e.deleted_id) for e in events] == [
        ("1185883450", "1", "Create", None),
        ("1185883450", "5", "Merge", "7"),
        ("42", "9", "Merge", "8"),
    ]
    assert all(e.event_id is None for e in events)


def test_parse_cloudevents_sample() -> None:
    assert parse_notifications(CLOUDEVENTS_BODY) == [
        WebhookEvent(
            realm_id="310687",
            entity="Class",
            entity_id="1234",
            operation="Create",
            occurred_at="2025-10-07T19:59:07.034359333Z",
            event_id="d1a3aedd-9670-41bf-a4f9-c148a1cc4e03",
        )
    ]


def test_parse_cloudevents_verbs_entity_spelling_and_merge() -> None:
    def event(kind: str, entity_id: str, **extra: object) -> dict:
        return {"specversion": "1.0", "id": f"e-{entity_id}", "source": "intuit.x", "type": kind,
                "time": "2025-12-04T15:25:05Z", "intuitentityid": entity_id, "intuitaccountid": "93414556", **extra}

    body = [
        event("qbo.customer.merged.v1", "123", datacontenttype="application/json", data={"deletedid": "27"}),
        event("qbo.salesreceipt.updated.v1", "150"),  # no data at all, as the docs show
        event("qbo.invoice.voided.v1", "7", data={}),
        event("qbo.billpayment.deleted.v1", "8", data={}),
        event("qbo.estimate.emailed.v1", "9", data={}),
        event("qbo.journalentry.created.v1", "10", data={}),
        event("qbo.purchaseorder.created.v1", "11", data={}),
    ]
    events = parse_notifications(json.dumps(body).encode())
    assert [(e.entity, e.operation, e.deleted_id) for e in events] == [
        ("Customer", "Merge", "27"),
        ("SalesReceipt", "Update", None),
        ("Invoice", "Void", None),
        ("BillPayment", "Delete", None),
        ("Estimate", "Emailed", None),
        ("JournalEntry", "Create", None),
        ("PurchaseOrder", "Create", None),
    ]
    assert [e.event_id for e in events][:2] == ["e-123", "e-150"]
    assert parse_notifications(b"[]") == []


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe",
        b'"a string"',
        b'{"something": "else"}',
        b'{"eventNotifications": {}}',
        b'{"eventNotifications": [{"dataChangeEvent": {"entities": []}}]}',
        b'{"eventNotifications": [{"realmId": "1"}]}',
        b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [{"name": "Customer"}]}}]}',
        b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [{"name": "Customer", '
        b'"id": "1", "operation": "Exploded", "lastUpdated": "2016-10-05T03:09:04.000Z"}]}}]}',
        b"[1]",
        b'[{"type": "qbo.customer.created.v1"}]',
        b'[{"type": "com.example.other", "id": "1", "time": "t", "intuitentityid": "1", "intuitaccountid": "2"}]',
        b'[{"type": "qbo.customer.exploded.v1", "id": "1", "time": "t", "intuitentityid": "1", '
        b'"intuitaccountid": "2"}]',
        b'[{"type": "qbo.customer.created.v1", "id": "1", "time": "t", "intuitentityid": "1", '
        b'"intuitaccountid": "2", "data": []}]',
    ],
)
def test_malformed_bodies_raise_a_clear_value_error(body: bytes) -> None:
    with pytest.raises(WebhookPayloadError) as info:
        parse_notifications(body)
    assert isinstance(info.value, ValueError)
    assert str(info.value)
