"""The entity registry: one entry per QuickBooks Online entity.

This is the project's single source of truth about entities. The emulator's routes and
validation, the warehouse tables, the Dagster assets and the outbound push order are all
derived from it, so adding an entity is one ``EntityDef`` below.

Facts come from ``shared/reference/qbo_api.md`` (section numbers in comments).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache


class Kind(StrEnum):
    """How QBO treats an entity's lifecycle."""

    NAME_LIST = "name_list"  # has Active; never deleted, only inactivated (§1.2, §4.5)
    TRANSACTION = "transaction"  # TxnDate, Line[]; deleted with operation=delete (§4.5)
    SINGLETON = "singleton"  # CompanyInfo, Preferences: one object per company


class Void(StrEnum):
    """How a transaction is voided (§1.2)."""

    NONE = "none"
    OPERATION = "operation"  # POST /invoice?operation=void
    INCLUDE = "include"  # POST /payment?operation=update&include=void


@dataclass(frozen=True)
class Ref:
    """A reference field inside an entity body, e.g. ``CustomerRef`` -> Customer.

    ``path`` is dotted from the entity root (or from a line for line refs); the referenced
    object's id is at ``<path>.value``.
    """

    path: str
    target: str | tuple[str, ...]
    required: bool = False


@dataclass(frozen=True)
class EntityDef:
    """One QBO entity and everything the project needs to know about it.

    Attributes:
        name: QBO's entity name, e.g. ``"Invoice"``; the URL segment is ``name.lower()``.
        kind: name list, transaction or singleton.
        typed_fields: fields landed as typed warehouse columns (dotted paths into the body).
        line_fields: names of child collections landed as line tables (e.g. ``("Line",)``).
        link_lines: the lines only link other documents (Payment, BillPayment: ``Amount`` +
            ``LinkedTxn``, no DetailType), so they land as a link table, one row per link.
        depends_on: entities this one references; the push order is a topological sort.
        cdc: whether QBO's change data capture returns this entity (§3).
        writable: whether the API accepts create/update for it.
        void: how (if at all) a transaction is voided.
        required: top-level fields a create must carry (fault 2020 otherwise).
        refs: reference fields checked on write (fault 2500 when they point nowhere).
        line_refs: reference fields inside lines, keyed by line DetailType.
        unique_name: the field QBO keeps unique (fault 6240), if any.
        name_scope: entities sharing one namespace for ``unique_name`` (Customer, Vendor and
            Employee share DisplayName).
        doc_number: whether QBO numbers the document (DocNumber auto-increment from 1001).
        pdf: whether ``GET /{entity}/{id}/pdf`` and ``/send`` exist.
        webhook: whether QBO webhooks report changes to it.
        push: whether the app pushes it to QBO (outbound, §mission).
    """

    name: str
    kind: Kind
    typed_fields: tuple[str, ...] = ()
    line_fields: tuple[str, ...] = ()
    link_lines: bool = False
    depends_on: tuple[str, ...] = ()
    cdc: bool = True
    writable: bool = True
    void: Void = Void.NONE
    required: tuple[str, ...] = ()
    refs: tuple[Ref, ...] = ()
    line_refs: dict[str, tuple[Ref, ...]] = field(default_factory=dict)
    unique_name: str | None = None
    name_scope: tuple[str, ...] = ()
    doc_number: bool = False
    pdf: bool = False
    webhook: bool = True
    push: bool = False

    @property
    def path(self) -> str:
        """URL segment under ``/v3/company/{realmId}/``."""
        return self.name.lower()

    @property
    def is_transaction(self) -> bool:
        return self.kind is Kind.TRANSACTION

    @property
    def is_name_list(self) -> bool:
        return self.kind is Kind.NAME_LIST

    @property
    def deletable(self) -> bool:
        """Only transactions are deleted; name lists are inactivated (§1.2)."""
        return self.kind is Kind.TRANSACTION


