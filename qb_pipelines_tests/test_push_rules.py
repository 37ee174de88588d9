"""The push's pure rules, without QuickBooks: the three-way decision, waves, references, the contract."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from qb_pipelines.store.outbox import OutboxView
from qb_pipelines.sync.push import contract, plan
from qb_pipelines.sync.push.conflicts import decide

FIELDS = ["display_name", "email", "phone", "notes"]
AGREED = {"app": {"display_name": "Ada", "email": "a@x.co", "phone": "1"},
          "qbo": {"display_name": "Ada", "email": "a@x.co", "phone": "1"}}


def test_different_fields_changed_on_each_side_merge_without_asking() -> None:
    d = decide(FIELDS, AGREED, {**AGREED["app"], "phone": "2"}, {**AGREED["qbo"], "email": "q@x.co"}, "manual_review")
    assert d.send == {"phone"} and not d.conflicts and not d.review


@pytest.mark.parametrize(("policy", "send", "kept", "review"), [
    ("app_wins", {"email"}, set(), False),
    ("qbo_wins", set(), {"email"}, False),
    ("manual_review", set(), set(), True),
])
def test_the_same_field_changed_on_both_sides(policy: str, send: set, kept: set, review: bool) -> None:
    d = decide(FIELDS, AGREED, {**AGREED["app"], "email": "app@x.co"}, {**AGREED["qbo"], "email": "q@x.co"}, policy)
    assert (d.send, d.kept_qbo, d.review) == (send, kept, review)
    assert d.conflicts == {"email": {"agreed": "a@x.co", "app": "app@x.co", "qbo": "q@x.co"}}
    assert d.dropped is (policy == "qbo_wins")


def test_both_sides_making_the_same_change_is_no_conflict_and_qbo_only_changes_are_never_overwritten() -> None:
    same = decide(FIELDS, AGREED, {**AGREED["app"], "email": "n@x.co"}, {**AGREED["qbo"], "email": "n@x.co"}, "app_wins")
    assert not same.send and not same.conflicts
    qbo_only = decide(FIELDS, AGREED, dict(AGREED["app"]), {**AGREED["qbo"], "notes": "QBO note"}, "app_wins")
    assert not qbo_only.send


def test_a_just_linked_record_fills_blanks_and_conflicts_only_where_both_are_filled() -> None:
    d = decide(FIELDS, None, {"display_name": "Ada", "email": "a@x.co", "phone": "1"},
               {"display_name": "Ada", "email": "other@x.co"}, "manual_review")
    assert d.review and set(d.conflicts) == {"email"}
    d = decide(FIELDS, None, {"display_name": "Ada", "phone": "1"}, {"display_name": "Ada", "notes": "n"}, "manual_review")
    assert d.send == {"phone"} and not d.review


def _row(i: int, app_id: str, parent: str | None = None, version: int = 1) -> OutboxView:
    now = datetime.now(UTC)
    return OutboxView(i, "t", "Customer", app_id, version, "upsert",
                      {"display_name": app_id, **({"parent_app_id": parent} if parent else {})}, "pending", None, 0,
                      None, None, None, None, None, None, None, None, None, now, None, None, None, None, now, now, None)


def test_parents_go_in_earlier_waves_than_their_sub_customers() -> None:
    rows = [_row(1, "grandchild", "child"), _row(2, "child", "top"), _row(3, "top"), _row(4, "other", "mapped")]
    waves = plan.levels(rows)
    assert [[r.app_id for r in w] for w in waves] == [["top", "other"], ["child"], ["grandchild"]]


def test_only_the_latest_version_of_a_record_goes() -> None:
    latest, older = plan.latest_per_record([_row(1, "a", version=1), _row(2, "a", version=3), _row(3, "b")])
    assert [(r.app_id, r.version) for r in latest] == [("a", 3), ("b", 1)] and [r.id for r in older] == [1]


def test_references_and_schemas_cover_every_pushed_entity() -> None:
    assert set(contract.ENTITIES) == {"Customer", "Vendor", "Item", "Invoice", "Estimate", "Bill"}
    refs = plan.references("Bill", {"vendor_app_id": "v", "lines": [{"item_app_id": "i", "customer_app_id": "c"},
                                                                    {"account_id": "7", "amount": 3}]})
    assert refs == [("Vendor", "v"), ("Item", "i"), ("Customer", "c")]
    published = contract.schemas()
    assert set(published["entities"]) == set(contract.ENTITIES) and published["operations"]["Invoice"] == [
        "upsert", "delete", "void"]
    with pytest.raises(contract.PayloadError, match="void"):
        contract.validate({"entity": "Customer", "app_id": "c", "version": 1, "op": "void"})
    with pytest.raises(contract.PayloadError) as bad:
        contract.validate({"entity": "Bill", "app_id": "b", "version": 1, "op": "upsert",
                           "data": {"vendor_app_id": "v", "lines": [{"account_id": "7"}]}})
    assert bad.value.field.startswith("data.lines[0]")
