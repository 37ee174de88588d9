"""The ``Engine``: the operations the API, the control routes, the seeder and tests call.

Every write runs in one ``db.tx()`` and, in that transaction: validates, computes the server-side
fields, applies the side effects on related objects, stores the body, replaces the transaction's
ledger postings, refreshes account balances and appends to the change log (which feeds webhooks).
The steps live in the sibling modules; this one orchestrates them per operation.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from qb_pipelines.emulator import faults, ledger
from qb_pipelines.emulator.db import dumps
from qb_pipelines.emulator.engine import balances, effects, names, rates, records, templates, transactions, validation
from qb_pipelines.emulator.engine.companies import bootstrap
from qb_pipelines.emulator.engine.merge import merge
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.values import SERVER_FIELDS, bump, clean, get_path, is_voided
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef, Kind

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator

#: Read-only and identity fields that survive a full update (a client never sends them back).
_KEPT_ON_FULL_UPDATE = ("DocNumber", "Balance", "BalanceWithJobs", "CurrentBalance",
                        "CurrentBalanceWithSubAccounts", "QtyOnHand", "LinkedTxn")
#: What a company's reset clears.
_COMPANY_TABLES = ("objects", "sequences", "postings", "requestids", "changes", "sends")
_ADDRESS_FIELDS = ("BillAddr", "ShipAddr", "CompanyAddr", "LegalAddr", "CustomerCommunicationAddr")


class Engine:
    """Entity operations on one emulator's companies."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.db = emu.db

    @contextmanager
    def _write(self, realm: str, *, check: bool = True) -> Iterator[Tx]:
        """One atomic write on one company (3100 when the company does not exist)."""
        with self.db.tx() as c:
            tx = Tx(self.emu, c, realm)
            if check:
                tx.require_company()
            yield tx

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
        with self._write(realm, check=False) as tx:
            if tx.conn.execute("SELECT 1 FROM companies WHERE realm=?", (realm,)).fetchone():
                raise faults.business(f"A company with realmId {realm} already exists.")
            tx.conn.execute("INSERT INTO companies(realm, name, created_at) VALUES (?, ?, ?)", (realm, name, tx.ts))
            bootstrap(tx, name, email)
        grant = getattr(self.emu.oauth, "grant_user_access", None)
        if grant is not None:
            grant(None, realm)
        return realm

    def reset_company(self, realm: str) -> None:
        """Drop every object of a company and start it again with the starting lists."""
        with self._write(realm, check=False) as tx:
            row = tx.conn.execute("SELECT name FROM companies WHERE realm=?", (realm,)).fetchone()
            if not row:
                raise KeyError(realm)
            for table in _COMPANY_TABLES:
                tx.conn.execute(f"DELETE FROM {table} WHERE realm=?", (realm,))
            bootstrap(tx, row[0], None)
            self.db.version += 1

    # ------------------------------------------------------------------ reads
    def lookup(self, realm: str, entity: str, obj_id: object) -> dict | None:
        """A live object's body, or None (no company check)."""
        with self.db.read() as c:
            return Tx(self.emu, c, realm).get(entity, obj_id)

    def read(self, realm: str, entity: str, obj_id: object) -> dict:
        """GET /{entity}/{id}: inactive objects are readable, deleted ones are 610."""
        ent = registry.get(entity)
        if ent.kind is Kind.KEYED:
            raise faults.unsupported(f"Read by Id of {ent.name} (it has no Id: use GET /{ent.path}?"
                                     "sourcecurrencycode=...&asofdate=... or a query)")
        with self.db.read() as c:
            tx = Tx(self.emu, c, realm)
            tx.require_company()
            body = tx.get(ent.name, obj_id)
        if body is None:
            raise faults.not_found()
        return body

    def exchange_rate(self, realm: str, source: str | None, as_of: str | None) -> dict:
        """GET /exchangerate?sourcecurrencycode=&asofdate=: the rate in effect on that date."""
        ent = next(e for e in registry.ENTITIES if e.kind is Kind.KEYED)
        with self.db.read() as c:
            tx = Tx(self.emu, c, realm)
            tx.require_company()
            return rates.rate_as_of(tx, ent, source, as_of)

    def sends(self, realm: str) -> list[dict]:
        """Every document sent by e-mail (never mailed), in order."""
        with self.db.read() as c:
            rows = c.execute("SELECT entity, entity_id, send_to, sent_at FROM sends WHERE realm=? ORDER BY rowid",
                             (realm,)).fetchall()
        return [{"entity": r[0], "id": str(r[1]), "sendTo": r[2], "sentAt": r[3]} for r in rows]

    # ------------------------------------------------------------------ writes
    def create(self, realm: str, entity: str, body: dict, *, as_user: bool = False) -> dict:
        """POST /{entity} without Id: validate, compute, store, post, notify.

        ``as_user``: a QuickBooks user in the product, who may create what the API refuses
        (a budget); the control API's ``act`` and the seed pass it.
        """
        ent = registry.get(entity)
        if (not ent.writable and not as_user) or ent.kind is Kind.SINGLETON:
            raise faults.unsupported(f"Create is not supported for {ent.name}")
        if ent.kind is Kind.KEYED:
            with self._write(realm) as tx:
                return rates.set_rate(tx, ent, clean(copy.deepcopy(body)))
        if ent.wraps:
            with self._write(realm) as tx:
                return templates.create(tx, ent, body)
        body = clean(copy.deepcopy(body))
        for f in SERVER_FIELDS | {"Id", "SyncToken"}:
            body.pop(f, None)
        with self._write(realm) as tx:
            # attachments are numbered in a space of their own (QBO's 19-digit attachment Ids)
            body["Id"] = str(tx.next_value(ent.name, start=records.FIRST_ID) if ent.kind is Kind.RECORD
                             else tx.next_id(ent))
            body["SyncToken"] = "0"
            out = self._store(tx, ent, body, old=None, created=int(tx.ts))
            tx.change(ent.name, out["Id"], "Create")
            return out

    def update(self, realm: str, entity: str, body: dict, *, operation: str = "Update", as_user: bool = False) -> dict:
        """POST /{entity} with Id and SyncToken: sparse or full update (5010 when stale).

        An exchange rate has no Id: its POST sets the rate of a currency and date (created or
        replaced); a recurring transaction is updated through its wrapped template.
        """
        ent = registry.get(entity)
        if not ent.writable and not as_user and ent.kind is not Kind.SINGLETON:
            raise faults.unsupported(f"Update is not supported for {ent.name}")
        if ent.kind is Kind.KEYED:
            with self._write(realm) as tx:
                return rates.set_rate(tx, ent, clean(copy.deepcopy(body)))
        if ent.wraps:
            with self._write(realm) as tx:
                return templates.update(tx, ent, body)
        body = clean(copy.deepcopy(body))
        sparse = body.get("sparse") in (True, "true", "True")
        if body.get("Id") in (None, ""):
            raise faults.required("Id")
        with self._write(realm) as tx:
            old, created = tx.current(ent, body)
            for f in SERVER_FIELDS | {"SyncToken"}:
                body.pop(f, None)
            if sparse:
                new = copy.deepcopy(old)
                new.update(body)
            else:
                new = body
                for keep in _KEPT_ON_FULL_UPDATE:
                    if keep in old and keep not in new:
                        new[keep] = old[keep]
            new["Id"] = old["Id"]
            new["SyncToken"] = bump(old["SyncToken"])
            if ent.is_transaction and is_voided(old) and operation == "Update":
                raise faults.business("A voided transaction cannot be edited.")
            if ent.kind is Kind.SINGLETON:
                return self._update_singleton(tx, ent, old, new, created, operation)
            if ent.is_name_list:
                operation = names.activation_change(tx, ent, old, new) or operation
            out = self._store(tx, ent, new, old=old, created=created)
            tx.change(ent.name, out["Id"], operation)
            return out

    def _update_singleton(self, tx: Tx, ent: EntityDef, old: dict, new: dict, created: float,
                          operation: str) -> dict:
        """CompanyInfo and Preferences: stored as sent; CompanyInfo renames the company."""
        new["MetaData"] = {"CreateTime": old["MetaData"]["CreateTime"], "LastUpdatedTime": tx.stamp()}
        new["domain"], new["sparse"] = "QBO", False
        tx.put(ent, new, created=created)
        if ent.name == "CompanyInfo":
            tx.conn.execute("UPDATE companies SET name=? WHERE realm=?",
                            (new.get("CompanyName", old["CompanyName"]), tx.realm))
        tx.change(ent.name, new["Id"], operation)
        return new

    def delete(self, realm: str, entity: str, body: dict) -> dict:
        """POST /{entity}?operation=delete: transactions only (name lists are inactivated)."""
        ent = registry.get(entity)
        if not ent.deletable:
            raise faults.unsupported(f"Delete is not supported for {ent.name}. Make it inactive instead "
                                     "(sparse update with Active false)")
        body = clean(body)
        if ent.wraps:
            with self._write(realm) as tx:
                return templates.delete(tx, ent, body)
        with self._write(realm) as tx:
            old, _created = tx.current(ent, body)
            effects.guard_linked(ent, old, action="deleted")
            effects.apply_side_effects(tx, ent, old, None)  # also takes it out of what it links
            balances.unpost(tx, ent, old["Id"])
            tx.tombstone(ent, old["Id"])
            tx.change(ent.name, old["Id"], "Delete")
            balances.refresh_accounts(tx)
            return {"domain": "QBO", "status": "Deleted", "Id": old["Id"]}

    def void(self, realm: str, entity: str, body: dict) -> dict:
        """Void: the object stays, amounts become zero, PrivateNote starts with "Voided" (§4.5)."""
        ent = registry.get(entity)
        if ent.void is registry.Void.NONE:
            raise faults.unsupported(f"Void is not supported for {ent.name}")
        body = clean(body)
        with self._write(realm) as tx:
            old, created = tx.current(ent, body)
            if is_voided(old):
                return old
            effects.guard_linked(ent, old, action="voided")
            new = copy.deepcopy(old)
            new["SyncToken"] = bump(old["SyncToken"])
            note = old.get("PrivateNote")
            new["PrivateNote"] = f"Voided - {note}" if note else "Voided"
            effects.zero_amounts(ent, new)
            out = self._store(tx, ent, new, old=old, created=created, voiding=True)
            tx.change(ent.name, out["Id"], "Void")
            return out

    def merge(self, realm: str, entity: str, from_id: str, into_id: str) -> dict:
        """Merge one name-list record into another (as a QBO user can): the loser is deleted."""
        ent = registry.get(entity)
        if not ent.is_name_list:
            raise faults.unsupported(f"Merge is not supported for {ent.name}")
        with self._write(realm) as tx:
            return merge(tx, ent, from_id, into_id)

    def send(self, realm: str, entity: str, obj_id: str, send_to: str | None) -> dict:
        """POST /{entity}/{id}/send: recorded (never mailed); EmailStatus becomes EmailSent."""
        ent = registry.get(entity)
        if not ent.pdf:
            raise faults.unsupported(f"Send is not supported for {ent.name}")
        with self._write(realm) as tx:
            body = tx.get(ent.name, obj_id)
            if body is None:
                raise faults.not_found()
            # a purchase order goes to its vendor's POEmail, a sales form to the customer's BillEmail
            email = "POEmail" if ent.party == "Vendor" else "BillEmail"
            address = send_to or get_path(body, f"{email}.Address")
            if not address:
                raise faults.validation("2050", "Email Address is missing",
                                        f"Email address is required to send. Supply sendTo or {email}.", email)
            if send_to:
                body[email] = {"Address": send_to}
            body["EmailStatus"] = "EmailSent"
            body["DeliveryInfo"] = {"DeliveryType": "Email", "DeliveryTime": tx.stamp()}
            tx.touch(ent.name, body, bump_token=True)
            tx.conn.execute("INSERT INTO sends(realm, entity, entity_id, send_to, sent_at) VALUES (?, ?, ?, ?, ?)",
                            (realm, ent.name, int(body["Id"]), address, tx.ts))
            tx.change(ent.name, body["Id"], "Emailed")
            return body

    # ------------------------------------------------------------------ the write pipeline
    def _store(self, tx: Tx, ent: EntityDef, body: dict, *, old: dict | None, created: float,
               voiding: bool = False) -> dict:
        """Validate and compute (not for a void), stamp, apply side effects, store, post."""
        if not voiding:
            validation.validate(tx, ent, body)
            if ent.is_name_list:
                names.compute_name_list(tx, ent, body, old)
            elif ent.kind is Kind.RECORD:
                records.compute_record(tx, ent, body, old)
            else:
                transactions.compute_transaction(tx, ent, body, old)
            self._number_addresses(tx, body, old)
        body["domain"] = "QBO"
        body["sparse"] = False
        body["MetaData"] = {
            "CreateTime": old["MetaData"]["CreateTime"] if old else tx.stamp(created),
            "LastUpdatedTime": tx.stamp(),
        }
        effects.apply_side_effects(tx, ent, old, body)
        tx.put(ent, body, created=int(created))
        if ent.is_transaction:
            balances.move_accounts(tx, balances.post(tx, ent, body))
        elif ent.name == "Account":
            balances.rederive_later(tx, [body["Id"]])
        return body

    @staticmethod
    def _number_addresses(tx: Tx, body: dict, old: dict | None) -> None:
        """Every stored physical address has its own Id (one sequence per company, §7.2)."""
        for key in _ADDRESS_FIELDS:
            addr = body.get(key)
            if not isinstance(addr, dict) or not addr or addr.get("Id"):
                continue
            previous = (old or {}).get(key) or {}
            addr["Id"] = previous.get("Id") or str(tx.next_value("addr", start=100))

    # ------------------------------------------------------------------ bulk
    def recompute_balances(self, realm: str) -> None:
        """Derive every balance (customers, vendors, accounts) from the ledger (after bulk seeding)."""
        with self._write(realm, check=False) as tx:
            balances.recompute_all(tx)

    def insert_prepared(self, realm: str, entity: str, bodies: Iterable[dict], *, ts: float | None = None,
                        record_changes: bool = False) -> int:
        """Store bodies that already carry every computed field (bulk seeding), with postings.

        The caller is responsible for Ids, links and balances (call :meth:`recompute_balances`
        afterwards). Returns the number of rows written.
        """
        ent = registry.get(entity)
        with self._write(realm, check=False) as tx:
            if ts is not None:
                tx.ts = ts
            cache: dict[tuple[str, str], dict | None] = {}

            def lookup(e: str, i: str) -> dict | None:
                key = (e, str(i))
                if key not in cache:
                    cache[key] = tx.get(e, i)
                return cache[key]

            obj_rows = []
            post_rows = []
            for body in bodies:
                created = body.pop("_created_at", tx.ts)
                updated = body.pop("_updated_at", created)
                obj_rows.append((realm, ent.name, int(body["Id"]), 0 if body.get("Active") is False else 1, None,
                                 created, updated, dumps(body)))
                if ent.is_transaction and not is_voided(body):
                    for k, p in enumerate(ledger.postings(ent.name, body, lookup)):
                        post_rows.append((realm, ent.name, int(body["Id"]), k, body["TxnDate"], p.account_id,
                                          p.amount, p.customer_id, p.vendor_id))
                if record_changes:
                    tx.change(ent.name, body["Id"], "Create", ts=updated)
            tx.conn.executemany(
                "INSERT OR REPLACE INTO objects(realm, entity, id, active, status, created_at, updated_at, body)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)", obj_rows)
            tx.conn.executemany(
                "INSERT OR REPLACE INTO postings(realm, entity, txn_id, seq, txn_date, account_id, amount,"
                " customer_id, vendor_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", post_rows)
            self.db.version += 1
            return len(obj_rows)