_NAME_FIELDS = ("Id", "SyncToken", "Active", "MetaData.CreateTime", "MetaData.LastUpdatedTime")
_TXN_FIELDS = (
    "Id",
    "SyncToken",
    "DocNumber",
    "TxnDate",
    "TotalAmt",
    "CurrencyRef.value",
    "PrivateNote",
    "MetaData.CreateTime",
    "MetaData.LastUpdatedTime",
)
_PARTY = ("Customer", "Vendor", "Employee")
_SALES_LINE_REFS = {
    "SalesItemLineDetail": (
        Ref("SalesItemLineDetail.ItemRef", "Item"),
        Ref("SalesItemLineDetail.ClassRef", "Class"),
    ),
    "DiscountLineDetail": (Ref("DiscountLineDetail.DiscountAccountRef", "Account"),),
}
_EXPENSE_LINE_REFS = {
    "AccountBasedExpenseLineDetail": (
        Ref("AccountBasedExpenseLineDetail.AccountRef", "Account", required=True),
        Ref("AccountBasedExpenseLineDetail.CustomerRef", "Customer"),
        Ref("AccountBasedExpenseLineDetail.ClassRef", "Class"),
    ),
    "ItemBasedExpenseLineDetail": (
        Ref("ItemBasedExpenseLineDetail.ItemRef", "Item", required=True),
        Ref("ItemBasedExpenseLineDetail.CustomerRef", "Customer"),
        Ref("ItemBasedExpenseLineDetail.ClassRef", "Class"),
    ),
}
_SALES_REFS = (
    Ref("CustomerRef", "Customer", required=True),
    Ref("SalesTermRef", "Term"),
    Ref("ClassRef", "Class"),
    Ref("DepartmentRef", "Department"),
    Ref("TxnTaxDetail.TxnTaxCodeRef", "TaxCode"),
)

