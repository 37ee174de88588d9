"""Seeding: realistic, deterministic QuickBooks companies for the demo, the tests and the benchmarks.

Two ways in, for two sizes:

* :func:`seed_demo_company` builds "Craig's Design and Landscaping Services", the company a QBO
  sandbox starts with, **through the engine API** (``emu.engine.create/update/void/delete``):
  a year of invoices, estimates, payments, deposits, bills, expenses, journal entries and time,
  so every computed field, link, balance and ledger posting is exactly what the engine does.
  It takes a couple of seconds.
* :func:`seed_company` (and :class:`BulkSeeder` behind it) fills a company with a handful to
  1,000,000 invoices "in minutes and without running out of memory". Calling the engine once per
  object would take hours at that size, so the bulk path computes each body in Python exactly as
  the engine would (same keys in the same order, same values: line Ids, the SubTotal line, tax,
  TotalAmt, Balance, DocNumber from 1001, DueDate from terms, names on references, LinkedTxn on
  both sides, LineEx, SyncToken bumps) and stores whole batches with
  ``engine.insert_prepared`` (which also writes the ledger postings), then derives every balance
  from the ledger with ``engine.recompute_balances``. ``test_emulator_seed`` replays a bulk seed
  through ``engine.create`` and compares every body and posting, so the two paths cannot drift.

Memory: the bulk path streams, one batch of ``batch_size`` invoices (and their payments) at a
time; only the customer and item lists (at most a few tens of thousands of small dicts) stay in
memory. For big companies give the emulator a file-backed database,
``Emulator(EmulatorSettings(data_file="/tmp/big.sqlite"))``: SQLite then pages through a bounded
cache (64 MiB, see ``db.py``) and the process stays flat, where the default in-memory database
holds every row in RAM (about 2.5 KB per invoice with its postings and payment).

Determinism: everything comes from ``random.Random(seed)`` and ``emu.clock``; the same seed on
the same emulator day gives identical bodies (MetaData times aside in the demo, where the engine
stamps the current time).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import orjson

from qb_pipelines.emulator import chart
from qb_pipelines.emulator.clock import add_days, qbo_timestamp
from qb_pipelines.emulator.engine.values import USD, line_ex, money
from qb_pipelines.qbo import registry

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator

DEMO_COMPANY_NAME = "Craig's Design and Landscaping Services"
DAY = 86400.0

# --------------------------------------------------------------------------------------------
# Name material (shared by both paths)
# --------------------------------------------------------------------------------------------

FIRST_NAMES = (
    "Amy", "Bill", "Diego", "Dylan", "Geeta", "Jeff", "John", "Kate", "Kathy", "Mark", "Nick", "Travis",
    "Whitney", "Sasha", "Shara", "Dan", "Katsuyuki", "Rita", "Emily", "Kari", "Lena", "Omar", "Priya", "Tomas",
    "Grace", "Hector", "Ingrid", "Jamal", "Keiko", "Luis", "Maya", "Noah", "Olga", "Pavel", "Quinn", "Rosa",
    "Sean", "Tara", "Umar", "Vera", "Wes", "Xena", "Yusuf", "Zoe", "Aaron", "Bianca", "Carlos", "Dana",
    "Elena", "Farid", "Gina", "Hiro", "Irene", "Jonas", "Kofi", "Leah", "Marco", "Nadia", "Oscar", "Paula",
)
LAST_NAMES = (
    "Rodriguez", "Sollfrank", "Kalapatapu", "Melton", "Whelan", "Cho", "Barnett", "Waldron", "Tillou", "Pye",
    "Rago", "Gevelber", "Weiskopf", "Paulsen", "Freeman", "Sonnenschein", "Rondonuwu", "Duke", "Platt",
    "Steblay", "Alvarez", "Bergstrom", "Castillo", "Delgado", "Eriksen", "Fontaine", "Garibaldi", "Haddad",
    "Ivanova", "Jablonski", "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quintero",
    "Rossi", "Santos", "Takahashi", "Ueda", "Valdez", "Wojcik", "Xu", "Yamada", "Zamora", "Abbott", "Brennan",
    "Coleman", "Dixon", "Ellison", "Fletcher", "Gallagher", "Hughes", "Irwin", "Jennings", "Kendall", "Lowry",
)
BUSINESS_KINDS = (
    "Bakery", "Cafe", "Dental", "Auto Repair", "Bookstore", "Florist", "Fitness", "Law Office", "Realty",
    "Veterinary Clinic", "Winery", "Pet Supply", "Hardware", "Salon", "Photography", "Consulting", "Travel",
    "Medical Supplies", "Sporting Goods", "Deli", "Pharmacy", "Garden Center", "Brewery", "Music School",
)
STREETS = (
    "Ocean View Road", "Twin Lane", "Willow Rd", "Easy St.", "Finch St.", "Pine St.", "Main St.", "Elm Ave.",
    "Lakeshore Dr.", "Market St.", "Cedar Ct.", "Sierra Way", "Bayshore Blvd.", "Hillcrest Dr.", "Oak Knoll",
)
CITIES = (
    ("Menlo Park", "94304"), ("Middlefield", "94482"), ("Bayshore", "94326"), ("Palo Alto", "94303"),
    ("San Pablo", "87999"), ("Redwood City", "94062"), ("Sunnyvale", "94086"), ("Mountain View", "94041"),
    ("Cupertino", "95014"), ("Los Gatos", "95030"), ("San Mateo", "94401"), ("Half Moon Bay", "94019"),
)
BULK_ITEM_NAMES = (
    ("Design", "Custom landscape design", 75.0, "Service", False),
    ("Gardening", "Weekly gardening service", 25.0, "Service", False),
    ("Installation", "Installation of landscape design", 50.0, "Service", False),
    ("Trimming", "Tree and shrub trimming", 35.0, "Service", False),
    ("Pest Control", "Pest control services", 35.0, "Service", False),
    ("Maintenance & Repair", "Maintenance and repair", 45.0, "Service", False),
    ("Irrigation Check", "Sprinkler system inspection", 60.0, "Service", False),
    ("Lawn Mowing", "Lawn mowing and edging", 40.0, "Service", False),
    ("Hardscaping", "Patio and walkway construction", 95.0, "Service", False),
    ("Snow Removal", "Snow and ice removal", 55.0, "Service", False),
    ("Sod", "Sod, per square yard", 4.5, "NonInventory", True),
    ("Soil", "Top soil, 2 cubic ft. bag", 10.0, "NonInventory", True),
    ("Mulch", "Bark mulch, cubic yard", 38.0, "NonInventory", True),
    ("Rocks", "Garden rocks, per ton", 120.0, "NonInventory", True),
    ("Lighting", "Garden lighting fixture", 45.0, "NonInventory", True),
    ("Fertilizer", "Organic fertilizer, 40 lb bag", 22.5, "NonInventory", True),
    ("Pavers", "Concrete pavers, per pallet", 310.0, "NonInventory", True),
    ("Shrubs", "Shrub, 5 gallon", 28.0, "NonInventory", True),
    ("Trees", "Ornamental tree, 15 gallon", 89.0, "NonInventory", True),
    ("Seed", "Grass seed, 25 lb bag", 64.0, "NonInventory", True),
)
ITEM_GRADES = ("", "Premium", "Commercial", "Small", "Large", "Deluxe", "Economy", "Express", "Seasonal", "Custom")


def _plain(x: float) -> float | int:
    """Whole amounts as integers, as QBO prints list prices (``"UnitPrice": 15``)."""
    return int(x) if float(x).is_integer() else x


def _date(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).date().isoformat()


# --------------------------------------------------------------------------------------------
# The demo company, through the engine
# --------------------------------------------------------------------------------------------

# (DisplayName, GivenName, FamilyName, CompanyName or None, taxable, terms id or None)
DEMO_CUSTOMERS: tuple[tuple[str, str, str, str | None, bool, str | None], ...] = (
    ("Amy's Bird Sanctuary", "Amy", "Lauterbach", "Amy's Bird Sanctuary", True, None),
    ("Bill's Windsurf Shop", "Bill", "Lucchini", "Bill's Windsurf Shop", False, "2"),
    ("Cool Cars", "Grace", "Pariente", "Cool Cars", True, None),
    ("Diego Rodriguez", "Diego", "Rodriguez", None, False, "1"),
    ("Dukes Basketball Camp", "Peter", "Dukes", "Dukes Basketball Camp", False, None),
    ("Dylan Sollfrank", "Dylan", "Sollfrank", None, False, None),
    ("Freeman Sporting Goods", "Sasha", "Tillou", "Freeman Sporting Goods", False, None),
    ("Geeta Kalapatapu", "Geeta", "Kalapatapu", None, False, None),
    ("Gevelber Photography", "Lisa", "Gevelber", "Gevelber Photography", True, "2"),
    ("Jeff's Jalopies", "Jeff", "Chin", "Jeff's Jalopies", True, None),
    ("John Melton", "John", "Melton", None, False, "1"),
    ("Kate Whelan", "Kate", "Whelan", None, False, None),
    ("Kookies by Kathy", "Kathy", "Kuplis", "Kookies by Kathy", True, None),
    ("Mark Cho", "Mark", "Cho", None, True, None),
    ("Paulsen Medical Supplies", "Kathy", "Paulsen", "Paulsen Medical Supplies", True, "4"),
    ("Pye's Cakes", "Karen", "Pye", "Pye's Cakes", False, None),
    ("Rago Travel Agency", "Evelyn", "Rago", "Rago Travel Agency", False, "2"),
    ("Red Rock Diner", "Stephanie", "Martini", "Red Rock Diner", True, None),
    ("Rondonuwu Fruit and Vegi", "Tony", "Rondonuwu", "Rondonuwu Fruit and Vegi", False, None),
    ("Shara Barnett", "Shara", "Barnett", None, False, None),
    ("Sonnenschein Family Store", "Russ", "Sonnenschein", "Sonnenschein Family Store", True, None),
    ("Sushi by Katsuyuki", "Katsuyuki", "Yanagawa", "Sushi by Katsuyuki", True, "2"),
    ("Travis Waldron", "Travis", "Waldron", None, False, None),
    ("Video Games by Dan", "Dan", "Brinkman", "Video Games by Dan", False, None),
    ("Wedding Planning by Whitney", "Whitney", "Ferguson", "Wedding Planning by Whitney", False, None),
    ("Weiskopf Consulting", "Nicola", "Weiskopf", "Weiskopf Consulting", False, "4"),
)
# (DisplayName, parent DisplayName): sub-customers (jobs), two levels under Freeman.
DEMO_JOBS: tuple[tuple[str, str], ...] = (
    ("0969 Ocean View Road", "Freeman Sporting Goods"),
    ("55 Twin Lane", "Freeman Sporting Goods"),
    ("Patio Phase 2", "55 Twin Lane"),
    ("Barnett Design", "Shara Barnett"),
    ("Kitchen Garden", "Kookies by Kathy"),
)
# Customers that never trade and are made inactive at the end (QBO only inactivates at zero balance).
DEMO_DORMANT = ("Geeta Kalapatapu", "Video Games by Dan")
# (DisplayName, CompanyName, terms id or None, 1099, default expense account)
DEMO_VENDORS: tuple[tuple[str, str, str | None, bool, int], ...] = (
    ("Bob's Burger Joint", "Bob's Burger Joint", None, False, 13),
    ("Brosnahan Insurance Agency", "Brosnahan Insurance Agency", "3", False, 20),
    ("Cal Telephone", "Cal Telephone", "3", False, 59),
    ("Chin's Gas and Oil", "Chin's Gas and Oil", None, False, 17),
    ("Computers by Jenni", "Computers by Jenni", "3", True, 55),
    ("Ellis Equipment Rental", "Ellis Equipment Rental", "2", False, 15),
    ("Hall Properties", "Hall Properties", "1", False, 57),
    ("Hicks Hardware", "Hicks Hardware", "3", False, 17),
    ("Lee Advertising", "Lee Advertising", "3", True, 7),
    ("Norton Lumber and Building Materials", "Norton Lumber and Building Materials", "3", False, 17),
    ("PG&E", "Pacific Gas and Electric", "3", False, 59),
    ("Robertson & Associates", "Robertson & Associates, CPAs", "3", True, 29),
    ("Squeaky Kleen Car Wash", "Squeaky Kleen Car Wash", None, False, 17),
    ("Tania's Nursery", "Tania's Nursery", "2", False, 17),
)
DEMO_EMPLOYEES = (("Emily", "Platt"), ("John", "Johnson"), ("Kari", "Steblay"))


@dataclass
class _Demo:
    """Working state of one demo seeding run (ids by name, open documents)."""

    emu: Emulator
    realm: str
    rng: random.Random
    today: str
    customers: dict[str, str] = field(default_factory=dict)
    vendors: dict[str, str] = field(default_factory=dict)
    employees: list[str] = field(default_factory=list)
    items: dict[str, dict] = field(default_factory=dict)
    classes: dict[str, str] = field(default_factory=dict)
    departments: dict[str, str] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)
    open_invoices: list[str] = field(default_factory=list)
    open_bills: list[str] = field(default_factory=list)
    undeposited: list[tuple[str, str]] = field(default_factory=list)
    open_estimates: list[str] = field(default_factory=list)

    def create(self, entity: str, body: dict) -> dict:
        return self.emu.engine.create(self.realm, entity, body)

    def get(self, entity: str, obj_id: str) -> dict:
        return self.emu.engine.read(self.realm, entity, obj_id)

    def day(self, start: str, offset: int) -> str:
        """A date ``offset`` days after ``start``, never after today."""
        return min(add_days(start, offset), self.today)


def seed_demo_company(emu: Emulator, seed: int = 7) -> str:
    """Create (once) and fill QBO's sandbox company, "Craig's Design and Landscaping Services".

    Everything goes through the engine API, as a QuickBooks user would enter it: ~30 customers
    with sub-customers two levels deep, 14 vendors, 3 employees, 20 items (services, inventory
    with opening stock, non-inventory, two categories with sub-items), classes, departments, and
    twelve months of activity dated back from ``emu.clock.today()``: invoices (taxed with tax code
    2, discounted, made from estimates), payments (full, partial, across two invoices, applying a
    credit memo, unapplied), sales receipts, credit memos, refund receipts, bills and bill payments
    (check and credit card), vendor credits, expenses, deposits, month-end journal entries and
    time activities; then a voided invoice, a deleted expense, two inactive customers and two
    inactive items.

    Args:
        emu: the emulator.
        seed: random seed; the same seed on the same emulator day gives the same company.

    Returns:
        The company's realmId (the existing one when a company of that name already exists).
    """
    for company in emu.engine.companies():
        if company["name"] == DEMO_COMPANY_NAME:
            return company["realmId"]
    realm = emu.engine.create_company(DEMO_COMPANY_NAME)
    tz = emu.company_tz(realm)
    d = _Demo(emu, realm, random.Random(seed), emu.clock.today(tz))
    start = add_days(d.today, -365)
    _demo_lists(d, inv_start=add_days(start, -1))
    months = [add_days(start, 30 * m + 5) for m in range(12)]
    for m, month_start in enumerate(months):
        _demo_month(d, m, month_start, last=(m == len(months) - 1))
    _demo_finish(d)
    return realm


def _demo_lists(d: _Demo, inv_start: str) -> None:
    eng, realm, rng = d.emu.engine, d.realm, d.rng
    prefs = eng.read(realm, "Preferences", "1")
    accounting = dict(prefs["AccountingInfoPrefs"], TrackDepartments=True, ClassTrackingPerTxn=True)
    eng.update(realm, "Preferences", {"Id": "1", "SyncToken": prefs["SyncToken"], "sparse": True,
                                      "AccountingInfoPrefs": accounting})
    for name, typ, sub in (("Depreciation", "Expense", "Depreciation"),
                           ("Accumulated Depreciation", "Fixed Asset", "AccumulatedDepreciation")):
        d.accounts[name] = d.create("Account", {"Name": name, "AccountType": typ, "AccountSubType": sub})["Id"]
    for name in ("Landscaping", "Design", "Maintenance"):
        d.classes[name] = d.create("Class", {"Name": name})["Id"]
    d.classes["Residential"] = d.create("Class", {"Name": "Residential",
                                                  "ParentRef": {"value": d.classes["Landscaping"]}})["Id"]
    for name in ("North Bay", "South Bay"):
        d.departments[name] = d.create("Department", {"Name": name})["Id"]

    # Customers alphabetically, each top-level customer's jobs right after it and deeper jobs
    # last: Freeman Sporting Goods is 7, its job 0969 Ocean View Road 8 and Mark Cho 17, as in
    # QBO's sample company (reference samples).
    top_level = {c[0] for c in DEMO_CUSTOMERS}
    for n, (display, given, family, company, taxable, term) in enumerate(DEMO_CUSTOMERS):
        city, postal = CITIES[n % len(CITIES)]
        addr = {"Line1": f"{100 + rng.randrange(9800)} {rng.choice(STREETS)}", "City": city,
                "CountrySubDivisionCode": "CA", "PostalCode": postal}
        body: dict[str, Any] = {"DisplayName": display, "GivenName": given, "FamilyName": family}
        if company:
            body["CompanyName"] = company
        slug = display.split()[0].strip("'s").lower()
        body.update({
            "PrimaryEmailAddr": {"Address": f"{given.lower()}@{slug}.example.com"},
            "PrimaryPhone": {"FreeFormNumber": f"(650) 555-{1000 + rng.randrange(9000)}"},
            "BillAddr": addr, "ShipAddr": dict(addr), "Taxable": taxable,
        })
        if term:
            body["SalesTermRef"] = {"value": term}
        d.customers[display] = d.create("Customer", body)["Id"]
        for job, parent in DEMO_JOBS:
            if parent == display:
                _demo_job(d, job, parent)
    for job, parent in DEMO_JOBS:
        if parent not in top_level:
            _demo_job(d, job, parent)

    for n, (display, company, term, is_1099, _acc) in enumerate(DEMO_VENDORS):
        city, postal = CITIES[(n + 5) % len(CITIES)]
        body = {"DisplayName": display, "CompanyName": company, "Vendor1099": is_1099,
                "AcctNum": str(10000 + rng.randrange(89999)),
                "PrimaryPhone": {"FreeFormNumber": f"(650) 555-{1000 + rng.randrange(9000)}"},
                "BillAddr": {"Line1": f"{100 + rng.randrange(9800)} {rng.choice(STREETS)}", "City": city,
                             "CountrySubDivisionCode": "CA", "PostalCode": postal}}
        if term:
            body["TermRef"] = {"value": term}
        d.vendors[display] = d.create("Vendor", body)["Id"]
    for given, family in DEMO_EMPLOYEES:
        d.employees.append(d.create("Employee", {
            "GivenName": given, "FamilyName": family, "PrimaryPhone": {"FreeFormNumber": "(540) 555-9645"},
            "PrimaryEmailAddr": {"Address": f"{given.lower()}.{family.lower()}@craigsdesign.example.com"},
            "HiredDate": add_days(inv_start, -400 - rng.randrange(900))})["Id"])

    def item(name: str, **fields: Any) -> None:
        d.items[name] = d.create("Item", {"Name": name, **fields})

    services = {"value": str(chart.SERVICES)}
    income = {"value": str(chart.LANDSCAPING_SERVICES)}
    product = {"IncomeAccountRef": {"value": str(chart.SALES_OF_PRODUCT_INCOME)},
               "ExpenseAccountRef": {"value": str(chart.COST_OF_GOODS_SOLD)}}
    stock = {"AssetAccountRef": {"value": str(chart.INVENTORY_ASSET)}, "InvStartDate": inv_start, "Taxable": True,
             **product}
    # Item 1 "Services" comes with every company; the others in the order of QBO's sample company,
    # so their Ids are the sample's (Hours 2, Concrete 3 ... Trimming 18, Garden Supplies 19).
    d.items["Services"] = d.get("Item", str(chart.SERVICES_ITEM))
    item("Hours", Type="Service", UnitPrice=35, IncomeAccountRef=services)
    item("Concrete", Type="Service", Description="Concrete for fountain installation", UnitPrice=15,
         IncomeAccountRef=income)
    item("Design", Type="Service", Description="Custom Design", UnitPrice=75,
         IncomeAccountRef={"value": str(chart.DESIGN_INCOME)})
    item("Rock Fountain", Type="Inventory", Description="Rock Fountain", UnitPrice=275, PurchaseCost=125,
         QtyOnHand=8, **stock)
    item("Gardening", Type="Service", Description="Weekly Gardening Service", UnitPrice=25, IncomeAccountRef=income)
    item("Installation", Type="Service", Description="Installation of landscape design", UnitPrice=50,
         IncomeAccountRef=income)
    item("Lighting", Type="NonInventory", Description="Garden Lighting", UnitPrice=45, PurchaseCost=20,
         Taxable=True, **product)
    item("Maintenance & Repair", Type="Service", Description="Maintenance & Repair", UnitPrice=45,
         IncomeAccountRef=income)
    item("Pest Control", Type="Service", Description="Pest Control Services", UnitPrice=35, IncomeAccountRef=income)
    item("Pump", Type="Inventory", Description="Fountain Pump", UnitPrice=15, PurchaseCost=10, QtyOnHand=25, **stock)
    item("Refunds & Allowances", Type="Service", Description="Refunds and allowances",
         IncomeAccountRef={"value": str(chart.REFUNDS_TO_CUSTOMERS)})
    for name, desc, price in (("Rocks", "Garden Rocks", 12), ("Sod", "Sod, per square yard", 4.5),
                              ("Soil", "2 cubic ft. bag", 10)):
        item(name, Type="NonInventory", Description=desc, UnitPrice=price, Taxable=True, **product)
    item("Sprinkler Heads", Type="Inventory", Description="Sprinkler Heads", UnitPrice=2, PurchaseCost=0.75,
         QtyOnHand=25, **stock)
    item("Sprinkler Pipes", Type="Inventory", Description="Sprinkler Pipes", UnitPrice=4, PurchaseCost=2.5,
         QtyOnHand=31, **stock)
    item("Trimming", Type="Service", Description="Tree and Shrub Trimming", UnitPrice=35, IncomeAccountRef=income)
    item("Garden Supplies", Type="Inventory", UnitPrice=0, PurchaseCost=0, QtyOnHand=10, **{**stock, "Taxable": False})
    # What this emulator adds after them: two categories the user files items under, and a
    # seasonal item retired at the end of the year.
    item("Landscaping", Type="Category")
    item("Sprinklers", Type="Category")
    item("Winter Lighting", Type="NonInventory", Description="Seasonal lighting", UnitPrice=30, **product)
    for name, category in (("Rocks", "Landscaping"), ("Sod", "Landscaping"), ("Soil", "Landscaping"),
                           ("Sprinkler Heads", "Sprinklers"), ("Sprinkler Pipes", "Sprinklers")):
        filed = d.items[name]
        d.items[name] = eng.update(realm, "Item", {"Id": filed["Id"], "SyncToken": filed["SyncToken"], "sparse": True,
                                                   "ParentRef": {"value": d.items[category]["Id"]}})

    # Opening balances, as QBO books them when a company starts: the bank's and the inventory's
    # starting values against Opening Balance Equity.
    stock_value = money(sum(float(i["QtyOnHand"]) * float(i["PurchaseCost"])
                            for i in d.items.values() if i.get("Type") == "Inventory"))
    for account, amount, note in ((chart.CHECKING, 12500.0, "Opening balance"),
                                  (37, 13495.0, "Truck - original cost"),
                                  (chart.INVENTORY_ASSET, stock_value, "Inventory starting value")):
        d.create("JournalEntry", {"TxnDate": inv_start, "PrivateNote": note, "Line": [
            _je_line(amount, "Debit", account, note), _je_line(amount, "Credit", chart.OPENING_BALANCE_EQUITY, note)]})


def _demo_job(d: _Demo, display: str, parent: str) -> None:
    """A sub-customer (job) under ``parent``: its contact and billing address, its own site address."""
    parent_body = d.get("Customer", d.customers[parent])
    body = {"DisplayName": display, "GivenName": parent_body["GivenName"],
            "FamilyName": parent_body["FamilyName"], "ParentRef": {"value": parent_body["Id"]},
            "BillWithParent": d.rng.random() < 0.5, "PrimaryEmailAddr": dict(parent_body["PrimaryEmailAddr"]),
            "ShipAddr": {"Line1": display if display[0].isdigit() else parent_body["ShipAddr"]["Line1"],
                         "City": parent_body["ShipAddr"]["City"], "CountrySubDivisionCode": "CA",
                         "PostalCode": parent_body["ShipAddr"]["PostalCode"]},
            "BillAddr": dict(parent_body["BillAddr"])}
    d.customers[display] = d.create("Customer", body)["Id"]


def _je_line(amount: float, posting: str, account: int | str, description: str) -> dict:
    return {"Description": description, "Amount": amount, "DetailType": "JournalEntryLineDetail",
            "JournalEntryLineDetail": {"PostingType": posting, "AccountRef": {"value": str(account)}}}


_SELLABLE = ("Design", "Gardening", "Hours", "Installation", "Maintenance & Repair", "Pest Control", "Trimming",
             "Lighting", "Sod", "Soil", "Rocks", "Sprinkler Heads", "Sprinkler Pipes", "Pump", "Rock Fountain")


def _sales_lines(d: _Demo, count: int) -> list[dict]:
    lines = []
    for name in d.rng.sample(_SELLABLE, count):
        item = d.items[name]
        qty = d.rng.choice((1, 1, 2, 3, 4, 5, 8, 10, 12)) if item["UnitPrice"] < 100 else 1
        line: dict[str, Any] = {"Amount": money(qty * float(item["UnitPrice"])), "DetailType": "SalesItemLineDetail",
                                "SalesItemLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": qty,
                                                        "UnitPrice": item["UnitPrice"]}}
        if d.rng.random() < 0.3:
            line["SalesItemLineDetail"]["ClassRef"] = {"value": d.rng.choice(list(d.classes.values()))}
        lines.append(line)
    return lines


def _trading_customers(d: _Demo) -> list[str]:
    return [name for name in d.customers if name not in DEMO_DORMANT]


def _demo_invoice(d: _Demo, date: str, customer: str, lines: list[dict], **extra: Any) -> dict:
    rng = d.rng
    body: dict[str, Any] = {"CustomerRef": {"value": d.customers[customer]}, "TxnDate": date, "Line": lines}
    if rng.random() < 0.4:
        body["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": "2"}}
    if rng.random() < 0.2:
        body["Line"].append({"DetailType": "DiscountLineDetail", "DiscountLineDetail": {
            "PercentBased": True, "DiscountPercent": rng.choice((5, 10, 15))}})
    if rng.random() < 0.5:
        body["CustomField"] = [{"DefinitionId": "1", "Name": "Crew #", "Type": "StringType",
                                "StringValue": str(100 + rng.randrange(10))}]
    if rng.random() < 0.3:
        body["DepartmentRef"] = {"value": rng.choice(list(d.departments.values()))}
    body["CustomerMemo"] = {"value": "Thank you for your business and have a great day!"}
    body.update(extra)
    inv = d.create("Invoice", body)
    d.open_invoices.append(inv["Id"])
    return inv


def _demo_month(d: _Demo, m: int, start: str, *, last: bool) -> None:
    rng = d.rng
    trading = _trading_customers(d)
    # --- estimates, some converted into invoices
    for _ in range(3):
        est = d.create("Estimate", {"CustomerRef": {"value": d.customers[rng.choice(trading)]},
                                    "TxnDate": d.day(start, rng.randrange(3)), "Line": _sales_lines(d, rng.randint(1, 3)),
                                    "ExpirationDate": d.day(start, 30)})
        d.open_estimates.append(est["Id"])
    for est_id in list(d.open_estimates[-3:])[: rng.randint(1, 2)]:
        est = d.get("Estimate", est_id)
        lines = [{k: v for k, v in line.items() if k not in ("Id", "LineNum")} for line in est["Line"]
                 if line["DetailType"] == "SalesItemLineDetail"]
        name = next(n for n, i in d.customers.items() if i == est["CustomerRef"]["value"])
        _demo_invoice(d, d.day(start, 4 + rng.randrange(4)), name, lines,
                      LinkedTxn=[{"TxnId": est_id, "TxnType": "Estimate"}])
        d.open_estimates.remove(est_id)
    # --- invoices
    for _ in range(5):
        _demo_invoice(d, d.day(start, rng.randrange(25)), rng.choice(trading), _sales_lines(d, rng.randint(1, 3)))
    # --- sales receipts (paid on the spot)
    for _ in range(2):
        sr = d.create("SalesReceipt", {"CustomerRef": {"value": d.customers[rng.choice(trading)]},
                                       "TxnDate": d.day(start, rng.randrange(25)),
                                       "PaymentMethodRef": {"value": rng.choice(("1", "2", "3", "4"))},
                                       "Line": _sales_lines(d, rng.randint(1, 2))})
        d.undeposited.append(("SalesReceipt", sr["Id"]))
    # --- credit memo, applied through a payment when the customer has an open invoice
    if m % 2 == 1:
        _demo_credit_memo(d, d.day(start, 12))
    # --- refund receipt
    if m % 3 == 2:
        d.create("RefundReceipt", {"CustomerRef": {"value": d.customers[rng.choice(trading)]},
                                   "TxnDate": d.day(start, 14), "DepositToAccountRef": {"value": str(chart.CHECKING)},
                                   "PaymentMethodRef": {"value": "2"}, "PaymentRefNum": str(5000 + m),
                                   "Line": [{"Amount": 40.0 + 5 * m, "DetailType": "SalesItemLineDetail",
                                             "SalesItemLineDetail": {
                                                 "ItemRef": {"value": d.items["Refunds & Allowances"]["Id"]}}}]})
    # --- customer payments on earlier invoices
    _demo_payments(d, start, last=last)
    # --- bills, bill payments, vendor credits, expenses
    _demo_purchasing(d, m, start)
    # --- time
    for _ in range(3):
        item = d.items[rng.choice(("Hours", "Gardening", "Trimming"))]
        d.create("TimeActivity", {"TxnDate": d.day(start, rng.randrange(25)), "NameOf": "Employee",
                                  "EmployeeRef": {"value": rng.choice(d.employees)},
                                  "CustomerRef": {"value": d.customers[rng.choice(trading)]},
                                  "ItemRef": {"value": item["Id"]}, "BillableStatus": "Billable",
                                  "HourlyRate": item["UnitPrice"], "Hours": rng.randint(1, 8),
                                  "Minutes": rng.choice((0, 15, 30, 45)), "Description": item.get("Description", "")})
    # --- deposit what came in (the last month stays in Undeposited Funds)
    if not last and d.undeposited:
        _demo_deposit(d, d.day(start, 27))
    # --- month-end adjustments
    date = d.day(start, 28)
    d.create("JournalEntry", {"TxnDate": date, "Adjustment": True, "PrivateNote": "Monthly depreciation - truck",
                              "Line": [_je_line(250.0, "Debit", d.accounts["Depreciation"], "Truck depreciation"),
                                       _je_line(250.0, "Credit", d.accounts["Accumulated Depreciation"],
                                                "Truck depreciation")]})
    if m % 3 == 2:
        d.create("JournalEntry", {"TxnDate": date, "PrivateNote": "Quarterly loan interest accrual",
                                  "Line": [_je_line(85.5, "Debit", 85, "Loan interest"),
                                           _je_line(85.5, "Credit", 90, "Loan interest")]})


def _demo_credit_memo(d: _Demo, date: str) -> None:
    rng = d.rng
    candidates = [i for i in d.open_invoices if d.get("Invoice", i)["Balance"] > 60]
    if not candidates:
        return
    inv = d.get("Invoice", rng.choice(candidates))
    amount = float(rng.choice((25, 40, 50)))
    cm = d.create("CreditMemo", {"CustomerRef": {"value": inv["CustomerRef"]["value"]}, "TxnDate": date,
                                 "PrivateNote": "Goodwill credit",
                                 "Line": [{"Amount": amount, "DetailType": "SalesItemLineDetail",
                                           "SalesItemLineDetail": {
                                               "ItemRef": {"value": d.items["Refunds & Allowances"]["Id"]}}}]})
    if rng.random() < 0.7:  # applied: the customer pays the invoice less the credit
        balance = inv["Balance"]
        pay = d.create("Payment", {
            "CustomerRef": {"value": inv["CustomerRef"]["value"]}, "TotalAmt": money(balance - amount),
            "TxnDate": date, "PaymentMethodRef": {"value": "2"}, "PaymentRefNum": str(2000 + int(cm["Id"])),
            "Line": [{"Amount": balance, "LinkedTxn": [{"TxnId": inv["Id"], "TxnType": "Invoice"}]},
                     {"Amount": amount, "LinkedTxn": [{"TxnId": cm["Id"], "TxnType": "CreditMemo"}]}]})
        d.open_invoices.remove(inv["Id"])
        d.undeposited.append(("Payment", pay["Id"]))


def _demo_payments(d: _Demo, start: str, *, last: bool) -> None:
    rng = d.rng
    due = [i for i in d.open_invoices if d.get("Invoice", i)["TxnDate"] <= add_days(start, -10)]
    rng.shuffle(due)
    handled: set[str] = set()
    for inv_id in due:
        if inv_id in handled or (last and rng.random() < 0.5):
            continue
        inv = d.get("Invoice", inv_id)
        if inv["Balance"] <= 0:
            continue
        customer = inv["CustomerRef"]["value"]
        date = d.day(start, rng.randrange(20))
        roll = rng.random()
        lines = [{"Amount": inv["Balance"], "LinkedTxn": [{"TxnId": inv_id, "TxnType": "Invoice"}]}]
        handled.add(inv_id)
        if roll < 0.15:  # partial
            lines[0]["Amount"] = money(inv["Balance"] * rng.choice((0.25, 0.5, 0.6)))
        elif roll < 0.35:  # one cheque for two invoices of the same customer
            other = next((o for o in due if o not in handled and d.get("Invoice", o)["CustomerRef"]["value"] == customer
                          and d.get("Invoice", o)["Balance"] > 0), None)
            if other is not None:
                handled.add(other)
                lines.append({"Amount": d.get("Invoice", other)["Balance"],
                              "LinkedTxn": [{"TxnId": other, "TxnType": "Invoice"}]})
        total = money(sum(line["Amount"] for line in lines))
        if roll > 0.93:  # overpaid: the rest stays unapplied on the customer's account
            total = money(total + 20)
        pay = d.create("Payment", {"CustomerRef": {"value": customer}, "TotalAmt": total, "TxnDate": date,
                                   "PaymentMethodRef": {"value": rng.choice(("1", "2", "3", "4"))},
                                   "PaymentRefNum": str(1000 + rng.randrange(9000)), "Line": lines})
        d.undeposited.append(("Payment", pay["Id"]))
        for line in lines:
            txn = line["LinkedTxn"][0]["TxnId"]
            if d.get("Invoice", txn)["Balance"] <= 0:
                d.open_invoices.remove(txn)
    if rng.random() < 0.4:  # a retainer received before any invoice: wholly unapplied
        pay = d.create("Payment", {"CustomerRef": {"value": d.customers[rng.choice(_trading_customers(d))]},
                                   "TotalAmt": float(rng.choice((100, 150, 250))), "TxnDate": d.day(start, 20),
                                   "PaymentMethodRef": {"value": "2"}, "PrivateNote": "Retainer", "Line": []})
        d.undeposited.append(("Payment", pay["Id"]))


def _demo_deposit(d: _Demo, date: str) -> None:
    lines = []
    for typ, txn_id in d.undeposited:
        doc = d.get(typ, txn_id)
        if doc["TxnDate"] > date or doc["TotalAmt"] <= 0:
            continue
        lines.append({"Amount": doc["TotalAmt"],
                      "LinkedTxn": [{"TxnId": txn_id, "TxnType": typ, "TxnLineId": "0"}]})
    if not lines:
        return
    if d.rng.random() < 0.3:
        lines.append({"Amount": 3.21, "DetailType": "DepositLineDetail",
                      "DepositLineDetail": {"AccountRef": {"value": "83"}}, "Description": "Interest"})
    d.create("Deposit", {"TxnDate": date, "DepositToAccountRef": {"value": str(chart.CHECKING)}, "Line": lines})
    deposited = {lt["TxnId"] for line in lines for lt in line.get("LinkedTxn", [])}
    d.undeposited = [(t, i) for t, i in d.undeposited if i not in deposited]


def _demo_purchasing(d: _Demo, m: int, start: str) -> None:
    rng = d.rng
    trading = _trading_customers(d)

    def account_line(amount: float, account: int | str, **detail: Any) -> dict:
        return {"Amount": amount, "DetailType": "AccountBasedExpenseLineDetail",
                "AccountBasedExpenseLineDetail": {"AccountRef": {"value": str(account)}, **detail}}

    # bills of the month (pay last month's first)
    for bill_id in list(d.open_bills):
        bill = d.get("Bill", bill_id)
        if bill["Balance"] <= 0:
            d.open_bills.remove(bill_id)
            continue
        amount = bill["Balance"] if rng.random() < 0.85 else money(bill["Balance"] / 2)
        body: dict[str, Any] = {"VendorRef": {"value": bill["VendorRef"]["value"]}, "TotalAmt": amount,
                                "TxnDate": d.day(start, rng.randrange(10)),
                                "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": bill_id, "TxnType": "Bill"}]}]}
        if rng.random() < 0.25:
            body.update(PayType="CreditCard", CreditCardPayment={"CCAccountRef": {"value": str(chart.MASTERCARD)}})
        else:
            body.update(PayType="Check", CheckPayment={"BankAccountRef": {"value": str(chart.CHECKING)}})
        d.create("BillPayment", body)
        if d.get("Bill", bill_id)["Balance"] <= 0:
            d.open_bills.remove(bill_id)
    bills = [("Hall Properties", 57, 900.0, "Office rent"),
             ("PG&E", 59, float(rng.randint(80, 180)), "Electricity"),
             ("Cal Telephone", 59, float(rng.randint(50, 90)), "Phone and internet")]
    if m % 2 == 0:
        bills.append(("Brosnahan Insurance Agency", 20, 241.23, "Liability insurance"))
    for vendor, account, amount, note in bills:
        bill = d.create("Bill", {"VendorRef": {"value": d.vendors[vendor]}, "TxnDate": d.day(start, 1),
                                 "PrivateNote": note, "Line": [account_line(amount, account)]})
        d.open_bills.append(bill["Id"])
    # job materials, billable to a customer
    customer = d.customers[rng.choice(trading)]
    bill = d.create("Bill", {"VendorRef": {"value": d.vendors["Norton Lumber and Building Materials"]},
                             "TxnDate": d.day(start, 8), "Line": [
                                 account_line(float(rng.randint(100, 400)), 17, CustomerRef={"value": customer},
                                              BillableStatus="Billable")]})
    d.open_bills.append(bill["Id"])
    # restock inventory every quarter
    if m % 3 == 0:
        lines = []
        for name, qty in (("Sprinkler Heads", 40), ("Sprinkler Pipes", 30), ("Pump", 10), ("Rock Fountain", 3)):
            item = d.items[name]
            lines.append({"Amount": money(qty * float(item["PurchaseCost"])), "DetailType": "ItemBasedExpenseLineDetail",
                          "ItemBasedExpenseLineDetail": {"ItemRef": {"value": item["Id"]}, "Qty": qty,
                                                         "UnitPrice": item["PurchaseCost"]}})
        bill = d.create("Bill", {"VendorRef": {"value": d.vendors["Tania's Nursery"]}, "TxnDate": d.day(start, 2),
                                 "Line": lines})
        d.open_bills.append(bill["Id"])
    if m % 4 == 3:
        d.create("VendorCredit", {"VendorRef": {"value": d.vendors["Norton Lumber and Building Materials"]},
                                  "TxnDate": d.day(start, 15), "PrivateNote": "Returned lumber",
                                  "Line": [account_line(float(rng.randint(20, 80)), 17)]})
    # expenses paid on the spot
    for vendor, account, pay_type, acct in (("Chin's Gas and Oil", 17, "CreditCard", chart.MASTERCARD),
                                            ("Squeaky Kleen Car Wash", 17, "Cash", chart.CHECKING),
                                            ("Bob's Burger Joint", 13, "CreditCard", chart.MASTERCARD),
                                            ("Hicks Hardware", 17, "Check", chart.CHECKING)):
        if rng.random() < 0.75:
            body = {"PaymentType": pay_type, "AccountRef": {"value": str(acct)}, "TxnDate": d.day(start, rng.randrange(25)),
                    "EntityRef": {"value": d.vendors[vendor], "type": "Vendor"},
                    "Line": [account_line(money(rng.uniform(8, 120)), account)]}
            if pay_type == "Check":
                body["DocNumber"] = str(70 + m)
            d.create("Purchase", body)


def _demo_finish(d: _Demo) -> None:
    """The edge cases a real company has: a voided invoice, a deleted expense, inactive records."""
    eng, realm, rng = d.emu.engine, d.realm, d.rng
    trading = _trading_customers(d)
    # a deposit on a recent job: the invoice stays partly open
    open_docs = [d.get("Invoice", i) for i in d.open_invoices]
    target = next((i for i in reversed(open_docs) if i["Balance"] == i["TotalAmt"] and i["TotalAmt"] > 20), None)
    if target is not None:
        amount = money(target["Balance"] * 0.4)
        d.create("Payment", {"CustomerRef": {"value": target["CustomerRef"]["value"]}, "TotalAmt": amount,
                             "TxnDate": d.today, "PaymentMethodRef": {"value": "3"}, "PrivateNote": "Deposit on job",
                             "Line": [{"Amount": amount, "LinkedTxn": [{"TxnId": target["Id"], "TxnType": "Invoice"}]}]})
    inv = d.create("Invoice", {"CustomerRef": {"value": d.customers[rng.choice(trading)]},
                               "TxnDate": d.day(d.today, -20), "PrivateNote": "Entered twice",
                               "Line": _sales_lines(d, 1)})
    eng.void(realm, "Invoice", {"Id": inv["Id"], "SyncToken": inv["SyncToken"]})
    purchase = d.create("Purchase", {
        "PaymentType": "Cash", "AccountRef": {"value": str(chart.CHECKING)}, "TxnDate": d.day(d.today, -15),
        "EntityRef": {"value": d.vendors["Squeaky Kleen Car Wash"], "type": "Vendor"},
        "Line": [{"Amount": 19.99, "DetailType": "AccountBasedExpenseLineDetail",
                  "AccountBasedExpenseLineDetail": {"AccountRef": {"value": "17"}}}]})
    eng.delete(realm, "Purchase", {"Id": purchase["Id"], "SyncToken": purchase["SyncToken"]})
    for name in DEMO_DORMANT:
        cust = d.get("Customer", d.customers[name])
        eng.update(realm, "Customer", {"Id": cust["Id"], "SyncToken": cust["SyncToken"], "sparse": True,
                                       "Active": False})
    for name in ("Concrete", "Winter Lighting"):  # never on a transaction: Item 1 "Services" stays usable
        item = d.get("Item", d.items[name]["Id"])
        eng.update(realm, "Item", {"Id": item["Id"], "SyncToken": item["SyncToken"], "sparse": True, "Active": False})


# --------------------------------------------------------------------------------------------
# Bulk seeding: bodies computed as the engine computes them, stored in batches
# --------------------------------------------------------------------------------------------


@dataclass
class CompanyLists:
    """The company's starting lists the computed fields depend on (read once per bulk run)."""

    tz: ZoneInfo
    accounts: dict[str, str]  # Id -> name shown on references
    terms: dict[str, tuple[str, int]]  # Id -> (Name, DueDays)
    payment_methods: dict[str, str]
    tax_codes: dict[str, list[tuple[str, float]]]  # code Id -> [(rate Id, RateValue)]
    default_terms: str | None
    tax_group_code: str | None
    taken_names: set[str]  # lower-cased DisplayNames (Customer/Vendor/Employee) and item FQNs

    @classmethod
    def load(cls, emu: Emulator, realm: str) -> CompanyLists:
        def rows(entity: str) -> list[dict]:
            with emu.db.read() as c:
                return [orjson.loads(r[0]) for r in c.execute(
                    "SELECT body FROM objects WHERE realm=? AND entity=? AND status IS NULL AND active=1",
                    (realm, entity))]

        prefs = emu.engine.lookup(realm, "Preferences", "1") or {}
        rates = {r["Id"]: float(r.get("RateValue", 0)) for r in rows("TaxRate")}
        codes = {}
        for code in rows("TaxCode"):
            details = (code.get("SalesTaxRateList") or {}).get("TaxRateDetail") or []
            codes[code["Id"]] = [(d["TaxRateRef"]["value"], rates[d["TaxRateRef"]["value"]]) for d in details
                                 if d["TaxRateRef"]["value"] in rates]
        # names the seeder must not reuse: the parties' shared DisplayNames and the items' full names
        parties = registry.parties()
        taken: set[str] = set()
        with emu.db.read() as c:
            for entity, raw in c.execute(
                    f"SELECT entity, body FROM objects WHERE realm=? AND entity IN ({','.join('?' * len(parties))}, ?)"
                    " AND status IS NULL", (realm, *parties, "Item")):
                body = orjson.loads(raw)
                taken.add(str(body.get("DisplayName") if entity in parties else body.get("FullyQualifiedName")).lower())
        return cls(
            tz=emu.company_tz(realm),
            accounts={a["Id"]: a.get("FullyQualifiedName") or a["Name"] for a in rows("Account")},
            terms={t["Id"]: (t["Name"], int(t.get("DueDays", 0))) for t in rows("Term")},
            payment_methods={p["Id"]: p["Name"] for p in rows("PaymentMethod")},
            tax_codes=codes,
            default_terms=((prefs.get("SalesFormsPrefs") or {}).get("DefaultTerms") or {}).get("value"),
            tax_group_code=((prefs.get("TaxPrefs") or {}).get("TaxGroupCodeRef") or {}).get("value"),
            taken_names=taken,
        )


