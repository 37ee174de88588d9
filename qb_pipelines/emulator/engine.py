"""Entity semantics of the emulator: what QBO does when an object is written.

One ``Engine`` per emulator. Every write runs in one ``db.tx()`` and, in that transaction:
validates (faults 2020, 2500, 5010, 6000, 6070, 6240, 610...), computes the server-side fields
(line amounts, SubTotal line, tax, TotalAmt, Balance, DocNumber, DueDate, MetaData, LinkedTxn on
both sides, customer/vendor balances, account balances, inventory), stores the body, replaces the
transaction's ledger postings and appends a row to ``changes`` (which feeds webhooks).

Reference: ``shared/reference/qbo_api.md`` §4 (CRUD), §7 (entities), §11 (fidelity list).
"""

from __future__ import annotations

import copy
import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from qb_pipelines.emulator import chart, faults
from qb_pipelines.emulator.clock import add_days, qbo_timestamp
from qb_pipelines.emulator.db import dumps, loads
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef, Kind

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator

USD = {"value": "USD", "name": "United States Dollar"}
# Fields the server owns: ignored when a client sends them on a write.
SERVER_FIELDS = {"domain", "sparse", "MetaData", "status", "time"}
PARTY = ("Customer", "Vendor", "Employee")
SALES_FORMS = ("Invoice", "Estimate", "SalesReceipt", "CreditMemo", "RefundReceipt")
EXPENSE_FORMS = ("Bill", "VendorCredit", "Purchase")
# Inventory quantity direction per entity (+1 adds stock, -1 sells it).
STOCK_SIGN = {"Invoice": -1, "SalesReceipt": -1, "CreditMemo": 1, "RefundReceipt": 1,
              "Bill": 1, "Purchase": 1, "VendorCredit": -1}
# Suffix QBO appends to an inactivated name (Customer lower-case, others capitalised, §4.5).
DELETED_SUFFIX = {"Customer": " (deleted)"}
DEFAULT_DELETED_SUFFIX = " (Deleted)"


def money(x: float) -> float:
    """Round to cents the way QBO stores amounts (half away from zero)."""
    return float(f"{x + (1e-9 if x >= 0 else -1e-9):.2f}")