ENTITIES: tuple[EntityDef, ...] = (
    # --- singletons -----------------------------------------------------------------
    EntityDef("CompanyInfo", Kind.SINGLETON, typed_fields=("Id", "CompanyName", "Country"),
              cdc=False, webhook=False),
    EntityDef("Preferences", Kind.SINGLETON, typed_fields=("Id",), cdc=True, webhook=True),
    # --- name lists -----------------------------------------------------------------
    EntityDef("Account", Kind.NAME_LIST,
              typed_fields=(*_NAME_FIELDS, "Name", "AcctNum", "Classification", "AccountType",
                            "AccountSubType", "CurrentBalance", "ParentRef.value"),
              required=("Name",), unique_name="Name", refs=(Ref("ParentRef", "Account"),)),
    EntityDef("TaxRate", Kind.NAME_LIST, typed_fields=(*_NAME_FIELDS, "Name", "RateValue"),
              cdc=False, writable=False, webhook=False),
    EntityDef("TaxCode", Kind.NAME_LIST, typed_fields=(*_NAME_FIELDS, "Name", "Taxable"),
              depends_on=("TaxRate",), cdc=False, writable=False, webhook=False),
    EntityDef("Term", Kind.NAME_LIST, typed_fields=(*_NAME_FIELDS, "Name", "DueDays"),
              required=("Name",), unique_name="Name"),
    EntityDef("PaymentMethod", Kind.NAME_LIST, typed_fields=(*_NAME_FIELDS, "Name", "Type"),
              required=("Name",), unique_name="Name"),
    EntityDef("Class", Kind.NAME_LIST,
              typed_fields=(*_NAME_FIELDS, "Name", "FullyQualifiedName", "ParentRef.value"),
              required=("Name",), unique_name="Name", refs=(Ref("ParentRef", "Class"),)),
    EntityDef("Department", Kind.NAME_LIST,
              typed_fields=(*_NAME_FIELDS, "Name", "FullyQualifiedName", "ParentRef.value"),
              required=("Name",), unique_name="Name", refs=(Ref("ParentRef", "Department"),)),
    EntityDef("Customer", Kind.NAME_LIST,
              typed_fields=(*_NAME_FIELDS, "DisplayName", "CompanyName", "GivenName", "FamilyName",
                            "PrimaryEmailAddr.Address", "Balance", "BalanceWithJobs", "Job",
                            "ParentRef.value", "Level", "CurrencyRef.value"),
              depends_on=("Term", "PaymentMethod"), unique_name="DisplayName",
              name_scope=_PARTY, push=True,
              refs=(Ref("ParentRef", "Customer"), Ref("SalesTermRef", "Term"),
                    Ref("PaymentMethodRef", "PaymentMethod"))),
    EntityDef("Vendor", Kind.NAME_LIST,
              typed_fields=(*_NAME_FIELDS, "DisplayName", "CompanyName", "PrimaryEmailAddr.Address",
                            "Balance", "CurrencyRef.value"),
              depends_on=("Term",), unique_name="DisplayName", name_scope=_PARTY, push=True,
              refs=(Ref("TermRef", "Term"),)),
    EntityDef("Employee", Kind.NAME_LIST,
              typed_fields=(*_NAME_FIELDS, "DisplayName", "GivenName", "FamilyName"),
              unique_name="DisplayName", name_scope=_PARTY),
    EntityDef("Item", Kind.NAME_LIST,
              typed_fields=(*_NAME_FIELDS, "Name", "Sku", "Type", "UnitPrice", "PurchaseCost",
                            "QtyOnHand", "IncomeAccountRef.value", "ParentRef.value"),
              depends_on=("Account",), required=("Name",), unique_name="Name", push=True,
              refs=(Ref("IncomeAccountRef", "Account"), Ref("ExpenseAccountRef", "Account"),
                    Ref("AssetAccountRef", "Account"), Ref("ParentRef", "Item"))),
    # --- transactions ---------------------------------------------------------------
    EntityDef("Invoice", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "CustomerRef.value", "DueDate", "Balance", "EmailStatus"),
              line_fields=("Line",), depends_on=("Customer", "Item", "Term", "TaxCode", "Account"),
              void=Void.OPERATION, required=("CustomerRef", "Line"), refs=_SALES_REFS,
              line_refs=_SALES_LINE_REFS, doc_number=True, pdf=True, push=True),
    EntityDef("Estimate", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "CustomerRef.value", "TxnStatus", "ExpirationDate"),
              line_fields=("Line",), depends_on=("Customer", "Item", "Term", "TaxCode"),
              required=("CustomerRef", "Line"), refs=_SALES_REFS, line_refs=_SALES_LINE_REFS,
              doc_number=True, pdf=True, push=True),
    EntityDef("Payment", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "CustomerRef.value", "UnappliedAmt",
                            "DepositToAccountRef.value", "PaymentRefNum"),
              line_fields=("Line",), link_lines=True,
              depends_on=("Customer", "Invoice", "CreditMemo", "PaymentMethod", "Account"),
              void=Void.INCLUDE, required=("CustomerRef", "TotalAmt"),
              refs=(Ref("CustomerRef", "Customer", required=True),
                    Ref("DepositToAccountRef", "Account"), Ref("PaymentMethodRef", "PaymentMethod"),
                    Ref("ARAccountRef", "Account"))),
    EntityDef("SalesReceipt", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "CustomerRef.value", "DepositToAccountRef.value"),
              line_fields=("Line",), depends_on=("Customer", "Item", "PaymentMethod", "Account", "TaxCode"),
              void=Void.INCLUDE, required=("Line",),
              refs=(Ref("CustomerRef", "Customer"), Ref("DepositToAccountRef", "Account"),
                    Ref("PaymentMethodRef", "PaymentMethod"), Ref("ClassRef", "Class"),
                    Ref("DepartmentRef", "Department"), Ref("TxnTaxDetail.TxnTaxCodeRef", "TaxCode")),
              line_refs=_SALES_LINE_REFS, doc_number=True, pdf=True),
    EntityDef("CreditMemo", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "CustomerRef.value", "Balance", "RemainingCredit"),
              line_fields=("Line",), depends_on=("Customer", "Item", "TaxCode"),
              void=Void.INCLUDE, required=("CustomerRef", "Line"), refs=_SALES_REFS,
              line_refs=_SALES_LINE_REFS, doc_number=True, pdf=True),
    EntityDef("RefundReceipt", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "CustomerRef.value", "DepositToAccountRef.value"),
              line_fields=("Line",), depends_on=("Customer", "Item", "Account", "PaymentMethod"),
              void=Void.INCLUDE, required=("Line", "DepositToAccountRef"),
              refs=(Ref("CustomerRef", "Customer"),
                    Ref("DepositToAccountRef", "Account", required=True),
                    Ref("PaymentMethodRef", "PaymentMethod")),
              line_refs=_SALES_LINE_REFS, doc_number=True, pdf=True),
    EntityDef("Bill", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "VendorRef.value", "DueDate", "Balance", "APAccountRef.value"),
              line_fields=("Line",), depends_on=("Vendor", "Account", "Item", "Term", "Customer"),
              required=("VendorRef", "Line"),
              refs=(Ref("VendorRef", "Vendor", required=True), Ref("APAccountRef", "Account"),
                    Ref("SalesTermRef", "Term")),
              line_refs=_EXPENSE_LINE_REFS, push=True),
    EntityDef("BillPayment", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "VendorRef.value", "PayType"),
              line_fields=("Line",), link_lines=True, depends_on=("Vendor", "Bill", "Account"),
              void=Void.INCLUDE, required=("VendorRef", "PayType", "TotalAmt"),
              refs=(Ref("VendorRef", "Vendor", required=True),
                    Ref("CheckPayment.BankAccountRef", "Account"),
                    Ref("CreditCardPayment.CCAccountRef", "Account"))),
    EntityDef("VendorCredit", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "VendorRef.value", "Balance"),
              line_fields=("Line",), depends_on=("Vendor", "Account", "Item"),
              required=("VendorRef", "Line"),
              refs=(Ref("VendorRef", "Vendor", required=True), Ref("APAccountRef", "Account")),
              line_refs=_EXPENSE_LINE_REFS),
    EntityDef("Purchase", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "PaymentType", "AccountRef.value", "EntityRef.value", "Credit"),
              line_fields=("Line",), depends_on=("Account", "Vendor", "Customer", "Employee", "Item"),
              required=("PaymentType", "AccountRef", "Line"),
              refs=(Ref("AccountRef", "Account", required=True),
                    Ref("EntityRef", ("Vendor", "Customer", "Employee")),
                    Ref("PaymentMethodRef", "PaymentMethod")),
              line_refs=_EXPENSE_LINE_REFS),
    EntityDef("Deposit", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "DepositToAccountRef.value"),
              line_fields=("Line",), depends_on=("Account", "Payment", "SalesReceipt", "Customer"),
              required=("DepositToAccountRef", "Line"),
              refs=(Ref("DepositToAccountRef", "Account", required=True),),
              line_refs={"DepositLineDetail": (Ref("DepositLineDetail.AccountRef", "Account"),
                                               Ref("DepositLineDetail.Entity", ("Customer", "Vendor", "Employee")))}),
    EntityDef("JournalEntry", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "Adjustment"),
              line_fields=("Line",), depends_on=("Account", "Customer", "Vendor", "Employee", "Class"),
              required=("Line",), doc_number=False,
              line_refs={"JournalEntryLineDetail": (
                  Ref("JournalEntryLineDetail.AccountRef", "Account", required=True),
                  Ref("JournalEntryLineDetail.ClassRef", "Class"),
                  Ref("JournalEntryLineDetail.Entity.EntityRef", ("Customer", "Vendor", "Employee")))}),
    EntityDef("TimeActivity", Kind.TRANSACTION,
              typed_fields=("Id", "SyncToken", "TxnDate", "NameOf", "Hours", "Minutes",
                            "CustomerRef.value", "EmployeeRef.value", "VendorRef.value", "ItemRef.value",
                            "BillableStatus", "MetaData.CreateTime", "MetaData.LastUpdatedTime"),
              depends_on=("Employee", "Vendor", "Customer", "Item"), required=("NameOf",),
              refs=(Ref("EmployeeRef", "Employee"), Ref("VendorRef", "Vendor"),
                    Ref("CustomerRef", "Customer"), Ref("ItemRef", "Item"))),
)