def _meta(created: float, updated: float, tz: ZoneInfo) -> dict:
    return {"CreateTime": qbo_timestamp(created, tz), "LastUpdatedTime": qbo_timestamp(updated, tz)}


def _stamp(body: dict, created: float, updated: float, tz: ZoneInfo) -> dict:
    """What the engine's write pipeline appends last: domain, sparse, MetaData (and the row's epochs)."""
    body["domain"] = "QBO"
    body["sparse"] = False
    body["MetaData"] = _meta(created, updated, tz)
    body["_created_at"] = int(created)
    body["_updated_at"] = int(updated)
    return body


ADDRESS_KEYS = ("BillAddr", "ShipAddr", "CompanyAddr", "LegalAddr", "CustomerCommunicationAddr")


def count_addresses(body: dict) -> int:
    """How many addresses of ``body`` the engine will number (the ``addr`` sequence)."""
    return sum(1 for key in ADDRESS_KEYS if isinstance(body.get(key), dict) and body[key] and not body[key].get("Id"))


def build_customer(lists: CompanyLists, body: dict, obj_id: int, parent: dict | None,
                   next_addr: Callable[[], int]) -> dict:
    """A Customer create body as the engine stores it (``engine.names.compute_name_list``), in place.

    Args:
        lists: the company's starting lists.
        body: what a client would POST (mutated into the stored body).
        obj_id: the Id reserved for it.
        parent: the stored parent customer when ``body`` has a ParentRef.
        next_addr: the next reserved address Id (each stored address gets one, in
            :data:`ADDRESS_KEYS` order).
    """
    body["Id"] = str(obj_id)
    body["SyncToken"] = "0"
    if "ParentRef" in body:
        body["ParentRef"].setdefault("name", parent["DisplayName"])
    if "SalesTermRef" in body:
        body["SalesTermRef"].setdefault("name", lists.terms[body["SalesTermRef"]["value"]][0])
    if "PaymentMethodRef" in body:
        body["PaymentMethodRef"].setdefault("name", lists.payment_methods[body["PaymentMethodRef"]["value"]])
    body.setdefault("Active", True)
    body.setdefault("PrintOnCheckName", body.get("CompanyName") or body["DisplayName"])
    body.setdefault("Balance", 0)
    body.setdefault("CurrencyRef", USD)
    if parent is not None:
        body["Job"] = True
        body["Level"] = int(parent.get("Level", 0)) + 1
        body["FullyQualifiedName"] = f'{parent.get("FullyQualifiedName", parent["DisplayName"])}:{body["DisplayName"]}'
        body.setdefault("BillWithParent", False)
    else:
        body.pop("ParentRef", None)
        body.pop("Level", None)  # QBO omits Level on top-level customers
        body["Job"] = False
        body["FullyQualifiedName"] = body["DisplayName"]
        body["BillWithParent"] = False
    body.setdefault("Taxable", False)
    body.setdefault("PreferredDeliveryMethod", "Print")
    body.setdefault("BalanceWithJobs", body.get("Balance", 0))
    for key in ADDRESS_KEYS:
        addr = body.get(key)
        if isinstance(addr, dict) and addr and not addr.get("Id"):
            addr["Id"] = str(next_addr())
    return body


