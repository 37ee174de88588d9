"""The demo company's lists: customers and their jobs, vendors, employees, items, classes, departments.

Created through the engine as a QuickBooks user would enter them, in the order QBO's sample company
has them, so the Ids a client knows from the sample (Item 1 "Services", Hours 2, Freeman Sporting
Goods 7, Mark Cho 17...) name the same records here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qb_pipelines.emulator import chart
from qb_pipelines.emulator.clock import add_days
from qb_pipelines.emulator.engine.values import money
from qb_pipelines.emulator.seed.material import CITIES, STREETS

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator

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
class Demo:
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


def create_lists(d: Demo, inv_start: str) -> None:
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
                demo_job(d, job, parent)
    for job, parent in DEMO_JOBS:
        if parent not in top_level:
            demo_job(d, job, parent)

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
            je_line(amount, "Debit", account, note), je_line(amount, "Credit", chart.OPENING_BALANCE_EQUITY, note)]})


def demo_job(d: Demo, display: str, parent: str) -> None:
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


def je_line(amount: float, posting: str, account: int | str, description: str) -> dict:
    return {"Description": description, "Amount": amount, "DetailType": "JournalEntryLineDetail",
            "JournalEntryLineDetail": {"PostingType": posting, "AccountRef": {"value": str(account)}}}