def _num(value: Any, element: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise faults.validation("2080", "Illegal number format",
                                f"Illegal number format for {element}: {value!r}", element) from None


def get_path(body: dict, path: str) -> Any:
    cur: Any = body
    for part in path.split("."):
        if not isinstance(cur, dict):
            return None
        cur = cur.get(part)
    return cur


def _clean(value: Any) -> Any:
    """Normalise client quirks: empty strings mean "not given"; refs without value vanish."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = _clean(v)
            if v == "" or v is None:
                continue
            if isinstance(v, dict) and "value" in value.get(k, {}) and v.get("value") in (None, ""):
                continue
            out[k] = v
        return out
    if isinstance(value, list):
        return [_clean(v) for v in value]
    return value


def _ref_value(ref: Any) -> str | None:
    if isinstance(ref, dict):
        v = ref.get("value")
        return str(v) if v not in (None, "") else None
    return None


class Engine:
    """Entity operations on one emulator's companies."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.db = emu.db

    # ------------------------------------------------------------------ companies
    def companies(self) -> list[dict]:
        with self.db.read() as c:
            rows = c.execute("SELECT realm, name, created_at FROM companies ORDER BY created_at, realm").fetchall()
        return [{"realmId": r[0], "name": r[1], "companyName": r[1]} for r in rows]

    def company_exists(self, realm: str) -> bool:
        with self.db.read() as c:
            return c.execute("SELECT 1 FROM companies WHERE realm=?", (realm,)).fetchone() is not None

    def _new_realm(self) -> str:
        # Sandbox realms look like 9341452xxxxxxxxx (16 digits); keep them deterministic.
        n = self.db.next_value("_", "realm", start=1)
        return str(9341452000000000 + n * 7919)

    def create_company(self, name: str, realm: str | None = None, *, email: str | None = None) -> str:
        """Create a company with QBO's starting lists (chart of accounts, tax, terms...)."""
        realm = realm or self._new_realm()
        ts = self.emu.clock.timestamp()
        with self.db.tx() as c:
            if c.execute("SELECT 1 FROM companies WHERE realm=?", (realm,)).fetchone():
                raise faults.business(f"A company with realmId {realm} already exists.")
            c.execute("INSERT INTO companies(realm, name, created_at) VALUES (?, ?, ?)", (realm, name, ts))
            self._bootstrap(c, realm, name, ts, email)
        grant = getattr(self.emu.oauth, "grant_user_access", None)
        if grant is not None:
            grant(None, realm)
        return realm

    def reset_company(self, realm: str) -> None:
        """Drop every object of a company and start it again with the starting lists."""
        with self.db.tx() as c:
            row = c.execute("SELECT name FROM companies WHERE realm=?", (realm,)).fetchone()
            if not row:
                raise KeyError(realm)
            for table in ("objects", "sequences", "postings", "requestids", "changes", "sends"):
                c.execute(f"DELETE FROM {table} WHERE realm=?", (realm,))
            self._bootstrap(c, realm, row[0], self.emu.clock.timestamp(), None)
            self.db.version += 1

    def _bootstrap(self, c: sqlite3.Connection, realm: str, name: str, ts: float, email: str | None) -> None:
        tz = self.emu.company_tz(realm)
        meta = {"CreateTime": qbo_timestamp(ts, tz), "LastUpdatedTime": qbo_timestamp(ts, tz)}
        addr = {"Id": "1", "Line1": "123 Sierra Way", "City": "San Pablo", "CountrySubDivisionCode": "CA",
                "PostalCode": "87999", "Country": "US"}
        info = {
            "CompanyName": name, "LegalName": name, "CompanyAddr": addr, "CustomerCommunicationAddr": addr,
            "LegalAddr": addr, "PrimaryPhone": {"FreeFormNumber": "(650)944-4444"},
            "CompanyStartDate": self.emu.clock.today(tz), "FiscalYearStartMonth": "January", "Country": "US",
            "Email": {"Address": email or "noreply@quickbooks.example"}, "WebAddr": {},
            "SupportedLanguages": "en", "DefaultTimeZone": "America/Los_Angeles",
            "NameValue": [
                {"Name": "NeoEnabled", "Value": "true"},
                {"Name": "IndustryType", "Value": "Landscaping Services"},
                {"Name": "IndustryCode", "Value": "56173"},
                {"Name": "SubscriptionStatus", "Value": "PAID"},
                {"Name": "OfferingSku", "Value": "QuickBooks Online Plus"},
                {"Name": "PayrollFeature", "Value": "false"},
                {"Name": "AccountantFeature", "Value": "false"},
                {"Name": "IsQbdtMigrated", "Value": "false"},
            ],
            "domain": "QBO", "sparse": False, "Id": "1", "SyncToken": "0", "MetaData": meta,
        }
        prefs = {
            "AccountingInfoPrefs": {"TrackDepartments": False, "ClassTrackingPerTxn": False,
                                    "CustomerTerminology": "Customers", "BookCloseDate": None},
            "ProductAndServicesPrefs": {"ForSales": True, "ForPurchase": True, "QuantityWithPriceAndRate": True,
                                        "QuantityOnHand": True},
            "SalesFormsPrefs": {"CustomTxnNumbers": False, "AllowDeposit": True, "AllowDiscount": True,
                                "AllowShipping": False, "DefaultTerms": {"value": "3"},
                                "ETransactionEnabledStatus": "NotApplicable"},
            "VendorAndPurchasesPrefs": {"TrackingByCustomer": True, "BillableExpenseTracking": True,
                                        "DefaultTerms": {"value": "3"}},
            "TimeTrackingPrefs": {"UseServices": True, "BillCustomers": True, "ShowBillRateToAll": False,
                                  "WorkWeekStartDate": "Monday", "MarkTimeEntriesBillable": True},
            "TaxPrefs": {"UsingSalesTax": True, "TaxGroupCodeRef": {"value": "2"}},
            "CurrencyPrefs": {"MultiCurrencyEnabled": False, "HomeCurrency": {"value": "USD"}},
            "ReportPrefs": {"ReportBasis": "Accrual", "CalcAgingReportFromTxnDate": False},
            "OtherPrefs": {"NameValue": [{"Name": "SalesFormsPrefs.DefaultCustomerMessage",
                                          "Value": "Thank you for your business and have a great day!"}]},
            "domain": "QBO", "sparse": False, "Id": "1", "SyncToken": "0", "MetaData": meta,
        }
        rows: list[tuple[str, int, dict]] = [("CompanyInfo", 1, info), ("Preferences", 1, prefs)]
        for acc_id, acc_name, cls, typ, sub in chart.ACCOUNTS:
            rows.append(("Account", acc_id, {
                "Name": acc_name, "SubAccount": False, "FullyQualifiedName": acc_name, "Active": True,
                "Classification": cls, "AccountType": typ, "AccountSubType": sub,
                "CurrentBalance": 0, "CurrentBalanceWithSubAccounts": 0, "CurrencyRef": USD,
                "domain": "QBO", "sparse": False, "Id": str(acc_id), "SyncToken": "0", "MetaData": meta}))
        for rate_id, rate_name, value, _acc in chart.TAX_RATES:
            rows.append(("TaxRate", rate_id, {
                "Name": rate_name, "Description": f"Sales Tax {rate_name}", "Active": True, "RateValue": value,
                "AgencyRef": {"value": chart.TAX_AGENCY["Id"]}, "SpecialTaxType": "NONE",
                "DisplayType": "ReadOnly",
                "EffectiveTaxRate": [{"RateValue": value, "EffectiveDate": "2014-01-01T00:00:00-08:00"}],
                "domain": "QBO", "sparse": False, "Id": str(rate_id), "SyncToken": "0", "MetaData": meta}))
        for code_id, code_name, rate_ids in chart.TAX_CODES:
            rows.append(("TaxCode", code_id, {
                "Name": code_name, "Description": code_name, "Active": True, "Hidden": False,
                "Taxable": True, "TaxGroup": len(rate_ids) > 1,
                "SalesTaxRateList": {"TaxRateDetail": [
                    {"TaxRateRef": {"value": str(r), "name": {t[0]: t[1] for t in chart.TAX_RATES}[r]},
                     "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0} for r in rate_ids]},
                "PurchaseTaxRateList": {"TaxRateDetail": []},
                "domain": "QBO", "sparse": False, "Id": str(code_id), "SyncToken": "0", "MetaData": meta}))
        for term_id, term_name, days in chart.TERMS:
            rows.append(("Term", term_id, {
                "Name": term_name, "Active": True, "Type": "STANDARD", "DueDays": days, "DiscountDays": 0,
                "domain": "QBO", "sparse": False, "Id": str(term_id), "SyncToken": "0", "MetaData": meta}))
        for pm_id, pm_name, pm_type in chart.PAYMENT_METHODS:
            rows.append(("PaymentMethod", pm_id, {
                "Name": pm_name, "Active": True, "Type": pm_type,
                "domain": "QBO", "sparse": False, "Id": str(pm_id), "SyncToken": "0", "MetaData": meta}))
        c.executemany(
            "INSERT OR REPLACE INTO objects(realm, entity, id, active, status, created_at, updated_at, body)"
            " VALUES (?, ?, ?, 1, NULL, ?, ?, ?)",
            [(realm, ent, i, int(ts), int(ts), dumps(body)) for ent, i, body in rows],
        )
        # next Ids: accounts after the chart, each starting list after its seeds
        for seq, start in (("Account", 100), ("Term", 10), ("PaymentMethod", 10), ("TaxCode", 10),
                           ("TaxRate", 10)):
            c.execute("INSERT OR REPLACE INTO sequences(realm, name, value) VALUES (?, ?, ?)", (realm, seq, start))

    # ------------------------------------------------------------------ low-level access
    def _row(self, c: sqlite3.Connection, realm: str, entity: str, obj_id: Any) -> tuple | None:
        try:
            key = int(obj_id)
        except (TypeError, ValueError):
            return None
        return c.execute(
            "SELECT body, active, status FROM objects WHERE realm=? AND entity=? AND id=?", (realm, entity, key)
        ).fetchone()

    def _get(self, c: sqlite3.Connection, realm: str, entity: str, obj_id: Any) -> dict | None:
        """A live (not deleted) object, or None."""
        row = self._row(c, realm, entity, obj_id)
        if row is None or row[2] == "Deleted":
            return None
        return loads(row[0])

    def lookup(self, realm: str, entity: str, obj_id: Any) -> dict | None:
        with self.db.read() as c:
            return self._get(c, realm, entity, obj_id)

    def read(self, realm: str, entity: str, obj_id: Any) -> dict:
        """GET /{entity}/{id}: inactive objects are readable, deleted ones are 610."""
        ent = registry.get(entity)
        with self.db.read() as c:
            self._require_company(c, realm)
            body = self._get(c, realm, ent.name, obj_id)
        if body is None:
            raise faults.not_found()
        return body

    def _require_company(self, c: sqlite3.Connection, realm: str) -> None:
        if not c.execute("SELECT 1 FROM companies WHERE realm=?", (realm,)).fetchone():
            raise faults.app_authorization_failed()

    def _next_id(self, c: sqlite3.Connection, realm: str, ent: EntityDef) -> int:
        # Transactions share one sequence per company (Invoice 119, Payment 120...), name lists
        # have their own (§11.4).
        name = "txn" if ent.is_transaction else ent.name
        return self.db.next_value(realm, name, start=1)

    def _put(self, c: sqlite3.Connection, realm: str, ent: EntityDef, body: dict, *, created: float,
             updated: float, status: str | None = None) -> None:
        active = 0 if body.get("Active") is False else 1
        c.execute(
            "INSERT OR REPLACE INTO objects(realm, entity, id, active, status, created_at, updated_at, body)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (realm, ent.name, int(body["Id"]), active, status, created, updated, dumps(body)),
        )
        self.db.version += 1

    def _touch(self, c: sqlite3.Connection, realm: str, entity: str, body: dict, ts: float, *,
               bump_token: bool) -> None:
        """Store a server-side change to a related object (balance, link, stock)."""
        tz = self.emu.company_tz(realm)
        if bump_token:
            body["SyncToken"] = str(int(body.get("SyncToken", "0")) + 1)
        body.setdefault("MetaData", {})["LastUpdatedTime"] = qbo_timestamp(ts, tz)
        # the row exists (we just read it): keep its created_at and active flag, replace the rest
        c.execute("UPDATE objects SET body=?, updated_at=? WHERE realm=? AND entity=? AND id=?",
                  (dumps(body), int(ts), realm, entity, int(body["Id"])))
        self.db.version += 1

    def _current(self, c: sqlite3.Connection, realm: str, ent: EntityDef, body: dict) -> tuple[dict, float]:
        """The stored object a write names, checked as QBO checks it.

        Returns the object and its ``created_at``. Raises 2020 without a SyncToken, 610 when the
        Id is unknown or deleted, 5010 when the SyncToken is not the current one.
        """
        if body.get("SyncToken") in (None, ""):
            raise faults.required("SyncToken")
        obj_id = str(body.get("Id", "")).strip()
        row = c.execute("SELECT body, status, created_at FROM objects WHERE realm=? AND entity=? AND id=?",
                        (realm, ent.name, int(obj_id) if obj_id.isdigit() else -1)).fetchone()
        if row is None or row[1] == "Deleted":
            raise faults.not_found()
        old = loads(row[0])
        if str(body["SyncToken"]).strip() != old["SyncToken"]:
            raise faults.stale()
        return old, row[2]

    def _tombstone(self, c: sqlite3.Connection, realm: str, ent: EntityDef, obj_id: str, ts: float) -> None:
        """Replace an object by QBO's deleted shape; CDC reports it with status Deleted (§3)."""
        tomb = {"domain": "QBO", "status": "Deleted", "Id": str(obj_id),
                "MetaData": {"LastUpdatedTime": qbo_timestamp(ts, self.emu.company_tz(realm))}}
        c.execute("UPDATE objects SET body=?, status='Deleted', updated_at=? WHERE realm=? AND entity=? AND id=?",
                  (dumps(tomb), int(ts), realm, ent.name, int(obj_id)))
        self.db.version += 1

    def _change(self, c: sqlite3.Connection, realm: str, entity: str, obj_id: str, operation: str, ts: float,
                deleted_id: str | None = None) -> None:
        c.execute(
            "INSERT INTO changes(realm, entity, entity_id, operation, occurred_at, deleted_id)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (realm, entity, str(obj_id), operation, ts, deleted_id),
        )

    # ------------------------------------------------------------------ public writes
    def create(self, realm: str, entity: str, body: dict) -> dict:
        """POST /{entity} without Id: validate, compute, store, post, notify."""
        ent = registry.get(entity)
        if not ent.writable or ent.kind is Kind.SINGLETON:
            raise faults.unsupported(f"Create is not supported for {ent.name}")
        body = _clean(copy.deepcopy(body))
        for f in SERVER_FIELDS | {"Id", "SyncToken"}:
            body.pop(f, None)
        ts = self.emu.clock.timestamp()
        with self.db.tx() as c:
            self._require_company(c, realm)
            new_id = self._next_id(c, realm, ent)
            body["Id"] = str(new_id)
            body["SyncToken"] = "0"
            out = self._write(c, realm, ent, body, old=None, ts=ts, created=int(ts))
            self._change(c, realm, ent.name, out["Id"], "Create", ts)
            return out

    def update(self, realm: str, entity: str, body: dict, *, operation: str = "Update") -> dict:
        """POST /{entity} with Id and SyncToken: sparse or full update (5010 when stale)."""
        ent = registry.get(entity)
        if not ent.writable and ent.kind is not Kind.SINGLETON:
            raise faults.unsupported(f"Update is not supported for {ent.name}")
        body = _clean(copy.deepcopy(body))
        sparse = body.get("sparse") in (True, "true", "True")
        if body.get("Id") in (None, ""):
            raise faults.required("Id")
        ts = self.emu.clock.timestamp()
        with self.db.tx() as c:
            self._require_company(c, realm)
            old, created = self._current(c, realm, ent, body)
            for f in SERVER_FIELDS | {"SyncToken"}:
                body.pop(f, None)
            if sparse:
                new = copy.deepcopy(old)
                new.update(body)
            else:
                new = body
                # read-only and identity fields survive a full update
                for keep in ("DocNumber", "Balance", "BalanceWithJobs", "CurrentBalance",
                             "CurrentBalanceWithSubAccounts", "QtyOnHand", "LinkedTxn"):
                    if keep in old and keep not in new:
                        new[keep] = old[keep]
            new["Id"] = old["Id"]
            new["SyncToken"] = str(int(old["SyncToken"]) + 1)
            if ent.is_transaction and old.get("PrivateNote", "").startswith("Voided") and operation == "Update":
                raise faults.business("A voided transaction cannot be edited.")
            if ent.kind is Kind.SINGLETON:
                new["MetaData"] = {"CreateTime": old["MetaData"]["CreateTime"]}
                new["MetaData"]["LastUpdatedTime"] = qbo_timestamp(ts, self.emu.company_tz(realm))
                new["domain"], new["sparse"] = "QBO", False
                self._put(c, realm, ent, new, created=created, updated=int(ts))
                if ent.name == "CompanyInfo":
                    c.execute("UPDATE companies SET name=? WHERE realm=?",
                              (new.get("CompanyName", old["CompanyName"]), realm))
                self._change(c, realm, ent.name, new["Id"], operation, ts)
                return new
            if ent.is_name_list:
                op = self._activation_change(c, realm, ent, old, new)
                operation = op or operation
            out = self._write(c, realm, ent, new, old=old, ts=ts, created=created)
            self._change(c, realm, ent.name, out["Id"], operation, ts)
            return out

    def delete(self, realm: str, entity: str, body: dict) -> dict:
        """POST /{entity}?operation=delete: transactions only (name lists are inactivated)."""
        ent = registry.get(entity)
        if not ent.deletable:
            raise faults.unsupported(f"Delete is not supported for {ent.name}. Make it inactive instead "
                                     "(sparse update with Active false)")
        body = _clean(body)
        ts = self.emu.clock.timestamp()
        with self.db.tx() as c:
            self._require_company(c, realm)
            old, _created = self._current(c, realm, ent, body)
            self._guard_linked(c, realm, ent, old, action="deleted")
            self._unlink_all(c, realm, ent, old, ts)
            self._apply_side_effects(c, realm, ent, old, None, ts)
            c.execute("DELETE FROM postings WHERE realm=? AND entity=? AND txn_id=?", (realm, ent.name, int(old["Id"])))
            self._tombstone(c, realm, ent, old["Id"], ts)
            self._change(c, realm, ent.name, old["Id"], "Delete", ts)
            self._refresh_accounts(c, realm)
            return {"domain": "QBO", "status": "Deleted", "Id": old["Id"]}

    def void(self, realm: str, entity: str, body: dict) -> dict:
        """Void: the object stays, amounts become zero, PrivateNote starts with "Voided" (§4.5)."""
        ent = registry.get(entity)
        if ent.void is registry.Void.NONE:
            raise faults.unsupported(f"Void is not supported for {ent.name}")
        body = _clean(body)
        ts = self.emu.clock.timestamp()
        with self.db.tx() as c:
            self._require_company(c, realm)
            old, created = self._current(c, realm, ent, body)
            if old.get("PrivateNote", "").startswith("Voided"):
                return old
            self._guard_linked(c, realm, ent, old, action="voided")
            new = copy.deepcopy(old)
            new["SyncToken"] = str(int(old["SyncToken"]) + 1)
            note = old.get("PrivateNote")
            new["PrivateNote"] = f"Voided - {note}" if note else "Voided"
            self._zero_amounts(ent, new)
            out = self._write(c, realm, ent, new, old=old, ts=ts, created=created, voiding=True)
            self._change(c, realm, ent.name, out["Id"], "Void", ts)
            return out

    def merge(self, realm: str, entity: str, from_id: str, into_id: str) -> dict:
        """Merge one name-list record into another (as a QBO user can): the loser is deleted."""
        ent = registry.get(entity)
        if not ent.is_name_list:
            raise faults.unsupported(f"Merge is not supported for {ent.name}")
        ts = self.emu.clock.timestamp()
        tz = self.emu.company_tz(realm)
        with self.db.tx() as c:
            self._require_company(c, realm)
            loser = self._get(c, realm, ent.name, from_id)
            winner = self._get(c, realm, ent.name, into_id)
            if loser is None or winner is None or str(from_id) == str(into_id):
                raise faults.not_found()
            ref_paths = self._ref_paths_to(ent.name)
            rows = c.execute(
                "SELECT entity, id, body, created_at FROM objects WHERE realm=? AND status IS NULL AND "
                "instr(body, ?) > 0", (realm, f'"value":"{loser["Id"]}"')).fetchall()
            for other_entity, _oid, raw, created in rows:
                other = loads(raw)
                changed = False
                for path in ref_paths.get(other_entity, ()):
                    changed |= _replace_ref(other, path, loser["Id"], winner)
                if changed:
                    other_def = registry.get(other_entity)
                    other["SyncToken"] = str(int(other.get("SyncToken", "0")) + 1)
                    other["MetaData"]["LastUpdatedTime"] = qbo_timestamp(ts, tz)
                    self._put(c, realm, other_def, other, created=created, updated=int(ts))
                    if other_def.is_transaction:
                        self._post(c, realm, other_def, other)
            party_column = {"Customer": "customer_id", "Vendor": "vendor_id"}.get(ent.name)
            if party_column:
                c.execute(f"UPDATE postings SET {party_column}=? WHERE realm=? AND {party_column}=?",
                          (int(winner["Id"]), realm, int(loser["Id"])))
            self._tombstone(c, realm, ent, loser["Id"], ts)
            if ent.name in ("Customer", "Vendor"):
                self._recompute_party_balances(c, realm, ent.name)
            self._change(c, realm, ent.name, winner["Id"], "Merge", ts, deleted_id=loser["Id"])
            return self._get(c, realm, ent.name, winner["Id"]) or winner

    def send(self, realm: str, entity: str, obj_id: str, send_to: str | None) -> dict:
        """POST /{entity}/{id}/send: recorded (never mailed); EmailStatus becomes EmailSent."""
        ent = registry.get(entity)
        if not ent.pdf:
            raise faults.unsupported(f"Send is not supported for {ent.name}")
        ts = self.emu.clock.timestamp()
        tz = self.emu.company_tz(realm)
        with self.db.tx() as c:
            self._require_company(c, realm)
            body = self._get(c, realm, ent.name, obj_id)
            if body is None:
                raise faults.not_found()
            address = send_to or get_path(body, "BillEmail.Address")
            if not address:
                raise faults.validation("2050", "Email Address is missing",
                                        "Email address is required to send. Supply sendTo or BillEmail.",
                                        "BillEmail")
            if send_to:
                body["BillEmail"] = {"Address": send_to}
            body["EmailStatus"] = "EmailSent"
            body["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": qbo_timestamp(ts, tz)}
            self._touch(c, realm, ent.name, body, ts, bump_token=True)
            c.execute("INSERT INTO sends(realm, entity, entity_id, send_to, sent_at) VALUES (?, ?, ?, ?, ?)",
                      (realm, ent.name, int(body["Id"]), address, ts))
            self._change(c, realm, ent.name, body["Id"], "Emailed", ts)
            return body

    def sends(self, realm: str) -> list[dict]:
        with self.db.read() as c:
            rows = c.execute("SELECT entity, entity_id, send_to, sent_at FROM sends WHERE realm=? ORDER BY rowid",
                             (realm,)).fetchall()
        return [{"entity": r[0], "id": str(r[1]), "sendTo": r[2], "sentAt": r[3]} for r in rows]

    # ------------------------------------------------------------------ the write pipeline
    def _write(self, c: sqlite3.Connection, realm: str, ent: EntityDef, body: dict, *, old: dict | None,
               ts: float, created: float, voiding: bool = False) -> dict:
        tz = self.emu.company_tz(realm)
        if not voiding:
            self._validate(c, realm, ent, body)
            self._compute(c, realm, ent, body, old)
            self._number_addresses(realm, body, old)
        body["domain"] = "QBO"
        body["sparse"] = False
        body["MetaData"] = {
            "CreateTime": old["MetaData"]["CreateTime"] if old else qbo_timestamp(created, tz),
            "LastUpdatedTime": qbo_timestamp(ts, tz),
        }
        self._apply_side_effects(c, realm, ent, old, body, ts)
        self._put(c, realm, ent, body, created=int(created), updated=int(ts))
        if ent.is_transaction:
            self._post(c, realm, ent, body)
            self._refresh_accounts(c, realm)
        return body

    def _number_addresses(self, realm: str, body: dict, old: dict | None) -> None:
        """Every stored physical address has its own Id (one sequence per company, §7.2)."""
        for key in ("BillAddr", "ShipAddr", "CompanyAddr", "LegalAddr", "CustomerCommunicationAddr"):
            addr = body.get(key)
            if not isinstance(addr, dict) or not addr or addr.get("Id"):
                continue
            previous = (old or {}).get(key) or {}
            addr["Id"] = previous.get("Id") or str(self.db.next_value(realm, "addr", start=100))

    def _post(self, c: sqlite3.Connection, realm: str, ent: EntityDef, body: dict) -> None:
        """Replace this transaction's ledger postings (voided ones post nothing)."""
        from qb_pipelines.emulator import ledger

        c.execute("DELETE FROM postings WHERE realm=? AND entity=? AND txn_id=?", (realm, ent.name, int(body["Id"])))
        if str(body.get("PrivateNote", "")).startswith("Voided"):
            return
        try:
            postings = ledger.postings(ent.name, body, lambda e, i: self._get(c, realm, e, i))
        except ledger.UnbalancedTransaction as exc:
            raise faults.business(f"Transaction must be balanced: {exc}") from exc
        date = body.get("TxnDate") or self.emu.clock.today(self.emu.company_tz(realm))
        c.executemany(
            "INSERT INTO postings(realm, entity, txn_id, seq, txn_date, account_id, amount, customer_id, vendor_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(realm, ent.name, int(body["Id"]), n, date, p.account_id, p.amount, p.customer_id, p.vendor_id)
             for n, p in enumerate(postings)],
        )

    def _refresh_accounts(self, c: sqlite3.Connection, realm: str) -> None:
        """Account.CurrentBalance follows the ledger (natural sign of the classification)."""
        sums = dict(c.execute("SELECT account_id, SUM(amount) FROM postings WHERE realm=? GROUP BY account_id",
                              (realm,)).fetchall())
        for raw, in c.execute("SELECT body FROM objects WHERE realm=? AND entity='Account' AND status IS NULL",
                              (realm,)).fetchall():
            acc = loads(raw)
            sign = chart.DEBIT_NORMAL.get(acc.get("Classification", "Asset"), 1)
            bal = money(sign * sums.get(int(acc["Id"]), 0.0))
            if acc.get("CurrentBalance") != bal:
                acc["CurrentBalance"] = bal
                acc["CurrentBalanceWithSubAccounts"] = bal
                c.execute("UPDATE objects SET body=? WHERE realm=? AND entity='Account' AND id=?",
                          (dumps(acc), realm, int(acc["Id"])))

    # ------------------------------------------------------------------ validation
    def _validate(self, c: sqlite3.Connection, realm: str, ent: EntityDef, body: dict) -> None:
        for name in ent.required:
            if body.get(name) in (None, "", []) and not (name == "Line" and body.get(name) == []):
                raise faults.required(name)
            if name == "Line" and not body.get("Line"):
                raise faults.required("Line")
        for ref in ent.refs:
            self._check_ref(c, realm, body, ref.path, ref.target, ref.required)
        for line in body.get("Line") or []:
            if not isinstance(line, dict):
                raise faults.invalid_value("Line", "Line must be an object")
            dt = line.get("DetailType")
            if ent.name in ("Payment", "BillPayment") or (ent.name == "Deposit" and "LinkedTxn" in line):
                continue
            if not dt:
                raise faults.required("Line.DetailType")
            if dt not in ("SubTotalLineDetail", "DescriptionOnly") and dt not in line:
                raise faults.required(f"Line.{dt}")
            for ref in ent.line_refs.get(dt, ()):
                self._check_ref(c, realm, line, ref.path, ref.target, ref.required, prefix="Line.")

    def _check_ref(self, c: sqlite3.Connection, realm: str, body: dict, path: str, target: str | tuple[str, ...],
                   required: bool, prefix: str = "") -> None:
        ref = get_path(body, path)
        value = _ref_value(ref)
        if value is None:
            if required:
                raise faults.required(prefix + path)
            return
        if path.endswith("EntityRef") or path.endswith(".Entity"):
            kind = (ref.get("type") or get_path(body, path.rsplit(".", 1)[0] + ".Type") or "") if isinstance(ref, dict) else ""
            targets = (kind,) if kind in PARTY else (target if isinstance(target, tuple) else (target,))
        else:
            targets = target if isinstance(target, tuple) else (target,)
        for t in targets:
            if t == "Customer" and path.endswith("TaxCodeRef"):
                continue
            row = self._row(c, realm, t, value)
            if row is not None and row[2] != "Deleted" and row[1] == 1:
                if isinstance(ref, dict) and "name" not in ref:
                    ref["name"] = self._display_name(t, loads(row[0]))
                return
        raise faults.invalid_reference(prefix + path, value, targets[0])

    @staticmethod
    def _display_name(entity: str, body: dict) -> str:
        if entity in PARTY:
            return body.get("DisplayName", "")
        return body.get("FullyQualifiedName") or body.get("Name") or body.get("DisplayName") or ""

    # ------------------------------------------------------------------ name lists
    def _activation_change(self, c: sqlite3.Connection, realm: str, ent: EntityDef, old: dict, new: dict) -> str | None:
        """Inactivation renames with " (deleted)"; reactivation restores the name (§4.5)."""
        was, now = old.get("Active", True) is not False, new.get("Active", True) is not False
        field = ent.unique_name or "Name"
        suffix = DELETED_SUFFIX.get(ent.name, DEFAULT_DELETED_SUFFIX)
        if was and not now:
            if ent.name in ("Customer", "Vendor") and abs(float(old.get("Balance", 0) or 0)) > 0.004:
                raise faults.QBOFault(400, "ValidationFault", [faults.FaultError(
                    "Delete List Has Balance Error",
                    f"The entity you are trying to delete has an open balance. : This {ent.name.lower()} "
                    "cannot be deleted because it has a non-zero balance", "6000", "")])
            if ent.name == "Customer":
                children = c.execute(
                    "SELECT COUNT(*) FROM objects WHERE realm=? AND entity='Customer' AND active=1 AND status IS NULL"
                    " AND json_extract(body, '$.ParentRef.value')=?", (realm, old["Id"])).fetchone()[0]
                if children:
                    raise faults.business("You can't make this customer inactive while it has active "
                                          "sub-customers. Make the sub-customers inactive first.")
            name = new.get(field, old.get(field, ""))
            if not str(name).endswith(suffix):
                new[field] = f"{name}{suffix}"
            return "Delete"
        if not was and now:
            name = str(new.get(field, ""))
            if name.endswith(suffix):
                new[field] = name[: -len(suffix)]
        return None

    def _check_unique(self, c: sqlite3.Connection, realm: str, ent: EntityDef, body: dict) -> None:
        field = ent.unique_name
        if not field:
            return
        name = str(body.get(field, "")).strip()
        if not name:
            return
        scope = ent.name_scope or (ent.name,)
        if ent.name in ("Item", "Account", "Class", "Department") and body.get("ParentRef"):
            # names are unique among siblings: compare the full path instead
            name_expr, name = "json_extract(body, '$.FullyQualifiedName')", body.get("FullyQualifiedName", name)
        elif ent.name in ("Item", "Account", "Class", "Department"):
            name_expr = "json_extract(body, '$.FullyQualifiedName')"
        else:
            name_expr = f"json_extract(body, '$.{field}')"
        placeholders = ",".join("?" * len(scope))
        row = c.execute(
            f"SELECT entity, id FROM objects WHERE realm=? AND entity IN ({placeholders}) AND status IS NULL "
            f"AND lower({name_expr}) = lower(?) AND NOT (entity=? AND id=?) LIMIT 1",
            (realm, *scope, name, ent.name, int(body["Id"])),
        ).fetchone()
        if row:
            raise faults.duplicate_name()

    def _compute_name_list(self, c: sqlite3.Connection, realm: str, ent: EntityDef, body: dict,
                           old: dict | None) -> None:
        body.setdefault("Active", True)
        if isinstance(body.get("Active"), str):
            body["Active"] = body["Active"].lower() == "true"
        if ent.name in PARTY:
            if not body.get("DisplayName"):
                parts = [body.get(k) for k in ("Title", "GivenName", "MiddleName", "FamilyName", "Suffix")]
                derived = " ".join(p for p in parts if p) or body.get("CompanyName")
                if not derived:
                    raise faults.validation("6080", "No Name Provided",
                                            "No Name Provided : Please provide a name (DisplayName, "
                                            "GivenName, FamilyName or CompanyName).", "DisplayName")
                body["DisplayName"] = derived
            name = body["DisplayName"]
            if any(ch in name for ch in ":\t\n"):
                raise faults.validation("2170", "Invalid Enumeration",
                                        "DisplayName cannot contain a colon (:), tab or new line.", "DisplayName")
            body.setdefault("PrintOnCheckName", body.get("CompanyName") or name)
            if ent.name != "Employee":
                body.setdefault("Balance", 0)
                body.setdefault("CurrencyRef", USD)
        if ent.name == "Customer":
            parent_id = _ref_value(body.get("ParentRef"))
            if parent_id:
                parent = self._get(c, realm, "Customer", parent_id)
                if parent is None:
                    raise faults.invalid_reference("ParentRef", parent_id, "Customer")
                level = int(parent.get("Level", 0)) + 1
                if level > 4:
                    raise faults.business("Sub-customers can be nested at most 4 levels deep.", "ParentRef")
                if old and self._is_descendant(c, realm, parent_id, body["Id"]):
                    raise faults.business("A customer cannot be its own parent.", "ParentRef")
                body["Job"] = True
                body["Level"] = level
                body["FullyQualifiedName"] = f'{parent.get("FullyQualifiedName", parent["DisplayName"])}:{body["DisplayName"]}'
                body.setdefault("BillWithParent", False)
            else:
                body.pop("ParentRef", None)
                body.pop("Level", None)  # QBO omits Level on top-level customers (§7.2)
                body["Job"] = False
                body["FullyQualifiedName"] = body["DisplayName"]
                body["BillWithParent"] = False
            body.setdefault("Taxable", False)
            body.setdefault("PreferredDeliveryMethod", "Print")
            body.setdefault("BalanceWithJobs", body.get("Balance", 0))
        elif ent.name == "Vendor":
            body.setdefault("Vendor1099", False)
        elif ent.name == "Item":
            self._compute_item(c, realm, body, old)
        elif ent.name == "Account":
            typ = body.get("AccountType")
            sub = body.get("AccountSubType")
            if not typ and not sub:
                raise faults.validation("6010", "Invalid account type",
                                        "Invalid account type : You must select an account type "
                                        "(AccountType or AccountSubType).", "AccountType")
            if not typ:
                match = next((a for a in chart.ACCOUNTS if a[4] == sub), None)
                typ = match[3] if match else "Expense"
                body["AccountType"] = typ
            body.setdefault("AccountSubType", next((a[4] for a in chart.ACCOUNTS if a[3] == typ), typ))
            body["Classification"] = _classification(typ)
            body.setdefault("CurrencyRef", USD)
            body.setdefault("CurrentBalance", 0)
            body.setdefault("CurrentBalanceWithSubAccounts", body["CurrentBalance"])
            self._hierarchy(c, realm, "Account", body, "Name", flag="SubAccount")
        elif ent.name in ("Class", "Department"):
            self._hierarchy(c, realm, ent.name, body, "Name", flag="SubClass" if ent.name == "Class" else "SubDepartment")
        elif ent.name == "Term":
            body.setdefault("Type", "STANDARD")
            body.setdefault("DueDays", 0)
        elif ent.name == "PaymentMethod":
            body.setdefault("Type", "NON_CREDIT_CARD")
        self._check_unique(c, realm, ent, body)

    def _is_descendant(self, c: sqlite3.Connection, realm: str, candidate: str, ancestor: str) -> bool:
        cur = candidate
        for _ in range(10):
            if cur == ancestor:
                return True
            node = self._get(c, realm, "Customer", cur)
            cur = _ref_value(node.get("ParentRef")) if node else None
            if not cur:
                return False
        return False

    def _hierarchy(self, c: sqlite3.Connection, realm: str, entity: str, body: dict, field: str, *, flag: str) -> None:
        parent_id = _ref_value(body.get("ParentRef"))
        if parent_id:
            parent = self._get(c, realm, entity, parent_id)
            if parent is None:
                raise faults.invalid_reference("ParentRef", parent_id, entity)
            body[flag] = True
            body["FullyQualifiedName"] = f'{parent.get("FullyQualifiedName", parent[field])}:{body[field]}'
            if entity == "Item":
                body["Level"] = int(parent.get("Level", 0)) + 1
        else:
            if entity == "Item":
                body.pop(flag, None)  # real Item payloads carry SubItem only on sub-items
                body.pop("Level", None)
            else:
                body[flag] = False
            body["FullyQualifiedName"] = body[field]

    def _compute_item(self, c: sqlite3.Connection, realm: str, body: dict, old: dict | None) -> None:
        typ = body.setdefault("Type", "Service")
        if typ not in ("Service", "Inventory", "NonInventory", "Category", "Group"):
            raise faults.validation("2170", "Invalid Enumeration", f"Invalid Enumeration : {typ}", "Type")
        if typ in ("Service", "Inventory", "NonInventory") and not body.get("IncomeAccountRef") \
                and not body.get("ExpenseAccountRef"):
            raise faults.required("IncomeAccountRef")
        if typ == "Inventory":
            for f in ("AssetAccountRef", "ExpenseAccountRef"):
                if not body.get(f):
                    raise faults.required(f)
            if not body.get("InvStartDate"):
                raise faults.required("InvStartDate")
            body["TrackQtyOnHand"] = True
            body.setdefault("QtyOnHand", 0)
        elif typ != "Category":
            body.setdefault("TrackQtyOnHand", False)
        if typ != "Category":
            body.setdefault("UnitPrice", 0)
            body.setdefault("PurchaseCost", 0)
            body.setdefault("Taxable", False)
        self._hierarchy(c, realm, "Item", body, "Name", flag="SubItem")
        if old and old.get("Type") != typ and old.get("Type") == "Inventory":
            raise faults.business("You can't change an inventory item to another type.", "Type")

    # ------------------------------------------------------------------ transactions
    def _compute(self, c: sqlite3.Connection, realm: str, ent: EntityDef, body: dict, old: dict | None) -> None:
        if ent.is_name_list:
            self._compute_name_list(c, realm, ent, body, old)
            return
        tz = self.emu.company_tz(realm)
        today = self.emu.clock.today(tz)
        body.setdefault("TxnDate", today)
        _check_date(body.get("TxnDate"), "TxnDate")
        if ent.name != "TimeActivity":
            body.setdefault("CurrencyRef", USD)
        if ent.doc_number and not body.get("DocNumber"):
            if old and old.get("DocNumber"):
                body["DocNumber"] = old["DocNumber"]
            else:
                body["DocNumber"] = str(self.db.next_value(realm, f"doc:{ent.name}", start=1001))
        if ent.name in SALES_FORMS:
            self._compute_sales(c, realm, ent, body, old)
        elif ent.name == "Payment":
            self._compute_payment(c, realm, body, old)
        elif ent.name in EXPENSE_FORMS:
            self._compute_expense(c, realm, ent, body, old)
        elif ent.name == "BillPayment":
            self._compute_bill_payment(c, realm, body, old)
        elif ent.name == "Deposit":
            self._compute_deposit(c, realm, body, old)
        elif ent.name == "JournalEntry":
            self._compute_journal(c, realm, body)
        elif ent.name == "TimeActivity":
            self._compute_time(body)

    def _lines(self, body: dict) -> list[dict]:
        lines = body.get("Line") or []
        if not isinstance(lines, list):
            raise faults.invalid_value("Line", "Line must be an array")
        return lines

    def _compute_sales(self, c: sqlite3.Connection, realm: str, ent: EntityDef, body: dict, old: dict | None) -> None:
        customer_id = _ref_value(body.get("CustomerRef"))
        customer = self._get(c, realm, "Customer", customer_id) if customer_id else None
        out_lines: list[dict] = []
        subtotal = taxable = discount = 0.0
        n = 0
        discount_lines: list[dict] = []
        for line in self._lines(body):
            dt = line.get("DetailType")
            if dt == "SubTotalLineDetail":
                continue
            line = dict(line)
            if dt == "SalesItemLineDetail":
                n += 1
                detail = line["SalesItemLineDetail"] = dict(line.get("SalesItemLineDetail") or {})
                item_id = _ref_value(detail.get("ItemRef"))
                item = self._get(c, realm, "Item", item_id) if item_id else None
                if item is None and item_id is None:
                    # QBO falls back to its built-in "Services" item when no item is given
                    detail["ItemRef"] = {"value": "1", "name": "Services"} if self._get(c, realm, "Item", "1") else None
                    item = self._get(c, realm, "Item", "1")
                    if detail["ItemRef"] is None:
                        detail.pop("ItemRef")
                amount = line.get("Amount")
                qty = detail.get("Qty")
                price = detail.get("UnitPrice")
                if amount is None and qty is None and price is None:
                    raise faults.required("Line.Amount")
                if price is None and amount is None and item is not None:
                    price = item.get("UnitPrice", 0)
                if amount is None:
                    amount = money(_num(qty if qty is not None else 1, "Line.SalesItemLineDetail.Qty")
                                   * _num(price, "Line.SalesItemLineDetail.UnitPrice"))
                    detail.setdefault("Qty", qty if qty is not None else 1)
                    detail["UnitPrice"] = price
                else:
                    amount = money(_num(amount, "Line.Amount"))
                    if qty is not None and price is not None:
                        if abs(_num(qty, "Qty") * _num(price, "UnitPrice") - amount) > 0.005:
                            raise faults.validation(
                                "6070", "Amount calculation incorrect in the request",
                                f"Amount is not equal to UnitPrice * Qty. Supplied value:{amount}", "Line.Amount")
                    elif qty is not None and _num(qty, "Qty") != 0:
                        detail["UnitPrice"] = round(amount / _num(qty, "Qty"), 7)
                    elif price is not None and _num(price, "UnitPrice") != 0:
                        detail["Qty"] = round(amount / _num(price, "UnitPrice"), 7)
                    elif qty is None and price is None:
                        detail["UnitPrice"] = amount
                        detail["Qty"] = 1
                line["Amount"] = amount
                if item is not None:
                    line.setdefault("Description", item.get("Description")) if item.get("Description") else None
                    if "TaxCodeRef" not in detail:
                        detail["TaxCodeRef"] = {"value": "TAX" if item.get("Taxable") else "NON"}
                else:
                    detail.setdefault("TaxCodeRef", {"value": "NON"})
                code = _ref_value(detail.get("TaxCodeRef"))
                if code not in ("TAX", "NON"):
                    raise faults.validation("6100", "Invalid tax code",
                                            f"Invalid line tax code {code}: use TAX or NON.",
                                            "Line.SalesItemLineDetail.TaxCodeRef")
                subtotal += amount
                if code == "TAX":
                    taxable += amount
                line["Id"] = str(n)
                line["LineNum"] = n
                out_lines.append(line)
            elif dt == "DiscountLineDetail":
                discount_lines.append(line)
            elif dt == "DescriptionOnly":
                n += 1
                line.setdefault("Amount", 0)
                line.setdefault("DescriptionLineDetail", {})
                line["Id"] = str(n)
                line["LineNum"] = n
                out_lines.append(line)
            elif dt == "GroupLineDetail":
                n += 1
                inner = (line.get("GroupLineDetail") or {}).get("Line") or []
                amount = money(sum(_num(x.get("Amount", 0), "Line.Amount") for x in inner))
                line["Amount"] = amount
                subtotal += amount
                line["Id"] = str(n)
                line["LineNum"] = n
                out_lines.append(line)
            else:
                raise faults.validation("2170", "Invalid Enumeration",
                                        f"Invalid Enumeration : {dt} is not a valid DetailType for {ent.name}",
                                        "Line.DetailType")
        subtotal = money(subtotal)
        out_lines.append({"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
        for line in discount_lines:
            n += 1
            detail = line["DiscountLineDetail"] = dict(line.get("DiscountLineDetail") or {})
            if detail.get("PercentBased") and detail.get("DiscountPercent") is not None:
                amount = money(subtotal * _num(detail["DiscountPercent"], "DiscountPercent") / 100)
            else:
                amount = money(_num(line.get("Amount", 0), "Line.Amount"))
                detail.setdefault("PercentBased", False)
            detail.setdefault("DiscountAccountRef", {"value": str(chart.DISCOUNTS_GIVEN), "name": "Discounts given"})
            line["Amount"] = amount
            line["Id"] = str(n)
            line["LineNum"] = n
            discount += amount
            out_lines.append(line)
        body["Line"] = out_lines
        # tax: the transaction's tax code applies its rates to the TAX lines (§7.8)
        apply_after = bool(body.get("ApplyTaxAfterDiscount", False))
        body["ApplyTaxAfterDiscount"] = apply_after
        tax_detail = dict(body.get("TxnTaxDetail") or {})
        code_id = _ref_value(tax_detail.get("TxnTaxCodeRef"))
        if code_id is None and customer is not None and customer.get("Taxable") and taxable > 0:
            code_id = _ref_value(get_path(self._get(c, realm, "Preferences", 1) or {}, "TaxPrefs.TaxGroupCodeRef"))
        total_tax = 0.0
        if code_id:
            code = self._get(c, realm, "TaxCode", code_id)
            if code is None:
                raise faults.invalid_reference("TxnTaxDetail.TxnTaxCodeRef", code_id, "TaxCode")
            base = taxable
            if apply_after and subtotal:
                base = money(taxable - discount * (taxable / subtotal))
            tax_lines = []
            for rd in get_path(code, "SalesTaxRateList.TaxRateDetail") or []:
                rate = self._get(c, realm, "TaxRate", _ref_value(rd.get("TaxRateRef")))
                if rate is None:
                    continue
                pct = float(rate.get("RateValue", 0))
                amt = money(base * pct / 100)
                total_tax += amt
                tax_lines.append({"Amount": amt, "DetailType": "TaxLineDetail", "TaxLineDetail": {
                    "TaxRateRef": {"value": rate["Id"]}, "PercentBased": True, "TaxPercent": pct,
                    "NetAmountTaxable": base}})
            body["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": str(code_id)}, "TotalTax": money(total_tax),
                                    "TaxLine": tax_lines}
        else:
            body["TxnTaxDetail"] = {"TotalTax": 0}
        total = money(subtotal - discount + total_tax)
        body["TotalAmt"] = total
        if customer is not None:
            body["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
            if ent.name in ("Invoice", "Estimate", "SalesReceipt", "CreditMemo") and customer.get("BillAddr"):
                body.setdefault("BillAddr", dict(customer["BillAddr"]))
            if customer.get("ShipAddr") and ent.name in ("Invoice", "Estimate", "SalesReceipt"):
                body.setdefault("ShipAddr", dict(customer["ShipAddr"]))
            if customer.get("PrimaryEmailAddr") and ent.name != "RefundReceipt":
                body.setdefault("BillEmail", {"Address": customer["PrimaryEmailAddr"].get("Address")})
        body.setdefault("PrintStatus", "NotSet")
        body.setdefault("EmailStatus", "NotSet")
        body.setdefault("CustomField", [])
        if ent.name == "Invoice":
            body.setdefault("LinkedTxn", [])  # invoices carry [], other forms omit it when empty
        elif not body.get("LinkedTxn"):
            body.pop("LinkedTxn", None)
        if ent.name in ("Invoice", "Estimate"):
            if ent.name == "Invoice":
                for k in ("AllowIPNPayment", "AllowOnlinePayment", "AllowOnlineCreditCardPayment",
                          "AllowOnlineACHPayment"):
                    body.setdefault(k, False)
            term_id = _ref_value(body.get("SalesTermRef"))
            if term_id is None and customer is not None:
                term_id = _ref_value(customer.get("SalesTermRef"))
            if term_id is None and ent.name == "Invoice":
                term_id = _ref_value(get_path(self._get(c, realm, "Preferences", 1) or {}, "SalesFormsPrefs.DefaultTerms"))
            term = self._get(c, realm, "Term", term_id) if term_id else None
            if term is not None:
                body["SalesTermRef"] = {"value": term["Id"], "name": term["Name"]}
                if ent.name == "Invoice" and not body.get("DueDate"):
                    body["DueDate"] = add_days(body["TxnDate"], int(term.get("DueDays", 0)))
            if ent.name == "Invoice":
                body.setdefault("DueDate", body["TxnDate"])
                _check_date(body["DueDate"], "DueDate")
                applied = self._applied_to(c, realm, "Invoice", body["Id"])
                if applied - total > 0.005:
                    raise faults.business(
                        f"The invoice total ({total:.2f}) cannot be less than the payments already applied "
                        f"({applied:.2f}). Unapply the payments first.", "TotalAmt")
                body["Balance"] = money(total - applied)
                body["LinkedTxn"] = self._links_of(body.get("LinkedTxn"), "Invoice")
            else:
                body.setdefault("TxnStatus", "Pending")
        elif ent.name == "SalesReceipt":
            body["Balance"] = 0
            body.setdefault("DepositToAccountRef", {"value": str(chart.UNDEPOSITED_FUNDS), "name": "Undeposited Funds"})
        elif ent.name == "RefundReceipt":
            body["Balance"] = 0
        elif ent.name == "CreditMemo":
            applied = self._applied_to(c, realm, "CreditMemo", body["Id"])
            if applied - total > 0.005:
                raise faults.business("The credit memo total cannot be less than the credit already applied.",
                                      "TotalAmt")
            body["Balance"] = body["RemainingCredit"] = money(total - applied)

    @staticmethod
    def _links_of(links: Any, _entity: str) -> list[dict]:
        return [dict(link) for link in (links or []) if isinstance(link, dict) and link.get("TxnId")]

    def _applied_to(self, c: sqlite3.Connection, realm: str, target_entity: str, target_id: str) -> float:
        """Sum of payment (or bill payment) lines that apply to this document."""
        target = self._get(c, realm, target_entity, target_id)
        if target is None:
            return 0.0
        total = 0.0
        payer = "BillPayment" if target_entity == "Bill" else "Payment"
        for link in target.get("LinkedTxn") or []:
            if link.get("TxnType") not in ("Payment", "BillPaymentCheck", "BillPaymentCreditCard"):
                continue
            pay = self._get(c, realm, payer, link["TxnId"])
            if pay is None:
                continue
            for line in pay.get("Line") or []:
                for lt in line.get("LinkedTxn") or []:
                    if lt.get("TxnType") == target_entity and str(lt.get("TxnId")) == str(target_id):
                        total += float(line.get("Amount", 0))
        return money(total)

    def _compute_payment(self, c: sqlite3.Connection, realm: str, body: dict, old: dict | None) -> None:
        customer = self._get(c, realm, "Customer", _ref_value(body.get("CustomerRef")))
        body["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
        total = money(_num(body.get("TotalAmt"), "TotalAmt"))
        if total < 0:
            raise faults.business("Payment amount cannot be negative.", "TotalAmt")
        body["TotalAmt"] = total
        old_applied: dict[tuple[str, str], float] = {}
        if old:
            for line in old.get("Line") or []:
                for lt in line.get("LinkedTxn") or []:
                    key = (lt.get("TxnType"), str(lt.get("TxnId")))
                    old_applied[key] = old_applied.get(key, 0.0) + float(line.get("Amount", 0))
        applied_inv = applied_cm = 0.0
        lines = []
        for line in self._lines(body):
            amount = money(_num(line.get("Amount", 0), "Line.Amount"))
            links = [lt for lt in (line.get("LinkedTxn") or []) if isinstance(lt, dict)]
            if not links:
                raise faults.required("Line.LinkedTxn")
            out_line = {"Amount": amount, "LinkedTxn": []}
            for lt in links:
                typ, tid = lt.get("TxnType"), str(lt.get("TxnId", ""))
                if typ not in ("Invoice", "CreditMemo", "JournalEntry"):
                    raise faults.validation("2170", "Invalid Enumeration",
                                            f"Invalid Enumeration : {typ} cannot be linked to a payment",
                                            "Line.LinkedTxn.TxnType")
                doc = self._get(c, realm, typ, tid)
                if doc is None:
                    raise faults.invalid_reference("Line.LinkedTxn.TxnId", tid, typ)
                if typ != "JournalEntry" and _ref_value(doc.get("CustomerRef")) != customer["Id"]:
                    raise faults.business(
                        f"The {typ.lower()} {doc.get('DocNumber', tid)} belongs to another customer.",
                        "Line.LinkedTxn")
                if typ in ("Invoice", "CreditMemo"):
                    available = float(doc.get("Balance", 0)) + old_applied.get((typ, tid), 0.0)
                    if amount - available > 0.005:
                        raise faults.business(
                            f"The amount applied ({amount:.2f}) to {typ} {doc.get('DocNumber', tid)} exceeds "
                            f"its open balance ({available:.2f}).", "Line.Amount")
                out_line["LinkedTxn"].append({"TxnId": tid, "TxnType": typ})
                if typ == "Invoice":
                    applied_inv += amount
                    out_line["LineEx"] = _line_ex(tid, available, doc.get("DocNumber"))
                elif typ == "CreditMemo":
                    applied_cm += amount
            lines.append(out_line)
        if applied_inv - applied_cm - total > 0.005:
            raise faults.business("The amount applied to invoices is more than the payment amount.", "TotalAmt")
        body["Line"] = lines
        body["UnappliedAmt"] = money(total - applied_inv + applied_cm)
        body.setdefault("DepositToAccountRef", {"value": str(chart.UNDEPOSITED_FUNDS), "name": "Undeposited Funds"})
        body.setdefault("ProcessPayment", False)
        links = self._links_of(body.get("LinkedTxn") or (old or {}).get("LinkedTxn"), "Payment")
        if links:
            body["LinkedTxn"] = links
        else:
            body.pop("LinkedTxn", None)

    def _compute_expense(self, c: sqlite3.Connection, realm: str, ent: EntityDef, body: dict, old: dict | None) -> None:
        total = 0.0
        lines = []
        for n, line in enumerate(self._lines(body), start=1):
            line = dict(line)
            dt = line.get("DetailType")
            if dt not in ("AccountBasedExpenseLineDetail", "ItemBasedExpenseLineDetail"):
                raise faults.validation("2170", "Invalid Enumeration",
                                        f"Invalid Enumeration : {dt} is not a valid DetailType for {ent.name}",
                                        "Line.DetailType")
            detail = line[dt] = dict(line.get(dt) or {})
            if dt == "ItemBasedExpenseLineDetail":
                item = self._get(c, realm, "Item", _ref_value(detail.get("ItemRef")))
                qty, price = detail.get("Qty"), detail.get("UnitPrice")
                if line.get("Amount") is None:
                    if price is None and item is not None:
                        price = item.get("PurchaseCost", 0)
                    qty = 1 if qty is None else qty
                    if price is None:
                        raise faults.required("Line.Amount")
                    line["Amount"] = money(_num(qty, "Qty") * _num(price, "UnitPrice"))
                    detail["Qty"], detail["UnitPrice"] = qty, price
            elif line.get("Amount") is None:
                raise faults.required("Line.Amount")
            line["Amount"] = money(_num(line["Amount"], "Line.Amount"))
            detail.setdefault("BillableStatus", "NotBillable")
            detail.setdefault("TaxCodeRef", {"value": "NON"})
            line["Id"] = str(n)
            line.setdefault("LineNum", n)
            total += line["Amount"]
            lines.append(line)
        body["Line"] = lines
        body["TotalAmt"] = money(total)
        if ent.name in ("Bill", "VendorCredit"):
            vendor = self._get(c, realm, "Vendor", _ref_value(body.get("VendorRef")))
            body["VendorRef"] = {"value": vendor["Id"], "name": vendor["DisplayName"]}
            body.setdefault("APAccountRef", {"value": str(chart.ACCOUNTS_PAYABLE), "name": "Accounts Payable (A/P)"})
            if ent.name == "Bill":
                term_id = _ref_value(body.get("SalesTermRef")) or _ref_value(vendor.get("TermRef"))
                term = self._get(c, realm, "Term", term_id) if term_id else None
                if term is not None:
                    body["SalesTermRef"] = {"value": term["Id"], "name": term["Name"]}
                if not body.get("DueDate"):
                    body["DueDate"] = add_days(body["TxnDate"], int(term.get("DueDays", 0)) if term else 0)
                paid = self._applied_to(c, realm, "Bill", body["Id"])
                if paid - body["TotalAmt"] > 0.005:
                    raise faults.business("The bill total cannot be less than the payments already applied.",
                                          "TotalAmt")
                body["Balance"] = money(body["TotalAmt"] - paid)
                body["LinkedTxn"] = self._links_of(body.get("LinkedTxn"), "Bill")
            else:
                body["Balance"] = body["TotalAmt"]
        else:  # Purchase
            if body.get("PaymentType") not in ("Cash", "Check", "CreditCard"):
                raise faults.validation("2170", "Invalid Enumeration",
                                        f"Invalid Enumeration : {body.get('PaymentType')}", "PaymentType")
            body.setdefault("Credit", False) if body["PaymentType"] == "CreditCard" else None

    def _compute_bill_payment(self, c: sqlite3.Connection, realm: str, body: dict, old: dict | None) -> None:
        vendor = self._get(c, realm, "Vendor", _ref_value(body.get("VendorRef")))
        body["VendorRef"] = {"value": vendor["Id"], "name": vendor["DisplayName"]}
        pay_type = body.get("PayType")
        if pay_type not in ("Check", "CreditCard"):
            raise faults.validation("2170", "Invalid Enumeration", f"Invalid Enumeration : {pay_type}", "PayType")
        if pay_type == "Check":
            body["CheckPayment"] = dict(body.get("CheckPayment") or {})
            body["CheckPayment"].setdefault("BankAccountRef", {"value": str(chart.CHECKING), "name": "Checking"})
            body["CheckPayment"].setdefault("PrintStatus", "NotSet")
        else:
            cc = dict(body.get("CreditCardPayment") or {})
            if not _ref_value(cc.get("CCAccountRef")):
                raise faults.required("CreditCardPayment.CCAccountRef")
            body["CreditCardPayment"] = cc
        total = money(_num(body.get("TotalAmt"), "TotalAmt"))
        body["TotalAmt"] = total
        old_applied: dict[str, float] = {}
        for line in (old or {}).get("Line") or []:
            for lt in line.get("LinkedTxn") or []:
                old_applied[str(lt.get("TxnId"))] = old_applied.get(str(lt.get("TxnId")), 0.0) + float(line["Amount"])
        applied = 0.0
        lines = []
        for line in self._lines(body):
            amount = money(_num(line.get("Amount", 0), "Line.Amount"))
            out = {"Amount": amount, "LinkedTxn": []}
            for lt in line.get("LinkedTxn") or []:
                typ, tid = lt.get("TxnType"), str(lt.get("TxnId", ""))
                if typ not in ("Bill", "VendorCredit", "JournalEntry"):
                    raise faults.validation("2170", "Invalid Enumeration",
                                            f"Invalid Enumeration : {typ} cannot be linked to a bill payment",
                                            "Line.LinkedTxn.TxnType")
                doc = self._get(c, realm, typ, tid)
                if doc is None:
                    raise faults.invalid_reference("Line.LinkedTxn.TxnId", tid, typ)
                if typ == "Bill":
                    if _ref_value(doc.get("VendorRef")) != vendor["Id"]:
                        raise faults.business(f"Bill {tid} belongs to another vendor.", "Line.LinkedTxn")
                    available = float(doc.get("Balance", 0)) + old_applied.get(tid, 0.0)
                    if amount - available > 0.005:
                        raise faults.business(f"The amount applied ({amount:.2f}) to bill {tid} exceeds its open "
                                              f"balance ({available:.2f}).", "Line.Amount")
                    applied += amount
                out["LinkedTxn"].append({"TxnId": tid, "TxnType": typ})
            lines.append(out)
        if applied - total > 0.005:
            raise faults.business("The amount applied to bills is more than the payment amount.", "TotalAmt")
        body["Line"] = lines

    def _compute_deposit(self, c: sqlite3.Connection, realm: str, body: dict, old: dict | None) -> None:
        total = 0.0
        lines = []
        for n, line in enumerate(self._lines(body), start=1):
            line = dict(line)
            if line.get("LinkedTxn"):
                for lt in line["LinkedTxn"]:
                    typ, tid = lt.get("TxnType"), str(lt.get("TxnId", ""))
                    doc = self._get(c, realm, typ, tid) if typ in ("Payment", "SalesReceipt") else None
                    if doc is None:
                        raise faults.invalid_reference("Line.LinkedTxn.TxnId", tid, typ or "Payment")
                    if line.get("Amount") is None:
                        line["Amount"] = doc.get("TotalAmt", 0)
            else:
                line.setdefault("DetailType", "DepositLineDetail")
                if line.get("Amount") is None:
                    raise faults.required("Line.Amount")
            line["Amount"] = money(_num(line["Amount"], "Line.Amount"))
            line["Id"] = str(n)
            line.setdefault("LineNum", n)
            total += line["Amount"]
            lines.append(line)
        body["Line"] = lines
        body["TotalAmt"] = money(total)

    def _compute_journal(self, c: sqlite3.Connection, realm: str, body: dict) -> None:
        debit = credit = 0.0
        for n, line in enumerate(self._lines(body)):
            detail = line.get("JournalEntryLineDetail") or {}
            posting = detail.get("PostingType")
            if posting not in ("Debit", "Credit"):
                raise faults.required("Line.JournalEntryLineDetail.PostingType")
            amount = money(_num(line.get("Amount"), "Line.Amount"))
            if amount < 0:
                raise faults.business("Journal entry line amounts must be positive.", "Line.Amount")
            line["Amount"] = amount
            line["Id"] = str(n)
            account = self._get(c, realm, "Account", _ref_value(detail.get("AccountRef")))
            entity_type = get_path(detail, "Entity.Type")
            if account and account.get("AccountType") == "Accounts Receivable" and entity_type != "Customer":
                raise faults.business("When you use Accounts Receivable, you must choose a customer in the "
                                      "Name field.", "Line.JournalEntryLineDetail.Entity")
            if account and account.get("AccountType") == "Accounts Payable" and entity_type != "Vendor":
                raise faults.business("When you use Accounts Payable, you must choose a vendor in the Name "
                                      "field.", "Line.JournalEntryLineDetail.Entity")
            if posting == "Debit":
                debit += amount
            else:
                credit += amount
        if abs(debit - credit) > 0.005:
            raise faults.business(
                f"Transaction must be balanced: debits ({debit:.2f}) do not equal credits ({credit:.2f}).")
        body["TotalAmt"] = money(debit)
        body.setdefault("Adjustment", False)
        body.setdefault("TxnTaxDetail", {})

    @staticmethod
    def _compute_time(body: dict) -> None:
        name_of = body.get("NameOf")
        if name_of not in ("Employee", "Vendor"):
            raise faults.validation("2170", "Invalid Enumeration", f"Invalid Enumeration : {name_of}", "NameOf")
        ref = "EmployeeRef" if name_of == "Employee" else "VendorRef"
        if not _ref_value(body.get(ref)):
            raise faults.required(ref)
        if body.get("Hours") is None and not body.get("StartTime"):
            raise faults.required("Hours")
        body.setdefault("Hours", 0)
        body.setdefault("Minutes", 0)
        body.setdefault("BillableStatus", "NotBillable")
        body.setdefault("Taxable", False)

    # ------------------------------------------------------------------ side effects
    def _apply_side_effects(self, c: sqlite3.Connection, realm: str, ent: EntityDef, old: dict | None,
                            new: dict | None, ts: float) -> None:
        """Keep related objects true: party balances, document links, stock, estimate status."""
        if not ent.is_transaction:
            return
        self._party_delta(c, realm, ent, old, -1, ts)
        self._party_delta(c, realm, ent, new, +1, ts)
        self._stock_delta(c, realm, ent, old, new, ts)
        if ent.name == "Payment":
            self._relink(c, realm, "Payment", old, new, ts, targets=("Invoice", "CreditMemo"), link_type="Payment")
        elif ent.name == "BillPayment":
            link = "BillPaymentCheck" if (new or old or {}).get("PayType") == "Check" else "BillPaymentCreditCard"
            self._relink(c, realm, "BillPayment", old, new, ts, targets=("Bill",), link_type=link)
        elif ent.name == "Deposit":
            self._relink_header(c, realm, old, new, ts)
        elif ent.name == "Invoice":
            self._estimate_links(c, realm, old, new, ts)

    def _party_delta(self, c: sqlite3.Connection, realm: str, ent: EntityDef, body: dict | None, sign: int,
                     ts: float) -> None:
        if body is None:
            return
        for party, party_id, amount in _party_contributions(ent.name, body, lambda i: self._get(c, realm, "Account", i)):
            if abs(amount) < 1e-9:
                continue
            self._adjust_balance(c, realm, party, party_id, sign * amount, ts)

    def _adjust_balance(self, c: sqlite3.Connection, realm: str, party: str, party_id: str, delta: float,
                        ts: float) -> None:
        node = self._get(c, realm, party, party_id)
        if node is None:
            return
        node["Balance"] = money(float(node.get("Balance", 0)) + delta)
        if party == "Customer":
            node["BalanceWithJobs"] = money(float(node.get("BalanceWithJobs", 0)) + delta)
        # QBO moves LastUpdatedTime but not SyncToken when only the balance changes (§7.2)
        self._touch(c, realm, party, node, ts, bump_token=False)
        if party == "Customer":
            parent = _ref_value(node.get("ParentRef"))
            seen = 0
            while parent and seen < 5:
                p = self._get(c, realm, "Customer", parent)
                if p is None:
                    break
                p["BalanceWithJobs"] = money(float(p.get("BalanceWithJobs", 0)) + delta)
                self._touch(c, realm, "Customer", p, ts, bump_token=False)
                parent = _ref_value(p.get("ParentRef"))
                seen += 1

    def _stock_delta(self, c: sqlite3.Connection, realm: str, ent: EntityDef, old: dict | None, new: dict | None,
                     ts: float) -> None:
        sign = STOCK_SIGN.get(ent.name)
        if sign is None:
            return
        qty: dict[str, float] = {}
        for body, factor in ((old, -1), (new, 1)):
            for item_id, q in _item_quantities(body):
                qty[item_id] = qty.get(item_id, 0.0) + factor * sign * q
        for item_id, delta in qty.items():
            if abs(delta) < 1e-9:
                continue
            item = self._get(c, realm, "Item", item_id)
            if item is None or not item.get("TrackQtyOnHand"):
                continue
            item["QtyOnHand"] = round(float(item.get("QtyOnHand", 0)) + delta, 4)
            self._touch(c, realm, "Item", item, ts, bump_token=True)

    def _relink(self, c: sqlite3.Connection, realm: str, entity: str, old: dict | None, new: dict | None, ts: float,
                *, targets: tuple[str, ...], link_type: str) -> None:
        """Payments and bill payments: LinkedTxn and Balance on the documents they pay (§7.8, §7.12)."""
        pay_id = (new or old or {}).get("Id")

        def docs(body: dict | None) -> set[tuple[str, str]]:
            out = set()
            for line in (body or {}).get("Line") or []:
                for lt in line.get("LinkedTxn") or []:
                    if lt.get("TxnType") in targets:
                        out.add((lt["TxnType"], str(lt["TxnId"])))
            return out

        before, after = docs(old), docs(new)
        for typ, tid in sorted(before | after):
            doc = self._get(c, realm, typ, tid)
            if doc is None:
                continue
            links = [lt for lt in doc.get("LinkedTxn") or []
                     if not (lt.get("TxnType") == link_type and str(lt.get("TxnId")) == str(pay_id))]
            if (typ, tid) in after:
                links.append({"TxnId": str(pay_id), "TxnType": link_type})
            applied = 0.0
            # sum what every linked payment applies, counting this payment from its new body
            for lt in links:
                if lt.get("TxnType") != link_type:
                    continue
                pay = new if str(lt["TxnId"]) == str(pay_id) else self._get(c, realm, entity, lt["TxnId"])
                for line in (pay or {}).get("Line") or []:
                    for x in line.get("LinkedTxn") or []:
                        if x.get("TxnType") == typ and str(x.get("TxnId")) == tid:
                            applied += float(line.get("Amount", 0))
            doc["LinkedTxn"] = links
            total = float(doc.get("TotalAmt", 0))
            doc["Balance"] = money(total - applied)
            if typ == "CreditMemo":
                doc["RemainingCredit"] = doc["Balance"]
            self._touch(c, realm, typ, doc, ts, bump_token=True)
            self._change(c, realm, typ, tid, "Update", ts)

    def _relink_header(self, c: sqlite3.Connection, realm: str, old: dict | None, new: dict | None, ts: float) -> None:
        """Deposits mark the payments and sales receipts they bank (6540 guards them afterwards)."""
        dep_id = (new or old or {}).get("Id")

        def linked(body: dict | None) -> set[tuple[str, str]]:
            return {(lt["TxnType"], str(lt["TxnId"])) for line in (body or {}).get("Line") or []
                    for lt in line.get("LinkedTxn") or [] if lt.get("TxnType") in ("Payment", "SalesReceipt")}

        before, after = linked(old), linked(new)
        for typ, tid in sorted(before ^ after):
            doc = self._get(c, realm, typ, tid)
            if doc is None:
                continue
            links = [lt for lt in doc.get("LinkedTxn") or []
                     if not (lt.get("TxnType") == "Deposit" and str(lt.get("TxnId")) == str(dep_id))]
            if (typ, tid) in after:
                links.append({"TxnId": str(dep_id), "TxnType": "Deposit"})
            doc["LinkedTxn"] = links
            self._touch(c, realm, typ, doc, ts, bump_token=True)

    def _estimate_links(self, c: sqlite3.Connection, realm: str, old: dict | None, new: dict | None, ts: float) -> None:
        """An invoice made from an estimate links both ways and closes the estimate (§7.9)."""
        def estimates(body: dict | None) -> set[str]:
            return {str(lt["TxnId"]) for lt in (body or {}).get("LinkedTxn") or [] if lt.get("TxnType") == "Estimate"}

        inv_id = (new or old or {}).get("Id")
        before, after = estimates(old), estimates(new)
        for est_id in sorted(before ^ after):
            est = self._get(c, realm, "Estimate", est_id)
            if est is None:
                raise faults.invalid_reference("LinkedTxn.TxnId", est_id, "Estimate")
            links = [lt for lt in est.get("LinkedTxn") or []
                     if not (lt.get("TxnType") == "Invoice" and str(lt.get("TxnId")) == str(inv_id))]
            if est_id in after:
                links.append({"TxnId": str(inv_id), "TxnType": "Invoice"})
                est["TxnStatus"] = "Closed"
            elif not any(lt.get("TxnType") == "Invoice" for lt in links):
                est["TxnStatus"] = "Pending"
            est["LinkedTxn"] = links
            self._touch(c, realm, "Estimate", est, ts, bump_token=True)
            self._change(c, realm, "Estimate", est_id, "Update", ts)

    def _guard_linked(self, c: sqlite3.Connection, realm: str, ent: EntityDef, body: dict, *, action: str) -> None:
        """Business rules that stop a delete or void (6000, 6540)."""
        links = body.get("LinkedTxn") or []
        if ent.name in ("Invoice", "CreditMemo") and any(lt.get("TxnType") == "Payment" for lt in links):
            raise faults.business(
                f"This {ent.name.lower()} has payments applied to it and cannot be {action}. Delete or unapply "
                "the payments first.")
        if ent.name == "Bill" and any(lt.get("TxnType", "").startswith("BillPayment") for lt in links):
            raise faults.business(f"This bill has payments applied to it and cannot be {action}. Delete the bill "
                                  "payments first.")
        if ent.name in ("Payment", "SalesReceipt") and any(lt.get("TxnType") == "Deposit" for lt in links):
            raise faults.validation(
                "6540", "Deposited Transaction cannot be changed",
                f"This transaction has been deposited and cannot be {action}. Remove it from the deposit first.")

    def _unlink_all(self, c: sqlite3.Connection, realm: str, ent: EntityDef, old: dict, ts: float) -> None:
        if ent.name == "Payment":
            self._relink(c, realm, "Payment", old, None, ts, targets=("Invoice", "CreditMemo"), link_type="Payment")
        elif ent.name == "BillPayment":
            link = "BillPaymentCheck" if old.get("PayType") == "Check" else "BillPaymentCreditCard"
            self._relink(c, realm, "BillPayment", old, None, ts, targets=("Bill",), link_type=link)
        elif ent.name == "Deposit":
            self._relink_header(c, realm, old, None, ts)
        elif ent.name == "Invoice":
            self._estimate_links(c, realm, old, None, ts)

    @staticmethod
    def _zero_amounts(ent: EntityDef, body: dict) -> None:
        for line in body.get("Line") or []:
            line["Amount"] = 0
            for key, detail in list(line.items()):
                if key.endswith("Detail") and isinstance(detail, dict):
                    if "Qty" in detail:
                        detail["Qty"] = 0
                    if "UnitPrice" in detail:
                        detail["UnitPrice"] = 0
        if ent.name in ("Payment", "BillPayment"):
            body["Line"] = []
        body["TotalAmt"] = 0
        for key in ("Balance", "UnappliedAmt", "RemainingCredit"):
            if key in body:
                body[key] = 0
        if "TxnTaxDetail" in body:
            body["TxnTaxDetail"] = {"TotalTax": 0}

    # ------------------------------------------------------------------ bulk helpers
    def _ref_paths_to(self, entity: str) -> dict[str, list[str]]:
        paths: dict[str, list[str]] = {}
        for e in registry.ENTITIES:
            for ref in e.refs:
                targets = ref.target if isinstance(ref.target, tuple) else (ref.target,)
                if entity in targets:
                    paths.setdefault(e.name, []).append(ref.path)
            for refs in e.line_refs.values():
                for ref in refs:
                    targets = ref.target if isinstance(ref.target, tuple) else (ref.target,)
                    if entity in targets:
                        paths.setdefault(e.name, []).append("Line[]." + ref.path)
        return paths

    def _recompute_party_balances(self, c: sqlite3.Connection, realm: str, party: str) -> None:
        """Recompute every customer's (or vendor's) balance from the ledger's A/R (A/P) postings."""
        column = "customer_id" if party == "Customer" else "vendor_id"
        control = "Accounts Receivable" if party == "Customer" else "Accounts Payable"
        control_ids = [int(loads(r[0])["Id"]) for r in c.execute(
            "SELECT body FROM objects WHERE realm=? AND entity='Account' AND status IS NULL", (realm,))
            if loads(r[0]).get("AccountType") == control]
        sign = 1 if party == "Customer" else -1
        sums: dict[int, float] = {}
        if control_ids:
            q = ",".join("?" * len(control_ids))
            sums = {row[0]: row[1] for row in c.execute(
                f"SELECT {column}, SUM(amount) FROM postings WHERE realm=? AND account_id IN ({q}) "
                f"AND {column} IS NOT NULL GROUP BY {column}", (realm, *control_ids))}
        nodes = {r[0]: loads(r[1]) for r in c.execute(
            "SELECT id, body FROM objects WHERE realm=? AND entity=? AND status IS NULL", (realm, party))}
        for node_id, node in nodes.items():
            node["Balance"] = money(sign * sums.get(node_id, 0.0))
        if party == "Customer":
            with_jobs = {i: n["Balance"] for i, n in nodes.items()}
            for node in nodes.values():
                parent = _ref_value(node.get("ParentRef"))
                hops = 0
                while parent and int(parent) in nodes and hops < 5:
                    with_jobs[int(parent)] += node["Balance"]
                    parent = _ref_value(nodes[int(parent)].get("ParentRef"))
                    hops += 1
            for node_id, node in nodes.items():
                node["BalanceWithJobs"] = money(with_jobs[node_id])
        c.executemany("UPDATE objects SET body=? WHERE realm=? AND entity=? AND id=?",
                      [(dumps(n), realm, party, i) for i, n in nodes.items()])
        self.db.version += 1

    def recompute_balances(self, realm: str) -> None:
        """Derive every balance (customers, vendors, accounts) from the ledger (after bulk seeding)."""
        with self.db.tx() as c:
            self._recompute_party_balances(c, realm, "Customer")
            self._recompute_party_balances(c, realm, "Vendor")
            self._refresh_accounts(c, realm)

    def insert_prepared(self, realm: str, entity: str, bodies: Iterable[dict], *, ts: float | None = None,
                        record_changes: bool = False) -> int:
        """Store bodies that already carry every computed field (bulk seeding), with postings.

        The caller is responsible for Ids, links and balances (call :meth:`recompute_balances`
        afterwards). Returns the number of rows written.
        """
        from qb_pipelines.emulator import ledger

        ent = registry.get(entity)
        ts = self.emu.clock.timestamp() if ts is None else ts
        n = 0
        with self.db.tx() as c:
            lookup_cache: dict[tuple[str, str], dict | None] = {}

            def lookup(e: str, i: str) -> dict | None:
                key = (e, str(i))
                if key not in lookup_cache:
                    lookup_cache[key] = self._get(c, realm, e, i)
                return lookup_cache[key]

            obj_rows = []
            post_rows = []
            for body in bodies:
                created = body.pop("_created_at", ts)
                updated = body.pop("_updated_at", created)
                obj_rows.append((realm, ent.name, int(body["Id"]), 0 if body.get("Active") is False else 1, None,
                                 created, updated, dumps(body)))
                if ent.is_transaction and not str(body.get("PrivateNote", "")).startswith("Voided"):
                    for k, p in enumerate(ledger.postings(ent.name, body, lookup)):
                        post_rows.append((realm, ent.name, int(body["Id"]), k, body["TxnDate"], p.account_id,
                                          p.amount, p.customer_id, p.vendor_id))
                if record_changes:
                    self._change(c, realm, ent.name, body["Id"], "Create", updated)
                n += 1
            c.executemany(
                "INSERT OR REPLACE INTO objects(realm, entity, id, active, status, created_at, updated_at, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", obj_rows)
            c.executemany(
                "INSERT OR REPLACE INTO postings(realm, entity, txn_id, seq, txn_date, account_id, amount,"
                " customer_id, vendor_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", post_rows)
            self.db.version += 1
        return n


def _classification(account_type: str) -> str:
    return {
        "Bank": "Asset", "Accounts Receivable": "Asset", "Other Current Asset": "Asset", "Fixed Asset": "Asset",
        "Other Asset": "Asset", "Accounts Payable": "Liability", "Credit Card": "Liability",
        "Other Current Liability": "Liability", "Long Term Liability": "Liability", "Equity": "Equity",
        "Income": "Revenue", "Other Income": "Revenue", "Cost of Goods Sold": "Expense", "Expense": "Expense",
        "Other Expense": "Expense",
    }.get(account_type, "Expense")


def _check_date(value: Any, element: str) -> None:
    from datetime import date

    try:
        date.fromisoformat(str(value)[:10])
    except ValueError:
        raise faults.validation("2080", "Invalid date format",
                                f"Invalid date format for {element}: {value!r}. Use YYYY-MM-DD.", element) from None


def _line_ex(txn_id: str, open_balance: float, doc_number: str | None) -> dict:
    """The JAXB ``LineEx`` structure QBO emits on payment lines (clients must ignore it, §7.10)."""
    def nv(name: str, value: str) -> dict:
        return {"name": "{http://schema.intuit.com/finance/v3}NameValue",
                "declaredType": "com.intuit.schema.finance.v3.NameValue",
                "scope": "javax.xml.bind.JAXBElement$GlobalScope",
                "value": {"Name": name, "Value": value}, "nil": False, "globalScope": True,
                "typeSubstituted": False}
    items = [nv("txnId", str(txn_id)), nv("txnOpenBalance", f"{open_balance:.2f}")]
    if doc_number:
        items.append(nv("txnReferenceNumber", str(doc_number)))
    return {"any": items}


def _party_contributions(entity: str, body: dict, account: Any) -> list[tuple[str, str, float]]:
    """How a transaction moves customer (A/R) and vendor (A/P) balances."""
    if str(body.get("PrivateNote", "")).startswith("Voided") or body.get("status") == "Deleted":
        return []
    total = float(body.get("TotalAmt", 0) or 0)
    cust = _ref_value(body.get("CustomerRef"))
    vend = _ref_value(body.get("VendorRef"))
    if entity == "Invoice" and cust:
        return [("Customer", cust, total)]
    if entity in ("CreditMemo", "Payment") and cust:
        return [("Customer", cust, -total)]
    if entity == "Bill" and vend:
        return [("Vendor", vend, total)]
    if entity in ("BillPayment", "VendorCredit") and vend:
        return [("Vendor", vend, -total)]
    if entity == "JournalEntry":
        out = []
        for line in body.get("Line") or []:
            d = line.get("JournalEntryLineDetail") or {}
            acc = account(_ref_value(d.get("AccountRef")))
            party_type = get_path(d, "Entity.Type")
            party_id = _ref_value(get_path(d, "Entity.EntityRef"))
            if not acc or not party_id:
                continue
            amt = float(line.get("Amount", 0)) * (1 if d.get("PostingType") == "Debit" else -1)
            if acc.get("AccountType") == "Accounts Receivable" and party_type == "Customer":
                out.append(("Customer", party_id, amt))
            elif acc.get("AccountType") == "Accounts Payable" and party_type == "Vendor":
                out.append(("Vendor", party_id, -amt))
        return out
    return []


def _item_quantities(body: dict | None) -> list[tuple[str, float]]:
    out = []
    if not body or str(body.get("PrivateNote", "")).startswith("Voided"):
        return out
    for line in body.get("Line") or []:
        for key in ("SalesItemLineDetail", "ItemBasedExpenseLineDetail"):
            d = line.get(key)
            if isinstance(d, dict) and _ref_value(d.get("ItemRef")):
                out.append((_ref_value(d["ItemRef"]), float(d.get("Qty", 1) or 0)))
    return out


def _replace_ref(body: dict, path: str, old_id: str, winner: dict) -> bool:
    name = winner.get("DisplayName") or winner.get("FullyQualifiedName") or winner.get("Name")
    if path.startswith("Line[]."):
        changed = False
        for line in body.get("Line") or []:
            changed |= _replace_ref(line, path[len("Line[]."):], old_id, winner)
        return changed
    ref = get_path(body, path)
    if isinstance(ref, dict) and str(ref.get("value")) == str(old_id):
        ref["value"] = winner["Id"]
        ref["name"] = name
        return True
    return False