def build_item(lists: CompanyLists, body: dict, obj_id: int) -> dict:
    """A Service/NonInventory Item create body as the engine stores it (``engine.names``)."""
    body["Id"] = str(obj_id)
    body["SyncToken"] = "0"
    for key in ("IncomeAccountRef", "ExpenseAccountRef", "AssetAccountRef"):
        if key in body:
            body[key].setdefault("name", lists.accounts[body[key]["value"]])
    body.setdefault("Active", True)
    body.setdefault("Type", "Service")
    body.setdefault("TrackQtyOnHand", False)
    body.setdefault("UnitPrice", 0)
    body.setdefault("PurchaseCost", 0)
    body.setdefault("Taxable", False)
    body.pop("SubItem", None)  # top-level items carry no SubItem/Level
    body.pop("Level", None)
    body["FullyQualifiedName"] = body["Name"]
    return body


def build_invoice(lists: CompanyLists, body: dict, obj_id: int, doc_number: int, customer: dict,
                  items: dict[str, dict]) -> dict:
    """An Invoice create body as the engine stores it (``engine.sales.compute_sales``), in place.

    Covers what bulk invoices use: item lines with Amount, Qty and UnitPrice, percent discounts,
    a transaction tax code (or the customer's taxable default), terms from the invoice, the
    customer or the company preference.
    """
    body["Id"] = str(obj_id)
    body["SyncToken"] = "0"
    # names the engine writes on references while validating them
    body["CustomerRef"].setdefault("name", customer["DisplayName"])
    if "SalesTermRef" in body:
        body["SalesTermRef"].setdefault("name", lists.terms[body["SalesTermRef"]["value"]][0])
    body.setdefault("CurrencyRef", USD)
    body["DocNumber"] = str(doc_number)
    out_lines: list[dict] = []
    discount_lines: list[dict] = []
    subtotal = taxable = discount = 0.0
    n = 0
    for line in body["Line"]:
        if line["DetailType"] == "DiscountLineDetail":
            discount_lines.append(line)
            continue
        n += 1
        detail = line["SalesItemLineDetail"]
        item = items[detail["ItemRef"]["value"]]
        detail["ItemRef"].setdefault("name", item["FullyQualifiedName"])
        amount = money(line["Amount"])
        line["Amount"] = amount
        if item.get("Description"):
            line.setdefault("Description", item["Description"])
        if "TaxCodeRef" not in detail:
            detail["TaxCodeRef"] = {"value": "TAX" if item.get("Taxable") else "NON"}
        subtotal += amount
        if detail["TaxCodeRef"]["value"] == "TAX":
            taxable += amount
        line["Id"] = str(n)
        line["LineNum"] = n
        out_lines.append(line)
    subtotal = money(subtotal)
    out_lines.append({"Amount": subtotal, "DetailType": "SubTotalLineDetail", "SubTotalLineDetail": {}})
    for line in discount_lines:
        n += 1
        detail = line["DiscountLineDetail"]
        amount = money(subtotal * float(detail["DiscountPercent"]) / 100)
        detail.setdefault("DiscountAccountRef", {"value": str(chart.DISCOUNTS_GIVEN), "name": "Discounts given"})
        line["Amount"] = amount
        line["Id"] = str(n)
        line["LineNum"] = n
        discount += amount
        out_lines.append(line)
    body["Line"] = out_lines
    body["ApplyTaxAfterDiscount"] = bool(body.get("ApplyTaxAfterDiscount", False))
    code_id = ((body.get("TxnTaxDetail") or {}).get("TxnTaxCodeRef") or {}).get("value")
    if code_id is None and customer.get("Taxable") and taxable > 0:
        code_id = lists.tax_group_code
    total_tax = 0.0
    if code_id:
        tax_lines = []
        for rate_id, pct in lists.tax_codes[code_id]:
            amt = money(taxable * pct / 100)
            total_tax += amt
            tax_lines.append({"Amount": amt, "DetailType": "TaxLineDetail", "TaxLineDetail": {
                "TaxRateRef": {"value": rate_id}, "PercentBased": True, "TaxPercent": pct,
                "NetAmountTaxable": taxable}})
        body["TxnTaxDetail"] = {"TxnTaxCodeRef": {"value": str(code_id)}, "TotalTax": money(total_tax),
                                "TaxLine": tax_lines}
    else:
        body["TxnTaxDetail"] = {"TotalTax": 0}
    total = money(subtotal - discount + total_tax)
    body["TotalAmt"] = total
    body["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
    if customer.get("BillAddr"):
        body.setdefault("BillAddr", dict(customer["BillAddr"]))
    if customer.get("ShipAddr"):
        body.setdefault("ShipAddr", dict(customer["ShipAddr"]))
    if customer.get("PrimaryEmailAddr"):
        body.setdefault("BillEmail", {"Address": customer["PrimaryEmailAddr"].get("Address")})
    body.setdefault("PrintStatus", "NotSet")
    body.setdefault("EmailStatus", "NotSet")
    body.setdefault("CustomField", [])
    body.setdefault("LinkedTxn", [])
    for key in ("AllowIPNPayment", "AllowOnlinePayment", "AllowOnlineCreditCardPayment", "AllowOnlineACHPayment"):
        body.setdefault(key, False)
    term_id = ((body.get("SalesTermRef") or {}).get("value") or (customer.get("SalesTermRef") or {}).get("value")
               or lists.default_terms)
    if term_id in lists.terms:
        term_name, due_days = lists.terms[term_id]
        body["SalesTermRef"] = {"value": term_id, "name": term_name}
        if not body.get("DueDate"):
            body["DueDate"] = add_days(body["TxnDate"], due_days)
    body.setdefault("DueDate", body["TxnDate"])
    body["Balance"] = total
    body["LinkedTxn"] = []
    return body


def build_payment(lists: CompanyLists, body: dict, obj_id: int, customer: dict, invoices: dict[str, dict],
                  applied: dict[str, float], ts: float) -> dict:
    """A Payment create body as the engine stores it (``engine.settlements.compute_settlement``), in place.

    Also applies the engine's side effects to the invoices it pays (``engine.settlements.relink``): each gets
    a ``Payment`` LinkedTxn, its Balance drops, its SyncToken moves up one and its
    LastUpdatedTime becomes the payment's time.

    Args:
        lists: the company's starting lists.
        body: what a client would POST (mutated into the stored body).
        obj_id: the Id reserved for it.
        customer: the stored customer.
        invoices: stored invoices by Id (the ones the payment links to must be there; mutated).
        applied: running amount applied per invoice Id (updated).
        ts: the payment's creation time (epoch).
    """
    body["Id"] = str(obj_id)
    body["SyncToken"] = "0"
    if "PaymentMethodRef" in body:
        body["PaymentMethodRef"].setdefault("name", lists.payment_methods[body["PaymentMethodRef"]["value"]])
    body.setdefault("CurrencyRef", USD)
    body["CustomerRef"] = {"value": customer["Id"], "name": customer["DisplayName"]}
    total = money(body["TotalAmt"])
    body["TotalAmt"] = total
    applied_inv = 0.0
    lines = []
    for line in body.get("Line") or []:
        amount = money(line["Amount"])
        out_line: dict[str, Any] = {"Amount": amount, "LinkedTxn": []}
        for lt in line["LinkedTxn"]:
            tid = str(lt["TxnId"])
            available = float(invoices[tid]["Balance"])
            out_line["LinkedTxn"].append({"TxnId": tid, "TxnType": "Invoice"})
            applied_inv += amount
            out_line["LineEx"] = line_ex(tid, available, invoices[tid].get("DocNumber"))
        lines.append(out_line)
    body["Line"] = lines
    body["UnappliedAmt"] = money(total - applied_inv)
    body.setdefault("DepositToAccountRef", {"value": str(chart.UNDEPOSITED_FUNDS), "name": "Undeposited Funds"})
    body.setdefault("ProcessPayment", False)
    body.pop("LinkedTxn", None)  # a payment carries LinkedTxn only once deposited
    for line in lines:
        for lt in line["LinkedTxn"]:
            inv = invoices[lt["TxnId"]]
            inv["LinkedTxn"].append({"TxnId": body["Id"], "TxnType": "Payment"})
            applied[inv["Id"]] = applied.get(inv["Id"], 0.0) + line["Amount"]
            inv["Balance"] = money(float(inv["TotalAmt"]) - applied[inv["Id"]])
            inv["SyncToken"] = str(int(inv["SyncToken"]) + 1)
            inv["MetaData"]["LastUpdatedTime"] = qbo_timestamp(ts, lists.tz)
            inv["_updated_at"] = int(ts)
    return body


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
                                "Type": typ, "UnitPrice": _plain(money(price * factor)), "Taxable": taxable}
        if typ == "Service":
            income = chart.DESIGN_INCOME if name == "Design" else chart.LANDSCAPING_SERVICES
            body["IncomeAccountRef"] = {"value": str(income)}
        else:
            body["PurchaseCost"] = _plain(money(price * factor * 0.55))
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
            built = _stamp(build_customer(self.lists, body, first + k, parent, lambda: next(addr_ids)),
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
            built = _stamp(build_item(self.lists, body, first + k), created, created, tz)
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
                body = self._invoice_input(cust["Id"], item_ids, _date(ts, tz))
                inv_inputs.append(self._record(body))
                built = _stamp(build_invoice(self.lists, body, first_id + k, first_doc + k, cust, self.items),
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
                    payments.append(_stamp(built, ts, ts, tz))
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
                                    "TxnDate": _date(ts, self.lists.tz),
                                    "PaymentMethodRef": {"value": rng.choice(("1", "2", "2", "3", "4"))},
                                    "PaymentRefNum": str(1000 + rng.randrange(90000)), "Line": lines}
            plans.append((ts, body))
            if rng.random() < 0.01:  # a retainer: received, applied to nothing yet
                rts = int(min(latest, ts + DAY))
                plans.append((rts, {"CustomerRef": {"value": cust}, "TotalAmt": float(rng.choice((100, 250, 500))),
                                    "TxnDate": _date(rts, self.lists.tz), "PaymentMethodRef": {"value": "2"},
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


__all__ = [
    "DEMO_COMPANY_NAME",
    "BulkSeeder",
    "Chunk",
    "CompanyLists",
    "build_customer",
    "build_invoice",
    "build_item",
    "build_payment",
    "count_addresses",
    "seed_company",
    "seed_demo_company",
]