@cache
def by_name() -> dict[str, EntityDef]:
    """Entity definitions keyed by their exact QBO name."""
    return {e.name: e for e in ENTITIES}


@cache
def _by_lower() -> dict[str, EntityDef]:
    return {e.name.lower(): e for e in ENTITIES}


def get(name: str) -> EntityDef:
    """Look up an entity case-insensitively (QBO accepts ``cUstomer``).

    Raises:
        KeyError: when QBO has no such entity here.
    """
    return _by_lower()[name.lower()]


def find(name: str) -> EntityDef | None:
    """Like :func:`get` but returns ``None`` for an unknown name."""
    return _by_lower().get(name.lower())


def push_order() -> list[EntityDef]:
    """Entities the app pushes, dependencies first (a stable topological sort)."""
    pushed = [e for e in ENTITIES if e.push]
    names = {e.name for e in pushed}
    done: list[EntityDef] = []
    seen: set[str] = set()

    def visit(e: EntityDef) -> None:
        if e.name in seen:
            return
        seen.add(e.name)
        for dep in e.depends_on:
            if dep in names:
                visit(by_name()[dep])
        done.append(e)

    for e in pushed:
        visit(e)
    return done


def cdc_entities() -> list[EntityDef]:
    """Entities QBO's CDC endpoint returns (§3)."""
    return [e for e in ENTITIES if e.cdc]
