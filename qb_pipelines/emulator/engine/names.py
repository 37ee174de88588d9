"""Name lists: what QBO computes on customers, vendors, employees, items, accounts, classes, terms...

* parties (the registry's ``parties()``: Customer, Vendor, Employee) get a DisplayName derived from
  their name parts (6080 when there is none), PrintOnCheckName, and a Balance when they keep one;
* hierarchical lists get ``FullyQualifiedName`` ``Parent:Child`` and their ``Sub<Entity>`` flag;
  sub-customers (jobs) also get ``Job``/``Level`` and nest at most four deep;
* inactivation appends the entity's ``inactive_suffix`` to the name and reactivation removes it
  (§4.5); a party with an open balance cannot be inactivated (6000).
"""

from __future__ import annotations

from qb_pipelines.emulator import chart, faults
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.validation import check_ref, check_unique
from qb_pipelines.emulator.engine.values import USD, check_date, invalid_enum, money, number, ref_value
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef, Lines

#: The deepest a sub-customer may nest below its top-level customer (§7.2).
MAX_JOB_LEVEL = 4
_ITEM_TYPES = ("Service", "Inventory", "NonInventory", "Category", "Group")
#: Per-entity defaults QBO fills on a name list's create (fields the client may leave out).
_DEFAULTS: dict[str, dict[str, object]] = {
    "Vendor": {"Vendor1099": False},
    "Term": {"Type": "STANDARD", "DueDays": 0},
    "PaymentMethod": {"Type": "NON_CREDIT_CARD"},
    "TaxAgency": {"TaxTrackedOnSales": True, "TaxTrackedOnPurchases": False},
    "Budget": {"BudgetType": "ProfitAndLoss", "BudgetEntryType": "Monthly"},
}


def compute_name_list(tx: Tx, ent: EntityDef, body: dict, old: dict | None) -> None:
    """Fill a name list's server-side fields, then check its name is free (6240)."""
    if ent.has_active:  # a tax agency carries no Active
        body.setdefault("Active", True)
    if isinstance(body.get("Active"), str):
        body["Active"] = body["Active"].lower() == "true"
    if ent.name in registry.parties():
        _party(ent, body)
    if ent.name == "Customer":
        _customer(tx, body, old)
    elif ent.name == "Item":
        _item(tx, ent, body, old)
    elif ent.name == "Account":
        _account(tx, ent, body)
    elif ent.hierarchical:
        hierarchy(tx, ent, body)
    elif ent.lines is Lines.BUDGET:
        _budget(tx, ent, body)
    for key, value in _DEFAULTS.get(ent.name, {}).items():
        body.setdefault(key, value)
    check_unique(tx, ent, body)


def _party(ent: EntityDef, body: dict) -> None:
    """DisplayName (derived from the name parts when missing), PrintOnCheckName, Balance."""
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
    if ent.balance_field:
        body.setdefault(ent.balance_field, 0)
        body.setdefault("CurrencyRef", USD)


def _customer(tx: Tx, body: dict, old: dict | None) -> None:
    """Jobs: Job, Level, FullyQualifiedName under the parent; top-level customers omit Level (§7.2)."""
    parent_id = ref_value(body.get("ParentRef"))
    if parent_id:
        parent = tx.get("Customer", parent_id)
        if parent is None:
            raise faults.invalid_reference("ParentRef", parent_id, "Customer")
        level = int(parent.get("Level", 0)) + 1
        if level > MAX_JOB_LEVEL:
            raise faults.business("Sub-customers can be nested at most 4 levels deep.", "ParentRef")
        if old and _is_descendant(tx, parent_id, body["Id"]):
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


_BUDGET_TYPES = ("ProfitAndLoss",)
_BUDGET_PERIODS = ("Monthly", "Quarterly", "Annually")
_BUDGET_REFS = (("AccountRef", "Account", True), ("CustomerRef", "Customer", False), ("ClassRef", "Class", False),
                ("DepartmentRef", "Department", False))


