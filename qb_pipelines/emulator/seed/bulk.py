"""Bulk seeding: a company of any size, its bodies computed as the engine would, stored in batches.

Memory stays flat: one batch of ``batch_size`` invoices (and their payments) at a time; only the
customer and item lists stay in memory. Balances are derived from the ledger at the end.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

from qb_pipelines.emulator import chart
from qb_pipelines.emulator.clock import qbo_timestamp
from qb_pipelines.emulator.engine.values import money
from qb_pipelines.emulator.seed.bodies import (
    CompanyLists,
    build_customer,
    build_invoice,
    build_item,
    build_payment,
    count_addresses,
    stamp,
)
from qb_pipelines.emulator.seed.material import (
    BULK_ITEM_NAMES,
    BUSINESS_KINDS,
    CITIES,
    DAY,
    FIRST_NAMES,
    ITEM_GRADES,
    LAST_NAMES,
    STREETS,
    local_date,
    plain,
)

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator


@dataclass
class Chunk:
    """One insert of the bulk path: bodies of one entity, with the client inputs when recorded."""

    entity: str
    bodies: list[dict]
    inputs: list[dict] | None = None  # what a client would have POSTed (None for rewrites)


class BulkSeeder:
    """Plans and writes a large company in batches (see :func:`seed_company`).

    ``chunks()`` yields the writes in order; ``run()`` stores them. Tests replay the recorded
    client inputs through ``engine.create`` to prove the bodies are the engine's.
    """

    def __init__(self, emu: Emulator, realm: str, *, invoices: int = 100, seed: int = 1,
                 customers: int | None = None, items: int | None = None, payments_ratio: float = 0.5,
                 batch_size: int = 5000, months: int = 12, record_inputs: bool = False) -> None:
        if invoices < 0:
            raise ValueError("invoices must be >= 0")
        if not 0 <= payments_ratio <= 1:
            raise ValueError("payments_ratio must be between 0 and 1")
        self.emu = emu
        self.realm = realm
        self.invoices = int(invoices)
        self.n_customers = int(customers) if customers is not None else max(5, self.invoices // 50)
        self.n_items = int(items) if items is not None else max(5, min(200, self.invoices // 100))
        if self.n_customers < 1 or self.n_items < 1:
            raise ValueError("a company needs at least one customer and one item")
        self.payments_ratio = float(payments_ratio)
        self.batch_size = max(1, int(batch_size))
        self.rng = random.Random(seed)
        self.record_inputs = record_inputs
        self.lists = CompanyLists.load(emu, realm)
        # Anchored on the hour so two runs of the same seed a moment apart write the same times;
        # invoices are spread over the window [start, end], payments follow them until ``now``.
        self.now = float(int(emu.clock.timestamp() // 3600) * 3600)
        self.end = self.now - DAY
        self.start = self.end - months * 30 * DAY
        self.customers: dict[str, dict] = {}
        self.items: dict[str, dict] = {}
        self.last_activity: dict[str, float] = {}
        self.customer_created: dict[str, int] = {}
        self.counts = {"customers": 0, "items": 0, "invoices": 0, "payments": 0}

    # -- names ------------------------------------------------------------------------------
    def _unique(self, name: str) -> str:
        candidate, n = name, 1
        while candidate.lower() in self.lists.taken_names:
            n += 1
            candidate = f"{name} {n}"
        self.lists.taken_names.add(candidate.lower())
        return candidate

    def _customer_input(self, parent: dict | None, parent_id: int) -> dict:
        rng = self.rng
        given, family = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        city, postal = rng.choice(CITIES)
        addr = {"Line1": f"{100 + rng.randrange(9800)} {rng.choice(STREETS)}", "City": city,
                "CountrySubDivisionCode": "CA", "PostalCode": postal}
        if parent is not None:
            display = self._unique(f"{addr['Line1']}")
            body: dict[str, Any] = {"DisplayName": display, "GivenName": parent["GivenName"],
                                    "FamilyName": parent["FamilyName"], "ParentRef": {"value": str(parent_id)},
                                    "ShipAddr": addr}
            if parent.get("PrimaryEmailAddr"):
                body["PrimaryEmailAddr"] = dict(parent["PrimaryEmailAddr"])
            return body
        if rng.random() < 0.6:
            company = f"{family} {rng.choice(BUSINESS_KINDS)}"
            display = self._unique(company)
            body = {"DisplayName": display, "GivenName": given, "FamilyName": family, "CompanyName": company}
        else:
            display = self._unique(f"{given} {family}")
            body = {"DisplayName": display, "GivenName": given, "FamilyName": family}
        slug = "".join(ch for ch in display.lower() if ch.isalnum())[:24]
        body["PrimaryEmailAddr"] = {"Address": f"{given.lower()}@{slug}.example.com"}
        body["PrimaryPhone"] = {"FreeFormNumber": f"({rng.choice((408, 415, 510, 650))}) 555-{rng.randrange(10000):04d}"}
        body["BillAddr"] = addr
        body["ShipAddr"] = dict(addr)
        if rng.random() < 0.3:
            body["Taxable"] = True
        if rng.random() < 0.25:
            body["SalesTermRef"] = {"value": rng.choice(sorted(self.lists.terms))}
        return body

    def _item_input(self, n: int) -> dict:
        name, desc, price, typ, taxable = BULK_ITEM_NAMES[n % len(BULK_ITEM_NAMES)]
        grade = ITEM_GRADES[(n // len(BULK_ITEM_NAMES)) % len(ITEM_GRADES)]
        full = self._unique(f"{name} - {grade}" if grade else name)
        factor = 1 + 0.25 * ((n // len(BULK_ITEM_NAMES)) % len(ITEM_GRADES))
        body: dict[str, Any] = {"Name": full, "Description": f"{desc}{' (' + grade.lower() + ')' if grade else ''}",
                                "Type": typ, "UnitPrice": plain(money(price * factor)), "Taxable": taxable}
        if typ == "Service":
            income = chart.DESIGN_INCOME if name == "Design" else chart.LANDSCAPING_SERVICES
            body["IncomeAccountRef"] = {"value": str(income)}
        else:
            body["PurchaseCost"] = plain(money(price * factor * 0.55))
            body["IncomeAccountRef"] = {"value": str(chart.SALES_OF_PRODUCT_INCOME)}
            body["ExpenseAccountRef"] = {"value": str(chart.COST_OF_GOODS_SOLD)}
        return body

    # -- the plan ---------------------------------------------------------------------------
    def _record(self, body: dict) -> dict | None:
        return orjson.loads(orjson.dumps(body)) if self.record_inputs else None

    def chunks(self) -> Iterator[Chunk]:
        """The writes, in order: customers, items, then per batch invoices and their payments,
        and finally the customers again with the LastUpdatedTime their activity gave them."""
        tz = self.lists.tz
        rng = self.rng
        alloc = self.emu.db.reserve
        # --- customers (about one in twelve is a job under an earlier customer)
        first = alloc(self.realm, "Customer", self.n_customers)
        bodies, inputs = [], []
        tops: list[int] = []
        planned: list[tuple[dict, int | None]] = []
        for k in range(self.n_customers):
            parent = rng.choice(tops) if tops and rng.random() < 0.08 else None
            body = self._customer_input(None if parent is None else planned[parent][0], first + (parent or 0))
            planned.append((body, parent))
            if parent is None:
                tops.append(k)
        # each address gets an Id from one company-wide sequence, in creation order
        addresses = sum(count_addresses(body) for body, _ in planned)
        addr_ids = iter(range(alloc(self.realm, "addr", addresses, start=100), 1 << 62)) if addresses else iter(())
        for k, (body, parent_index) in enumerate(planned):
            parent = None if parent_index is None else bodies[parent_index]
            inputs.append(self._record(body))
            created = self.start - DAY * (60 - 59 * k / max(1, self.n_customers))
            built = stamp(build_customer(self.lists, body, first + k, parent, lambda: next(addr_ids)),
                           created, created, tz)
            self.customers[built["Id"]] = built
            self.customer_created[built["Id"]] = int(created)
            self.last_activity[built["Id"]] = int(created)
            bodies.append(built)
        self.counts["customers"] = len(bodies)
        for i in range(0, len(bodies), self.batch_size):
            yield Chunk("Customer", bodies[i:i + self.batch_size],
                        inputs[i:i + self.batch_size] if self.record_inputs else None)
        # --- items
        first = alloc(self.realm, "Item", self.n_items)
        bodies, inputs = [], []
        for k in range(self.n_items):
            body = self._item_input(k)
            inputs.append(self._record(body))
            created = self.start - 90 * DAY
            built = stamp(build_item(self.lists, body, first + k), created, created, tz)
            self.items[built["Id"]] = built
            bodies.append(built)
        self.counts["items"] = len(bodies)
        yield Chunk("Item", bodies, inputs if self.record_inputs else None)
        # --- invoices and payments, batch by batch
        customer_ids = list(self.customers)
        item_ids = list(self.items)
        step = (self.end - self.start) / max(1, self.invoices)
        done = 0
        while done < self.invoices:
            n = min(self.batch_size, self.invoices - done)
            first_id = alloc(self.realm, "txn", n)
            first_doc = alloc(self.realm, "doc:Invoice", n, start=1001)
            invoices: dict[str, dict] = {}
            inv_inputs = []
            times: dict[str, float] = {}
            for k in range(n):
                ts = int(self.start + (done + k + rng.random()) * step)
                cust = self.customers[rng.choice(customer_ids)]
                body = self._invoice_input(cust["Id"], item_ids, local_date(ts, tz))
                inv_inputs.append(self._record(body))
                built = stamp(build_invoice(self.lists, body, first_id + k, first_doc + k, cust, self.items),
                               ts, ts, tz)
                invoices[built["Id"]] = built
                times[built["Id"]] = ts
                self._touch_customer(cust["Id"], ts)
            plans = self._plan_payments(invoices, times)
            payments: list[dict] = []
            pay_inputs = []
            applied: dict[str, float] = {}
            if plans:
                first_pay = alloc(self.realm, "txn", len(plans))
                for k, (ts, body) in enumerate(plans):
                    pay_inputs.append(self._record(body))
                    cust = self.customers[body["CustomerRef"]["value"]]
                    built = build_payment(self.lists, body, first_pay + k, cust, invoices, applied, ts)
                    payments.append(stamp(built, ts, ts, tz))
                    self._touch_customer(cust["Id"], ts)
            done += n
            self.counts["invoices"] += n
            self.counts["payments"] += len(payments)
            yield Chunk("Invoice", list(invoices.values()), inv_inputs if self.record_inputs else None)
            if payments:
                yield Chunk("Payment", payments, pay_inputs if self.record_inputs else None)
        # --- customers again: balance changes moved their LastUpdatedTime (not their SyncToken)
        rewrites = []
        for cust_id, cust in self.customers.items():
            last = int(self.last_activity[cust_id])
            created = self.customer_created[cust_id]
            if last > created:
                cust["MetaData"]["LastUpdatedTime"] = qbo_timestamp(last, tz)
                cust["_created_at"] = created
                cust["_updated_at"] = last
                rewrites.append(cust)
        for i in range(0, len(rewrites), self.batch_size):
            yield Chunk("Customer", rewrites[i:i + self.batch_size])

    def _touch_customer(self, cust_id: str, ts: float) -> None:
        """The engine touches a customer and its ancestors whenever a transaction moves its balance."""
        seen = 0
        current: str | None = cust_id
        while current and seen < 6:
            if ts > self.last_activity[current]:
                self.last_activity[current] = ts
            current = (self.customers[current].get("ParentRef") or {}).get("value")
            seen += 1

    def _invoice_input(self, cust_id: str, item_ids: list[str], txn_date: str) -> dict:
        rng = self.rng
        lines = []
        for item_id in rng.sample(item_ids, min(len(item_ids), rng.choice((1, 1, 2, 2, 3)))):
            item = self.items[item_id]
            qty = rng.choice((1, 1, 2, 3, 4, 5, 6, 8, 10, 12))
            price = item["UnitPrice"]
            lines.append({"Amount": money(qty * price), "DetailType": "SalesItemLineDetail",
                          "SalesItemLineDetail": {"ItemRef": {"value": item_id}, "Qty": qty, "UnitPrice": price}})
        body: dict[str, Any] = {"CustomerRef": {"value": cust_id}, "TxnDate": txn_date, "Line": lines}
        roll = rng.random()
        if roll < 0.1:
            lines.append({"DetailType": "DiscountLineDetail",
                          "DiscountLineDetail": {"PercentBased": True, "DiscountPercent": rng.choice((5, 10, 15))}})
        if rng.random() < 0.3:
            body["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": "2"}}
        if rng.random() < 0.5:
            body["CustomField"] = [{"DefinitionId": "1", "Name": "Crew #", "Type": "StringType",
                                    "StringValue": str(100 + rng.randrange(12))}]
        if rng.random() < 0.2:
            body["CustomerMemo"] = {"value": "Thank you for your business and have a great day!"}
        return body

    def _plan_payments(self, invoices: dict[str, dict], times: dict[str, float]) -> list[tuple[float, dict]]:
        """Payments for about ``payments_ratio`` of the batch's invoices, in time order.

        Most pay one invoice in full; some pay part of it, some pay two invoices of the same
        customer, a few overpay (the rest stays unapplied) and a few are retainers applied to nothing.
        """
        rng = self.rng
        by_customer: dict[str, list[str]] = {}
        for inv_id, inv in invoices.items():
            by_customer.setdefault(inv["CustomerRef"]["value"], []).append(inv_id)
        taken: set[str] = set()
        plans: list[tuple[float, dict]] = []
        latest = self.now - 60
        for inv_id, inv in invoices.items():
            if inv_id in taken or rng.random() >= self.payments_ratio:
                continue
            taken.add(inv_id)
            cust = inv["CustomerRef"]["value"]
            paid = [inv_id]
            roll = rng.random()
            if 0.8 <= roll < 0.9:
                other = next((o for o in by_customer[cust] if o not in taken), None)
                if other is not None:
                    taken.add(other)
                    paid.append(other)
            when = max(times[i] for i in paid)
            ts = int(min(latest, when + rng.uniform(0.5, 45) * DAY))
            ts = max(ts, int(when) + 1)
            lines = []
            for i in paid:
                amount = invoices[i]["TotalAmt"]
                if roll < 0.1:  # partial payment
                    amount = money(amount * rng.choice((0.25, 0.5, 0.75)))
                lines.append({"Amount": amount, "LinkedTxn": [{"TxnId": i, "TxnType": "Invoice"}]})
            total = money(sum(line["Amount"] for line in lines))
            if roll >= 0.97:  # overpaid: the rest stays as credit on the account
                total = money(total + rng.choice((5, 10, 20, 50)))
            body: dict[str, Any] = {"CustomerRef": {"value": cust}, "TotalAmt": total,
                                    "TxnDate": local_date(ts, self.lists.tz),
                                    "PaymentMethodRef": {"value": rng.choice(("1", "2", "2", "3", "4"))},
                                    "PaymentRefNum": str(1000 + rng.randrange(90000)), "Line": lines}
            plans.append((ts, body))
            if rng.random() < 0.01:  # a retainer: received, applied to nothing yet
                rts = int(min(latest, ts + DAY))
                plans.append((rts, {"CustomerRef": {"value": cust}, "TotalAmt": float(rng.choice((100, 250, 500))),
                                    "TxnDate": local_date(rts, self.lists.tz), "PaymentMethodRef": {"value": "2"},
                                    "PaymentRefNum": str(1000 + rng.randrange(90000)), "Line": []}))
        plans.sort(key=lambda p: p[0])
        return plans

    def run(self, progress: Callable[[dict], Any] | None = None,
            on_chunk: Callable[[Chunk], Any] | None = None) -> dict:
        """Write every chunk, recompute balances, and return the summary counts.

        Args:
            progress: called after each invoice batch (see :func:`seed_company`).
            on_chunk: called with each chunk once stored (tests record the writes with it).
        """
        t0 = time.perf_counter()
        engine = self.emu.engine
        for chunk in self.chunks():
            engine.insert_prepared(self.realm, chunk.entity, chunk.bodies)
            if on_chunk is not None:
                on_chunk(chunk)
            if progress is not None and chunk.entity == "Invoice":
                progress({"invoices": self.counts["invoices"], "of": self.invoices,
                          "payments": self.counts["payments"], "seconds": round(time.perf_counter() - t0, 2)})
        engine.recompute_balances(self.realm)
        seconds = time.perf_counter() - t0
        return {"realmId": self.realm, **self.counts, "seconds": round(seconds, 3),
                "invoices_per_s": round(self.invoices / seconds, 1) if seconds > 0 else None}


def seed_company(emu: Emulator, realm: str, *, invoices: int = 100, seed: int = 1, customers: int | None = None,
                 items: int | None = None, payments_ratio: float = 0.5, batch_size: int = 5000,
                 progress: Callable[[dict], Any] | None = None) -> dict:
    """Fill an existing company with a realistic sales ledger of any size, fast.

    Adds ``customers`` customers (default ``max(5, invoices // 50)``, about one in twelve a job
    under another), ``items`` service and non-inventory items (default
    ``max(5, min(200, invoices // 100))``), ``invoices`` invoices spread over the past twelve
    months (1-3 item lines, some taxed with tax code 2 or by a taxable customer, some discounted,
    DocNumbers continuing the company's sequence from 1001) and payments for about
    ``payments_ratio`` of them (full, partial, two invoices at once, overpaid, a few unapplied
    retainers), each linked both ways. Bodies are what ``engine.create`` would store; balances are
    derived from the ledger at the end. 1,000,000 invoices take a few minutes; use a file-backed
    emulator (``EmulatorSettings(data_file=...)``) for such sizes so memory stays flat.

    Args:
        emu: the emulator.
        realm: an existing company.
        invoices: how many invoices to add.
        seed: random seed (same seed and emulator day, same company).
        customers: how many customers to add (default from ``invoices``).
        items: how many items to add (default from ``invoices``).
        payments_ratio: share of invoices that receive a payment (0..1).
        batch_size: invoices written per transaction; bounds memory.
        progress: called after each invoice batch with ``{"invoices", "of", "payments", "seconds"}``.

    Returns:
        ``{"realmId", "customers", "items", "invoices", "payments", "seconds", "invoices_per_s"}``.

    Raises:
        KeyError: when the company does not exist.
        ValueError: on a negative count or a ratio outside 0..1.
    """
    if not emu.engine.company_exists(realm):
        raise KeyError(realm)
    seeder = BulkSeeder(emu, realm, invoices=invoices, seed=seed, customers=customers, items=items,
                        payments_ratio=payments_ratio, batch_size=batch_size)
    return seeder.run(progress)
