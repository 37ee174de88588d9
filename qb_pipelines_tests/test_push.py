"""Push, through the real emulator over HTTP and a real store: the app's outbox reaches QuickBooks
exactly once, dependencies first, gated by the tenant's settings, matched before created, with
conflicts decided by the tenant's policy and failures sorted into retries and errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.store.connection_state import ConnectionState
from qb_pipelines.sync.push import PayloadError, enqueue, push
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.databases import throwaway_database
from qb_pipelines_tests.harness import Connected, connect_company, emulator_settings

CUSTOMER = {"display_name": "Ada Lovelace", "email": "ada@example.com", "phone": "555-1000",
            "address": {"line1": "1 Main St", "city": "Springfield", "region": "CA", "postal_code": "94000"}}


@pytest.fixture
def runtime(shared_emulator: RunningEmulator, tmp_path: Path) -> Iterator[Runtime]:
    with Runtime(emulator_settings(f"sqlite:///{tmp_path / 'store.sqlite'}", shared_emulator)) as rt:
        yield rt


@pytest.fixture
def company(shared_emulator: RunningEmulator, runtime: Runtime) -> Connected:
    return connect_company(shared_emulator, runtime)


def send(c: Connected, entity: str, app_id: str, data: dict[str, Any] | None = None, *, version: int = 1,
         op: str = "upsert", **extra: Any) -> Any:
    with c.runtime.engine.begin() as conn:
        return enqueue(conn, c.tenant, entity=entity, app_id=app_id, version=version, op=op, data=data, **extra)


def status(c: Connected, entity: str, app_id: str) -> Any:
    row = c.runtime.outbox.record(c.tenant, entity, app_id)
    assert row is not None
    return row


def invoice(customer: str, item: str, *, qty: float = 2, price: float = 45.0, number: str | None = None,
            taxable: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {"customer_app_id": customer,
                            "lines": [{"item_app_id": item, "qty": qty, "unit_price": price, "taxable": taxable}]}
    if number:
        data["number"] = number
    return data


def fault(emulator: RunningEmulator, body: dict[str, Any]) -> None:
    with EmulatorControl(emulator.url) as control:
        control.set_faults(body)


# ---------------------------------------------------------------------------------- dependencies first


def test_invoice_with_new_customer_job_and_item_lands_dependencies_first_with_tax_and_totals(company: Connected) -> None:
    # enqueued in the "wrong" order: the invoice first, then what it names
    send(company, "Invoice", "inv-1", invoice("job-1", "svc", number="A-100"))
    send(company, "Customer", "job-1", {"display_name": "Ada Kitchen Job", "parent_app_id": "cust-1"})
    send(company, "Item", "svc", {"name": "Lawn mowing", "type": "service", "unit_price": 45})
    send(company, "Customer", "cust-1", CUSTOMER)

    result = push(company.runtime, company.key)

    assert (result.created, result.failed, result.blocked) == (4, 0, 0)
    ada = company.read("Customer", status(company, "Customer", "cust-1").qbo_id)
    assert ada["PrimaryEmailAddr"]["Address"] == "ada@example.com" and ada["BillAddr"]["City"] == "Springfield"
    job = company.read("Customer", status(company, "Customer", "job-1").qbo_id)
    assert job["Job"] is True and job["ParentRef"]["value"] == ada["Id"]
    inv = company.read("Invoice", status(company, "Invoice", "inv-1").qbo_id)
    settings = company.runtime.tenant_settings.get(company.tenant).values
    item = company.read("Item", status(company, "Item", "svc").qbo_id)
    assert item["IncomeAccountRef"]["value"] == settings.default_income_account_id  # the tenant's default
    assert inv["DocNumber"] == "A-100" and inv["CustomerRef"]["value"] == job["Id"]
    assert inv["TxnTaxDetail"]["TxnTaxCodeRef"]["value"] == settings.default_tax_code_id
    assert inv["TotalAmt"] == pytest.approx(90.0 + inv["TxnTaxDetail"]["TotalTax"]) and inv["TxnTaxDetail"]["TotalTax"] > 0
    mapping = company.runtime.mappings.get(company.tenant, company.realm, "Invoice", "inv-1")
    assert mapping is not None and mapping.qbo_id == inv["Id"] and mapping.sync_token == inv["SyncToken"]
    assert mapping.agreed and mapping.agreed["app"]["number"] == "A-100"


def test_an_invoice_whose_customer_failed_is_blocked_then_goes_with_it(company: Connected) -> None:
    company.act("Vendor", "create", {"DisplayName": "Taken By A Vendor"})
    send(company, "Customer", "c-bad", {"display_name": "Taken By A Vendor"})
    send(company, "Item", "svc", {"name": "Pruning", "type": "service", "unit_price": 60})
    send(company, "Invoice", "inv-9", invoice("c-bad", "svc"))
    send(company, "Invoice", "inv-later", invoice("c-never-sent", "svc"))

    result = push(company.runtime, company.key)

    bad = status(company, "Customer", "c-bad")
    assert bad.status == "failed" and bad.error_code == "6240" and "rename" in bad.next_step
    blocked = status(company, "Invoice", "inv-9")
    assert blocked.status == "blocked" and blocked.reason.startswith("customer c-bad failed")
    assert blocked.api_status == "pending" and blocked.attempts == 0  # not failed on its own
    assert "has not sent it yet" in status(company, "Invoice", "inv-later").reason
    assert result.blocked == 2

    # the app fixes the customer: both go at the next run
    send(company, "Customer", "c-bad", {"display_name": "Renamed Customer"}, version=2)
    send(company, "Customer", "c-never-sent", {"display_name": "Late Customer"})
    push(company.runtime, company.key)
    assert {status(company, "Invoice", i).status for i in ("inv-9", "inv-later")} == {"synced"}


# ---------------------------------------------------------------------------------- the outbox


def test_enqueue_is_idempotent_ignores_older_versions_and_supersedes_unsent_ones(company: Connected) -> None:
    first = send(company, "Customer", "c1", {"display_name": "First Name"}, version=2)
    again = send(company, "Customer", "c1", {"display_name": "First Name"}, version=2)
    older = send(company, "Customer", "c1", {"display_name": "Older"}, version=1)
    newer = send(company, "Customer", "c1", {"display_name": "Newest Name"}, version=3)
    assert again.duplicate and again.row.id == first.row.id
    assert older.ignored and older.row.version == 2
    assert newer.superseded == (first.row.id,)
    push(company.runtime, company.key)
    assert [c["DisplayName"] for c in company.query("Customer", "DisplayName LIKE '%Name%'")] == ["Newest Name"]
    assert company.runtime.outbox.get(first.row.id).status == "superseded"


def test_a_payload_that_breaks_the_contract_is_refused_naming_the_field_and_nothing_is_stored(company: Connected) -> None:
    with pytest.raises(PayloadError) as bad:
        send(company, "Invoice", "inv-x", {"customer_app_id": "c", "lines": [{"item_app_id": "i", "qty": -1,
                                                                             "unit_price": 1}]})
    assert bad.value.field == "data.lines[0].qty"
    with pytest.raises(PayloadError) as missing:
        send(company, "Customer", "c-x", {"email": "a@b.co"})
    assert missing.value.field == "data.display_name"
    assert company.runtime.outbox.record(company.tenant, "Invoice", "inv-x") is None


def test_the_record_and_its_outbox_row_commit_or_roll_back_together(company: Connected) -> None:
    import sqlalchemy as sa

    app_table = sa.Table("app_customers", sa.MetaData(), sa.Column("id", sa.String, primary_key=True))
    app_table.create(company.runtime.engine)
    with pytest.raises(RuntimeError), company.runtime.engine.begin() as conn:
        conn.execute(app_table.insert().values(id="c-tx"))
        enqueue(conn, company.tenant, entity="Customer", app_id="c-tx", version=1, data={"display_name": "Tx"})
        raise RuntimeError("the app's transaction fails after both writes")
    assert company.runtime.outbox.record(company.tenant, "Customer", "c-tx") is None
    with company.runtime.engine.begin() as conn:
        conn.execute(app_table.insert().values(id="c-tx"))
        enqueue(conn, company.tenant, entity="Customer", app_id="c-tx", version=1, data={"display_name": "Tx"})
    assert status(company, "Customer", "c-tx").status == "pending"


# ---------------------------------------------------------------------------------- gating


def test_nothing_goes_for_an_entity_switched_off_or_flowing_the_other_way(company: Connected) -> None:
    rt = company.runtime
    values = rt.tenant_settings.get(company.tenant).values.to_dict()
    values["entities"]["Item"] = False
    values["directions"]["Customer"] = "qbo_to_app"
    rt.tenant_settings.save(company.tenant, values)
    send(company, "Item", "svc", {"name": "Off Item", "type": "service"})
    send(company, "Customer", "c1", {"display_name": "One Way"})
    push(rt, company.key)
    assert status(company, "Item", "svc").reason == "Item sync is off in Settings"
    assert "QuickBooks to the app only" in status(company, "Customer", "c1").reason
    assert company.query("Item", "Name = 'Off Item'") == []

    values["entities"]["Item"] = True
    values["directions"]["Customer"] = "both"
    rt.tenant_settings.save(company.tenant, values)
    push(rt, company.key)
    assert {status(company, e, a).status for e, a in (("Item", "svc"), ("Customer", "c1"))} == {"synced"}


def test_nothing_goes_before_the_wizard_while_expired_or_after_a_switch(shared_emulator: RunningEmulator,
                                                                         runtime: Runtime) -> None:
    fresh = connect_company(shared_emulator, runtime, configure=False)
    send(fresh, "Customer", "c1", {"display_name": "Wizard First"})
    result = push(runtime, fresh.key)
    assert result.gate == "complete the Setup Wizard before syncing any data" and result.api_calls == 0
    assert status(fresh, "Customer", "c1").reason == result.gate

    done = connect_company(shared_emulator, runtime)
    send(done, "Customer", "c2", {"display_name": "Expired Session"})
    runtime.connections.mark_state(done.tenant, ConnectionState.SESSION_EXPIRED, "invalid_grant")
    assert "reconnect" in push(runtime, done.key).gate
    assert status(done, "Customer", "c2").status == "pending"
    runtime.connections.mark_state(done.tenant, ConnectionState.CONNECTED)
    assert push(runtime, done.key).created == 1


def test_records_created_before_the_first_connection_are_held_until_an_admin_releases_them(
        shared_emulator: RunningEmulator, runtime: Runtime) -> None:
    runtime.tenants.ensure_tenant("early", "Early Bird")
    with runtime.engine.begin() as conn:
        enqueue(conn, "early", entity="Customer", app_id="old-1", version=1, data={"display_name": "Old Customer"})
    company = connect_company(shared_emulator, runtime, tenant="early")
    send(company, "Customer", "new-1", {"display_name": "New Customer"})
    send(company, "Customer", "backdated", {"display_name": "Backdated"},
         created_at=(datetime.now(UTC) - timedelta(days=30)).isoformat())
    push(runtime, company.key)
    assert status(company, "Customer", "new-1").status == "synced"
    assert {status(company, "Customer", a).status for a in ("old-1", "backdated")} == {"held"}
    assert runtime.outbox.release_held(company.tenant, row_id=status(company, "Customer", "old-1").id) == 1
    push(runtime, company.key)
    assert status(company, "Customer", "old-1").status == "synced"
    assert status(company, "Customer", "backdated").status == "held"


# ---------------------------------------------------------------------------------- match before create


def test_match_before_create_links_one_reviews_several_and_never_duplicates(company: Connected) -> None:
    existing = company.act("Customer", "create", {"DisplayName": "Existing Co", "PrimaryEmailAddr": {"Address": "x@y.co"}})
    company.act("Customer", "create", {"DisplayName": "Twin A", "PrimaryEmailAddr": {"Address": "twin@y.co"}})
    company.act("Customer", "create", {"DisplayName": "Twin B", "PrimaryEmailAddr": {"Address": "twin@y.co"}})
    company.act("Item", "create", {"Name": "Gravel", "Type": "NonInventory", "Sku": "GRV-1",
                                   "IncomeAccountRef": {"value": company.runtime.tenant_settings.get(
                                       company.tenant).values.default_income_account_id}})
    send(company, "Customer", "c-same", {"display_name": "Existing Co", "email": "x@y.co"})
    send(company, "Customer", "c-twin", {"display_name": "Twin C", "email": "twin@y.co"})
    send(company, "Item", "i-sku", {"name": "Gravel (bulk)", "sku": "GRV-1", "type": "non_inventory"})

    result = push(company.runtime, company.key)

    assert status(company, "Customer", "c-same").qbo_id == existing["Id"]
    twin = status(company, "Customer", "c-twin")
    assert twin.status == "review" and twin.review["kind"] == "ambiguous_match" and len(twin.review["candidates"]) == 2
    assert result.matched == 2 and len(company.query("Customer", "DisplayName = 'Existing Co'")) == 1
    assert len(company.query("Item", "Sku = 'GRV-1'")) == 1


def test_a_taken_name_on_create_links_instead_of_failing(company: Connected) -> None:
    """A bookkeeper creates the same customer in QuickBooks between the lookup and the create (a race)."""
    from qb_pipelines.qbo.client import QBOClient

    class RacingClient(QBOClient):
        raced = False

        def query_all(self, entity: str, where: str | None = None, order_by: str | None = None, **kw: Any) -> Any:
            found = list(super().query_all(entity, where=where, order_by=order_by, **kw))
            if entity == "Customer" and not self.raced:
                self.raced = True
                company.act("Customer", "create", {"DisplayName": "Race Condition Co"})
            return found

    base = company.client()
    racing = RacingClient(company.realm, base.tokens, base.environment)
    send(company, "Customer", "c1", {"display_name": "Race Condition Co", "phone": "555-0101"})
    result = push(company.runtime, company.key, client=racing)
    assert racing.raced and result.failed == 0 and result.matched == 1
    found = company.query("Customer", "DisplayName = 'Race Condition Co'")
    assert len(found) == 1  # linked, not created twice; the app's phone filled QuickBooks' blank
    assert found[0]["PrimaryPhone"]["FreeFormNumber"] == "555-0101"
    assert status(company, "Customer", "c1").qbo_id == found[0]["Id"]


# ---------------------------------------------------------------------------------- exactly once


def test_a_batch_without_answer_is_resumed_with_its_requestid_and_posts_once(shared_emulator: RunningEmulator,
                                                                             company: Connected) -> None:
    for i in range(3):
        send(company, "Customer", f"c{i}", {"display_name": f"Once {i}"})
    fault(shared_emulator, {"after_commit": "drop",
                     "next": {"fault": "timeout_after_commit", "count": 10,
                              "scope": {"realms": [company.realm], "paths": ["/batch$"]}}})
    first = push(company.runtime, company.key, client=company.client(max_retries=1))
    assert first.in_flight == 3 and first.created == 0
    rows = [status(company, "Customer", f"c{i}") for i in range(3)]
    assert {r.status for r in rows} == {"in_flight"} and len({r.requestid for r in rows}) == 1
    fault(shared_emulator, {"clear": True})

    second = push(company.runtime, company.key)

    assert second.resumed == 3 and second.created == 3
    assert len(company.query("Customer", "DisplayName LIKE 'Once %'")) == 3
    assert {status(company, "Customer", f"c{i}").status for i in range(3)} == {"synced"}


def test_a_batch_recorded_halfway_is_replayed_whole_and_only_its_unrecorded_rows_recorded(
        shared_emulator: RunningEmulator, company: Connected) -> None:
    for i in range(3):
        send(company, "Customer", f"h{i}", {"display_name": f"Half {i}"})
    fault(shared_emulator, {"after_commit": "drop", "next": {"fault": "timeout_after_commit", "count": 10,
                                                             "scope": {"realms": [company.realm], "paths": ["/batch$"]}}})
    push(company.runtime, company.key, client=company.client(max_retries=1))
    fault(shared_emulator, {"clear": True})
    rows = [status(company, "Customer", f"h{i}") for i in range(3)]
    # a crash while the answer was being recorded: the first row made it, the others did not
    company.runtime.outbox.update([rows[0].id], status="synced")
    result = push(company.runtime, company.key)
    assert result.resumed == 2 and result.created == 2
    assert {status(company, "Customer", f"h{i}").status for i in range(3)} == {"synced"}
    assert len(company.query("Customer", "DisplayName LIKE 'Half %'")) == 3


# ---------------------------------------------------------------------------------- updates and conflicts


def _synced_customer(company: Connected, **policy: Any) -> str:
    send(company, "Customer", "c1", dict(CUSTOMER))
    push(company.runtime, company.key)
    return status(company, "Customer", "c1").qbo_id


def test_an_app_update_sends_only_the_fields_it_changed_and_keeps_qbo_side_edits(company: Connected) -> None:
    qbo_id = _synced_customer(company)
    current = company.read("Customer", qbo_id)
    company.act("Customer", "update", {"Id": qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                       "Notes": "Prefers mornings"})
    send(company, "Customer", "c1", {**CUSTOMER, "phone": "555-2000"}, version=2)
    result = push(company.runtime, company.key)
    after = company.read("Customer", qbo_id)
    assert after["PrimaryPhone"]["FreeFormNumber"] == "555-2000" and after["Notes"] == "Prefers mornings"
    assert result.updated == 1 and status(company, "Customer", "c1").status == "synced"


@pytest.mark.parametrize("policy", ["app_wins", "qbo_wins", "manual_review"])
def test_the_same_field_changed_on_both_sides_follows_the_policy(shared_emulator: RunningEmulator, runtime: Runtime,
                                                                 policy: str) -> None:
    company = connect_company(shared_emulator, runtime, conflict_policy=policy)
    qbo_id = _synced_customer(company)
    current = company.read("Customer", qbo_id)
    company.act("Customer", "update", {"Id": qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                       "PrimaryEmailAddr": {"Address": "qbo@example.com"}})
    send(company, "Customer", "c1", {**CUSTOMER, "email": "app@example.com", "phone": "555-3000"}, version=2)
    push(runtime, company.key)
    after = company.read("Customer", qbo_id)
    row = status(company, "Customer", "c1")
    if policy == "app_wins":
        assert after["PrimaryEmailAddr"]["Address"] == "app@example.com" and row.status == "synced"
    elif policy == "qbo_wins":
        # the app's e-mail is dropped, its phone (no conflict) still goes
        assert after["PrimaryEmailAddr"]["Address"] == "qbo@example.com"
        assert after["PrimaryPhone"]["FreeFormNumber"] == "555-3000"
        assert row.status == "synced" and "email" in row.reason
    else:
        assert after["PrimaryEmailAddr"]["Address"] == "qbo@example.com" and row.status == "review"
        assert row.review["fields"]["email"] == {"agreed": "ada@example.com", "app": "app@example.com",
                                                 "qbo": "qbo@example.com"}
        # the admin keeps QuickBooks' e-mail and the app's phone: the result is pushed
        company.runtime.outbox.resolve(row.id, {**CUSTOMER, "email": "qbo@example.com", "phone": "555-3000"})
        push(runtime, company.key)
        after = company.read("Customer", qbo_id)
        assert after["PrimaryEmailAddr"]["Address"] == "qbo@example.com"
        assert after["PrimaryPhone"]["FreeFormNumber"] == "555-3000"
        assert status(company, "Customer", "c1").status == "synced"


def test_only_qbo_changes_the_field_the_app_resends_unchanged_nothing_is_overwritten(company: Connected) -> None:
    qbo_id = _synced_customer(company)
    current = company.read("Customer", qbo_id)
    company.act("Customer", "update", {"Id": qbo_id, "SyncToken": current["SyncToken"], "sparse": True,
                                       "PrimaryEmailAddr": {"Address": "changed-in-qbo@example.com"}})
    send(company, "Customer", "c1", dict(CUSTOMER), version=2)  # the app re-sends the same record
    result = push(company.runtime, company.key)
    assert company.read("Customer", qbo_id)["PrimaryEmailAddr"]["Address"] == "changed-in-qbo@example.com"
    assert result.updated == 0 and status(company, "Customer", "c1").status == "synced"


def test_delete_inactivates_a_customer_and_deletes_or_voids_invoices(company: Connected) -> None:
    send(company, "Customer", "c1", {"display_name": "Short Lived"})
    send(company, "Item", "svc", {"name": "One-off", "type": "service", "unit_price": 10})
    send(company, "Invoice", "inv-del", invoice("c1", "svc", qty=1, price=10))
    send(company, "Invoice", "inv-void", invoice("c1", "svc", qty=1, price=10))
    push(company.runtime, company.key)
    ids = {a: status(company, "Invoice", a).qbo_id for a in ("inv-del", "inv-void")}
    send(company, "Invoice", "inv-del", version=2, op="delete")
    send(company, "Invoice", "inv-void", version=2, op="void")
    push(company.runtime, company.key)
    assert company.query("Invoice", f"Id = '{ids['inv-del']}'") == []
    voided = company.read("Invoice", ids["inv-void"])
    assert voided["TotalAmt"] == 0 and "Voided" in voided.get("PrivateNote", "")
    send(company, "Customer", "c1", version=2, op="delete")
    push(company.runtime, company.key)
    customer = company.read("Customer", status(company, "Customer", "c1").qbo_id)
    assert customer["Active"] is False


# ---------------------------------------------------------------------------------- errors


def test_a_transient_failure_retries_later_and_a_permanent_one_fails_with_the_next_step(
        shared_emulator: RunningEmulator, company: Connected) -> None:
    send(company, "Customer", "c1", {"display_name": "Throttled"})
    fault(shared_emulator, {"next": {"fault": "500", "count": 50, "scope": {"realms": [company.realm]}}})
    result = push(company.runtime, company.key, client=company.client(max_retries=0))
    fault(shared_emulator, {"clear": True})
    row = status(company, "Customer", "c1")
    assert result.retrying == 1 and row.status == "retrying" and row.api_status == "pending"
    assert row.next_attempt_at is not None and row.next_attempt_at > datetime.now(UTC) and row.attempts == 1
    # not due yet: the next run leaves it alone; once due, it goes
    assert push(company.runtime, company.key).created == 0
    later = push(company.runtime, company.key, now=datetime.now(UTC) + timedelta(hours=2))
    assert later.created == 1

    send(company, "Item", "bad-account", {"name": "Bad Account Item", "type": "service",
                                          "income_account_id": "987654"})
    push(company.runtime, company.key)
    bad = status(company, "Item", "bad-account")
    assert bad.status == "failed" and bad.error_code == "2500" and "Settings" in bad.next_step
    assert company.runtime.outbox.retry([bad.id]) == 1 and status(company, "Item", "bad-account").status == "pending"


@pytest.mark.postgres
def test_push_on_postgresql(shared_emulator: RunningEmulator, tmp_path: Path) -> None:
    with throwaway_database("postgresql", tmp_path, "qbp_push") as url, \
            Runtime(emulator_settings(url, shared_emulator)) as rt:
        company = connect_company(shared_emulator, rt)
        send(company, "Customer", "c1", dict(CUSTOMER))
        send(company, "Item", "svc", {"name": "Hedge", "type": "service", "unit_price": 30})
        send(company, "Invoice", "inv", invoice("c1", "svc"))
        again = send(company, "Invoice", "inv", invoice("c1", "svc"))
        assert again.duplicate
        assert push(rt, company.key).created == 3


def test_a_retried_refused_create_is_a_new_request_not_the_replay_of_the_refusal(company: Connected) -> None:
    """QBO replays a requestid's first answer: an admin's retry must not reuse the refused batch's requestid."""
    company.act("Vendor", "create", {"DisplayName": "Taken For Now"})
    send(company, "Customer", "c1", {"display_name": "Taken For Now"})
    push(company.runtime, company.key)
    refused = status(company, "Customer", "c1")
    assert refused.status == "failed" and refused.error_code == "6240"
    vendor = company.query("Vendor", "DisplayName = 'Taken For Now'")[0]
    company.act("Vendor", "update", {"Id": vendor["Id"], "SyncToken": vendor["SyncToken"], "sparse": True,
                                     "DisplayName": "Taken For Now (vendor)"})
    company.runtime.outbox.retry([refused.id])
    assert push(company.runtime, company.key).created == 1
    assert status(company, "Customer", "c1").status == "synced"