def _budget(tx: Tx, ent: EntityDef, body: dict) -> None:
    """A budget: its period, its type (only ProfitAndLoss exists) and each detail's account,
    optional customer, class or department, date within the budget, and amount."""
    for field in ("StartDate", "EndDate"):
        check_date(body.get(field), field)
    if str(body["EndDate"]) < str(body["StartDate"]):
        raise faults.business("A budget's EndDate cannot be before its StartDate.", "EndDate")
    body.setdefault("BudgetType", "ProfitAndLoss")
    body.setdefault("BudgetEntryType", "Monthly")
    if body["BudgetType"] not in _BUDGET_TYPES:
        raise invalid_enum(str(body["BudgetType"]), "BudgetType")
    if body["BudgetEntryType"] not in _BUDGET_PERIODS:
        raise invalid_enum(str(body["BudgetEntryType"]), "BudgetEntryType")
    details = []
    for detail in body.get(ent.line_fields[0]) or []:
        detail = dict(detail)
        check_date(detail.get("BudgetDate"), "BudgetDetail.BudgetDate")
        if not str(body["StartDate"]) <= str(detail["BudgetDate"]) <= str(body["EndDate"]):
            raise faults.business(f"BudgetDate {detail['BudgetDate']} is outside the budget's dates.",
                                  "BudgetDetail.BudgetDate")
        for path, target, required in _BUDGET_REFS:
            check_ref(tx, detail, path, target, required, prefix="BudgetDetail.")
        detail["Amount"] = money(number(detail.get("Amount", 0), "BudgetDetail.Amount"))
        details.append(detail)
    body[ent.line_fields[0]] = details


def _is_descendant(tx: Tx, candidate: str, ancestor: str) -> bool:
    cur: str | None = candidate
    for _ in range(10):
        if cur == ancestor:
            return True
        node = tx.get("Customer", cur)
        cur = ref_value(node.get("ParentRef")) if node else None
        if not cur:
            return False
    return False


def hierarchy(tx: Tx, ent: EntityDef, body: dict, field: str = "Name") -> None:
    """``FullyQualifiedName`` and the ``Sub<Entity>`` flag of a hierarchical list (not customers)."""
    flag = f"Sub{ent.name}"  # SubAccount, SubItem, SubClass, SubDepartment
    parent_id = ref_value(body.get("ParentRef"))
    if parent_id:
        parent = tx.get(ent.name, parent_id)
        if parent is None:
            raise faults.invalid_reference("ParentRef", parent_id, ent.name)
        body[flag] = True
        body["FullyQualifiedName"] = f'{parent.get("FullyQualifiedName", parent[field])}:{body[field]}'
        if ent.name == "Item":
            body["Level"] = int(parent.get("Level", 0)) + 1
    else:
        if ent.name == "Item":
            body.pop(flag, None)  # real Item payloads carry SubItem only on sub-items
            body.pop("Level", None)
        else:
            body[flag] = False
        body["FullyQualifiedName"] = body[field]


def _item(tx: Tx, ent: EntityDef, body: dict, old: dict | None) -> None:
    typ = body.setdefault("Type", "Service")
    if typ not in _ITEM_TYPES:
        raise invalid_enum(typ, "Type")
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
    hierarchy(tx, ent, body)
    if old and old.get("Type") != typ and old.get("Type") == "Inventory":
        raise faults.business("You can't change an inventory item to another type.", "Type")


def _account(tx: Tx, ent: EntityDef, body: dict) -> None:
    """AccountType from AccountSubType (or back), Classification from the type (6010 without both)."""
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
    body["Classification"] = chart.classification(typ)
    body.setdefault("CurrencyRef", USD)
    body.setdefault("CurrentBalance", 0)
    body.setdefault("CurrentBalanceWithSubAccounts", body["CurrentBalance"])
    hierarchy(tx, ent, body)


def activation_change(tx: Tx, ent: EntityDef, old: dict, new: dict) -> str | None:
    """Inactivation renames with the entity's suffix; reactivation restores the name (§4.5).

    Returns ``"Delete"`` (the webhook operation QBO reports) when the write inactivates.
    """
    was, now = old.get("Active", True) is not False, new.get("Active", True) is not False
    field = ent.unique_name or "Name"
    suffix = ent.inactive_suffix
    if was and not now:
        if ent.balance_field and abs(float(old.get(ent.balance_field, 0) or 0)) > 0.004:
            raise faults.QBOFault(400, "ValidationFault", [faults.FaultError(
                "Delete List Has Balance Error",
                f"The entity you are trying to delete has an open balance. : This {ent.name.lower()} "
                "cannot be deleted because it has a non-zero balance", "6000", "")])
        if ent.name == "Customer":
            children = tx.conn.execute(
                "SELECT COUNT(*) FROM objects WHERE realm=? AND entity='Customer' AND active=1 AND status IS NULL"
                " AND json_extract(body, '$.ParentRef.value')=?", (tx.realm, old["Id"])).fetchone()[0]
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


def place_under(ent: EntityDef, body: dict, parent: dict) -> None:
    """A sub-record's FullyQualifiedName (and Level, where it carries one) under ``parent``."""
    field = "DisplayName" if ent.name in registry.parties() else "Name"
    body["FullyQualifiedName"] = f'{parent.get("FullyQualifiedName", parent.get(field))}:{body.get(field)}'
    if "Level" in body:
        body["Level"] = int(parent.get("Level", 0)) + 1
