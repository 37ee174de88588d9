"""The entity registry: one entry per QuickBooks Online entity.

This is the project's single source of truth about entities. The emulator's routes and
validation, the warehouse tables, the Dagster assets and the outbound push order are all
derived from it, so adding an entity is one ``EntityDef`` below.

Facts come from ``shared/reference/qbo_api.md`` (section numbers in comments).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache


class Kind(StrEnum):
    """How QBO treats an entity's lifecycle."""

    NAME_LIST = "name_list"  # has Active; never deleted, only inactivated (§1.2, §4.5)
    TRANSACTION = "transaction"  # TxnDate, Line[]; deleted with operation=delete (§4.5)
    SINGLETON = "singleton"  # CompanyInfo, Preferences: one object per company
    RECORD = "record"  # neither list nor transaction (Attachable): Id, no Active, no TxnDate; deleted
    KEYED = "keyed"  # no Id at all (ExchangeRate): identified by its ``key_fields``; set, never deleted


class Lines(StrEnum):
    """The family of a transaction's lines: what its lines carry and how they post (§2).

    The emulator computes, the warehouse lands, the quality checks test and the ledger posts each
    family one way, so they all ask the registry rather than keeping their own lists.
    """

    NONE = "none"  # no lines (name lists, singletons, TimeActivity, a RecurringTransaction wrapper)
    SALES = "sales"  # SalesItemLineDetail / DiscountLineDetail / SubTotal; tax from TxnTaxDetail
    EXPENSE = "expense"  # AccountBasedExpenseLineDetail / ItemBasedExpenseLineDetail
    LINKS = "links"  # Amount + LinkedTxn only (Payment, BillPayment): land as a link table
    DEPOSIT = "deposit"  # DepositLineDetail, or LinkedTxn to the payments deposited
    JOURNAL = "journal"  # JournalEntryLineDetail: Debit / Credit postings
    TRANSFER = "transfer"  # no lines: Amount moves between the two header accounts (``transfer_accounts``)
    BUDGET = "budget"  # BudgetDetail: an amount per account (and customer, class...) and period
    REFS = "refs"  # AttachableRef: the objects an attachment belongs to (type and Id)


class Direction(StrEnum):
    """Which way a tenant syncs an entity between the app and QuickBooks."""

    APP_TO_QBO = "app_to_qbo"
    QBO_TO_APP = "qbo_to_app"
    BOTH = "both"


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
    #: For references to an Account: the AccountTypes or Classifications QBO accepts there
    #: (a credit card payment pays a ``Credit Card`` account from a ``Bank``); empty: any.
    account_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class EntityDef:
    """One QBO entity and everything the project needs to know about it.

    Attributes:
        name: QBO's entity name, e.g. ``"Invoice"``; the URL segment is ``name.lower()``.
        kind: name list, transaction or singleton.
        typed_fields: fields landed as typed warehouse columns (dotted paths into the body).
        line_fields: names of child collections landed as line tables (e.g. ``("Line",)``).
        lines: the family of the lines (sales, expense, links, deposit, journal); ``LINKS``
            lines only link other documents (``Amount`` + ``LinkedTxn``, no DetailType), so they
            land as a link table, one row per link.
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
        party: the name list a transaction's header names as its counterparty
            (``CustomerRef`` -> Customer, ``VendorRef`` -> Vendor); ``None`` when it has none or
            may name several kinds (Purchase's ``EntityRef``).
        posts_to_ledger: whether the transaction posts to the books (Estimate and TimeActivity
            do not); the ledger, the trial balance and the P&L checks read these.
        balance_field: the open balance QBO maintains on the object (``Balance`` of an invoice,
            a bill, a customer), ``None`` when it keeps none.
        party_sign: how the transaction moves its party's ``Balance`` (+1 an invoice or bill,
            -1 a credit or a payment, 0 none).
        stock_sign: how the transaction moves an inventory item's ``QtyOnHand`` (-1 sold, +1
            bought or returned, 0 none).
        hierarchical: a name list with ``ParentRef`` / ``FullyQualifiedName`` (sub-customers,
            sub-accounts, sub-items, sub-classes, sub-departments).
        inactive_suffix: what QBO appends to the name of an inactivated object.
        directions: the directions a tenant may choose for it; empty when it only lands
            (QuickBooks to warehouse) and never reaches the app.
        default_direction: the direction a new tenant starts with (one of ``directions``).
        wire_name: the key QBO wraps the object in and lists it under in query and CDC answers,
            when it is not ``name`` (a CreditCardPayment answers as ``CreditCardPaymentTxn``).
        transfer_accounts: for ``Lines.TRANSFER``: the header references of the account the
            money arrives in and of the one it leaves (a Transfer's ``ToAccountRef`` and
            ``FromAccountRef``); the ledger debits the first and credits the second by ``Amount``.
        key_fields: for ``Kind.KEYED``: the fields that identify an object QBO gives no Id
            (an exchange rate: source currency, target currency, as-of date).
        wraps: the transaction types an object of this entity wraps (a RecurringTransaction is
            ``{"Invoice": {...}}``, the template of one transaction of those types).
        status: ``(field, open, closed)``: the state QBO keeps on a non-posting document that
            becomes a posting one (an estimate an invoice, a purchase order a bill); the
            document made from it links it and closes it, unlinking reopens it.
    """

    name: str
    kind: Kind
    typed_fields: tuple[str, ...] = ()
    line_fields: tuple[str, ...] = ()
    lines: Lines = Lines.NONE
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
    party: str | None = None
    posts_to_ledger: bool = False
    balance_field: str | None = None
    party_sign: int = 0
    stock_sign: int = 0
    hierarchical: bool = False
    inactive_suffix: str = " (Deleted)"
    directions: tuple[Direction, ...] = ()
    default_direction: Direction | None = None
    wire_name: str | None = None
    transfer_accounts: tuple[str, str] | tuple[()] = ()
    key_fields: tuple[str, ...] = ()
    wraps: tuple[str, ...] = ()
    status: tuple[str, str, str] | tuple[()] = ()

    def __post_init__(self) -> None:
        if (self.default_direction is None) != (not self.directions) or (
            self.default_direction is not None and self.default_direction not in self.directions
        ):
            raise ValueError(f"{self.name}: default_direction must be one of directions")
        if bool(self.transfer_accounts) != (self.lines is Lines.TRANSFER):
            raise ValueError(f"{self.name}: Lines.TRANSFER and transfer_accounts go together")
        if bool(self.key_fields) != (self.kind is Kind.KEYED):
            raise ValueError(f"{self.name}: Kind.KEYED and key_fields go together")

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
    def link_lines(self) -> bool:
        """Lines that only link other documents land as a link table (Payment, BillPayment)."""
        return self.lines is Lines.LINKS

    @property
    def push(self) -> bool:
        """Whether the app may push it to QBO (some allowed direction goes app to QuickBooks)."""
        return Direction.APP_TO_QBO in self.directions or Direction.BOTH in self.directions

    @property
    def to_app(self) -> bool:
        """Whether QBO's changes to it may flow back to the app (the change feed)."""
        return Direction.QBO_TO_APP in self.directions or Direction.BOTH in self.directions

    @property
    def deletable(self) -> bool:
        """Transactions and records (attachments) are deleted; name lists are inactivated (§1.2)."""
        return self.kind in (Kind.TRANSACTION, Kind.RECORD)

    @property
    def json_key(self) -> str:
        """The key QBO's answers use for it: ``{"<json_key>": {...}}``, ``QueryResponse.<json_key>``."""
        return self.wire_name or self.name

    @property
    def has_active(self) -> bool:
        """Name lists whose objects carry ``Active`` (all but TaxAgency): QBO answers active rows
        only unless a query mentions it, so reading them all needs ``Active IN (true, false)``."""
        return self.is_name_list and "Active" in self.typed_fields

    @property
    def total_field(self) -> str:
        """The field holding what a transaction is worth: ``Amount`` for transfers, else ``TotalAmt``."""
        return "Amount" if self.lines is Lines.TRANSFER else "TotalAmt"

    @property
    def order_key(self) -> str:
        """What a full read pages in a stable order by: the Id, or the key of an entity without one."""
        return ", ".join(self.key_fields) if self.key_fields else "Id"

    def fields_of(self, obj: dict) -> dict:
        """The object's own fields: a wrapper (``{"Invoice": {...}}``) gives the wrapped object
        plus ``Type`` (its type name, which QBO lets queries filter on); others give ``obj``."""
        if self.wraps and "Id" not in obj:
            for key, inner in obj.items():
                if key in self.wraps and isinstance(inner, dict):
                    return {**inner, "Type": key}
        return obj

    def identity(self, obj: dict) -> str | None:
        """The Id an object is known by: its ``Id``, the wrapped object's, or, for an entity QBO
        gives no Id, its key fields joined by ``:`` (``EUR:USD:2024-01-31``). None when absent."""
        if self.key_fields:
            parts = [obj.get(f) for f in self.key_fields]
            return None if any(p in (None, "") for p in parts) else ":".join(str(p) for p in parts)
        ident = self.fields_of(obj).get("Id")
        return None if ident in (None, "") else str(ident)


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
_ANY_WAY = (Direction.APP_TO_QBO, Direction.QBO_TO_APP, Direction.BOTH)
#: The app's own documents: a QuickBooks-only direction would leave them unsynced.
_DOCUMENT_WAYS = (Direction.APP_TO_QBO, Direction.BOTH)
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
              required=("Name",), unique_name="Name", hierarchical=True, refs=(Ref("ParentRef", "Account"),)),
    # TaxAgency: the agency a tax rate is owed to. Created by POST (no update or delete in QBO's
    # reference, so the generic update is left as the only extra); no Active field; CDC does not
    # cover it (§3) but webhooks report it (§9.1). US companies start with their state's agency.
    EntityDef("TaxAgency", Kind.NAME_LIST,
              typed_fields=("Id", "SyncToken", "DisplayName", "TaxTrackedOnSales", "TaxTrackedOnPurchases",
                            "TaxRegistrationNumber", "LastFileDate", "MetaData.CreateTime",
                            "MetaData.LastUpdatedTime"),
              required=("DisplayName",), unique_name="DisplayName", cdc=False),
    EntityDef("TaxRate", Kind.NAME_LIST, typed_fields=(*_NAME_FIELDS, "Name", "RateValue", "AgencyRef.value"),
              depends_on=("TaxAgency",), cdc=False, writable=False, webhook=False),
    EntityDef("TaxCode", Kind.NAME_LIST, typed_fields=(*_NAME_FIELDS, "Name", "Taxable"),
              depends_on=("TaxRate",), cdc=False, writable=False, webhook=False),
    EntityDef("Term", Kind.NAME_LIST, typed_fields=(*_NAME_FIELDS, "Name", "DueDays"),
              required=("Name",), unique_name="Name"),
    EntityDef("PaymentMethod", Kind.NAME_LIST, typed_fields=(*_NAME_FIELDS, "Name", "Type"),
              required=("Name",), unique_name="Name"),
    EntityDef("Class", Kind.NAME_LIST,
              typed_fields=(*_NAME_FIELDS, "Name", "FullyQualifiedName", "ParentRef.value"),
              required=("Name",), unique_name="Name", hierarchical=True, refs=(Ref("ParentRef", "Class"),)),
    EntityDef("Department", Kind.NAME_LIST,
              typed_fields=(*_NAME_FIELDS, "Name", "FullyQualifiedName", "ParentRef.value"),
              required=("Name",), unique_name="Name", hierarchical=True, refs=(Ref("ParentRef", "Department"),)),
    EntityDef("Customer", Kind.NAME_LIST,
              typed_fields=(*_NAME_FIELDS, "DisplayName", "CompanyName", "GivenName", "FamilyName",
                            "PrimaryEmailAddr.Address", "Balance", "BalanceWithJobs", "Job",
                            "ParentRef.value", "Level", "CurrencyRef.value"),
              depends_on=("Term", "PaymentMethod"), unique_name="DisplayName",
              name_scope=_PARTY, balance_field="Balance", hierarchical=True, inactive_suffix=" (deleted)",
              directions=_ANY_WAY, default_direction=Direction.BOTH,
              refs=(Ref("ParentRef", "Customer"), Ref("SalesTermRef", "Term"),
                    Ref("PaymentMethodRef", "PaymentMethod"))),
    EntityDef("Vendor", Kind.NAME_LIST,
              typed_fields=(*_NAME_FIELDS, "DisplayName", "CompanyName", "PrimaryEmailAddr.Address",
                            "Balance", "CurrencyRef.value"),
              depends_on=("Term",), unique_name="DisplayName", name_scope=_PARTY, balance_field="Balance",
              directions=_ANY_WAY, default_direction=Direction.APP_TO_QBO,
              refs=(Ref("TermRef", "Term"),)),
    EntityDef("Employee", Kind.NAME_LIST,
              typed_fields=(*_NAME_FIELDS, "DisplayName", "GivenName", "FamilyName"),
              unique_name="DisplayName", name_scope=_PARTY),
    EntityDef("Item", Kind.NAME_LIST,
              typed_fields=(*_NAME_FIELDS, "Name", "Sku", "Type", "UnitPrice", "PurchaseCost",
                            "QtyOnHand", "IncomeAccountRef.value", "ParentRef.value"),
              depends_on=("Account",), required=("Name",), unique_name="Name", hierarchical=True,
              directions=_ANY_WAY, default_direction=Direction.APP_TO_QBO,
              refs=(Ref("IncomeAccountRef", "Account"), Ref("ExpenseAccountRef", "Account"),
                    Ref("AssetAccountRef", "Account"), Ref("ParentRef", "Item"))),
    # --- transactions ---------------------------------------------------------------
    EntityDef("Invoice", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "CustomerRef.value", "DueDate", "Balance", "EmailStatus"),
              line_fields=("Line",), lines=Lines.SALES, depends_on=("Customer", "Item", "Term", "TaxCode", "Account"),
              void=Void.OPERATION, required=("CustomerRef", "Line"), refs=_SALES_REFS,
              line_refs=_SALES_LINE_REFS, doc_number=True, pdf=True, party="Customer", posts_to_ledger=True,
              balance_field="Balance", party_sign=1, stock_sign=-1,
              directions=_DOCUMENT_WAYS, default_direction=Direction.APP_TO_QBO),
    EntityDef("Estimate", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "CustomerRef.value", "TxnStatus", "ExpirationDate"),
              line_fields=("Line",), lines=Lines.SALES, depends_on=("Customer", "Item", "Term", "TaxCode"),
              required=("CustomerRef", "Line"), refs=_SALES_REFS, line_refs=_SALES_LINE_REFS,
              doc_number=True, pdf=True, party="Customer", status=("TxnStatus", "Pending", "Closed"),
              directions=_DOCUMENT_WAYS, default_direction=Direction.APP_TO_QBO),
    EntityDef("Payment", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "CustomerRef.value", "UnappliedAmt",
                            "DepositToAccountRef.value", "PaymentRefNum"),
              line_fields=("Line",), lines=Lines.LINKS,
              depends_on=("Customer", "Invoice", "CreditMemo", "PaymentMethod", "Account"),
              void=Void.INCLUDE, required=("CustomerRef", "TotalAmt"), party="Customer", posts_to_ledger=True,
              party_sign=-1, directions=(Direction.QBO_TO_APP,), default_direction=Direction.QBO_TO_APP,
              refs=(Ref("CustomerRef", "Customer", required=True),
                    Ref("DepositToAccountRef", "Account"), Ref("PaymentMethodRef", "PaymentMethod"),
                    Ref("ARAccountRef", "Account"))),
    EntityDef("SalesReceipt", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "CustomerRef.value", "DepositToAccountRef.value"),
              line_fields=("Line",), lines=Lines.SALES,
              depends_on=("Customer", "Item", "PaymentMethod", "Account", "TaxCode"),
              void=Void.INCLUDE, required=("Line",), party="Customer", posts_to_ledger=True, stock_sign=-1,
              refs=(Ref("CustomerRef", "Customer"), Ref("DepositToAccountRef", "Account"),
                    Ref("PaymentMethodRef", "PaymentMethod"), Ref("ClassRef", "Class"),
                    Ref("DepartmentRef", "Department"), Ref("TxnTaxDetail.TxnTaxCodeRef", "TaxCode")),
              line_refs=_SALES_LINE_REFS, doc_number=True, pdf=True),
    EntityDef("CreditMemo", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "CustomerRef.value", "Balance", "RemainingCredit"),
              line_fields=("Line",), lines=Lines.SALES, depends_on=("Customer", "Item", "TaxCode"),
              void=Void.INCLUDE, required=("CustomerRef", "Line"), refs=_SALES_REFS,
              line_refs=_SALES_LINE_REFS, doc_number=True, pdf=True, party="Customer", posts_to_ledger=True,
              balance_field="Balance", party_sign=-1, stock_sign=1),
    EntityDef("RefundReceipt", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "CustomerRef.value", "DepositToAccountRef.value"),
              line_fields=("Line",), lines=Lines.SALES, depends_on=("Customer", "Item", "Account", "PaymentMethod"),
              void=Void.INCLUDE, required=("Line", "DepositToAccountRef"), party="Customer", posts_to_ledger=True,
              stock_sign=1,
              refs=(Ref("CustomerRef", "Customer"),
                    Ref("DepositToAccountRef", "Account", required=True),
                    Ref("PaymentMethodRef", "PaymentMethod")),
              line_refs=_SALES_LINE_REFS, doc_number=True, pdf=True),
    EntityDef("Bill", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "VendorRef.value", "DueDate", "Balance", "APAccountRef.value"),
              line_fields=("Line",), lines=Lines.EXPENSE, depends_on=("Vendor", "Account", "Item", "Term", "Customer"),
              required=("VendorRef", "Line"), party="Vendor", posts_to_ledger=True, balance_field="Balance",
              party_sign=1, stock_sign=1, directions=_DOCUMENT_WAYS, default_direction=Direction.APP_TO_QBO,
              refs=(Ref("VendorRef", "Vendor", required=True), Ref("APAccountRef", "Account"),
                    Ref("SalesTermRef", "Term")),
              line_refs=_EXPENSE_LINE_REFS),
    EntityDef("BillPayment", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "VendorRef.value", "PayType"),
              line_fields=("Line",), lines=Lines.LINKS, depends_on=("Vendor", "Bill", "Account"),
              void=Void.INCLUDE, required=("VendorRef", "PayType", "TotalAmt"), party="Vendor",
              posts_to_ledger=True, party_sign=-1,
              refs=(Ref("VendorRef", "Vendor", required=True),
                    Ref("CheckPayment.BankAccountRef", "Account"),
                    Ref("CreditCardPayment.CCAccountRef", "Account"))),
    EntityDef("VendorCredit", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "VendorRef.value", "Balance"),
              line_fields=("Line",), lines=Lines.EXPENSE, depends_on=("Vendor", "Account", "Item"),
              required=("VendorRef", "Line"), party="Vendor", posts_to_ledger=True, balance_field="Balance",
              party_sign=-1, stock_sign=-1,
              refs=(Ref("VendorRef", "Vendor", required=True), Ref("APAccountRef", "Account")),
              line_refs=_EXPENSE_LINE_REFS),
    EntityDef("Purchase", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "PaymentType", "AccountRef.value", "EntityRef.value", "Credit"),
              line_fields=("Line",), lines=Lines.EXPENSE,
              depends_on=("Account", "Vendor", "Customer", "Employee", "Item"),
              required=("PaymentType", "AccountRef", "Line"), posts_to_ledger=True, stock_sign=1,
              refs=(Ref("AccountRef", "Account", required=True),
                    Ref("EntityRef", ("Vendor", "Customer", "Employee")),
                    Ref("PaymentMethodRef", "PaymentMethod")),
              line_refs=_EXPENSE_LINE_REFS),
    EntityDef("Deposit", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "DepositToAccountRef.value"),
              line_fields=("Line",), lines=Lines.DEPOSIT, depends_on=("Account", "Payment", "SalesReceipt", "Customer"),
              required=("DepositToAccountRef", "Line"), posts_to_ledger=True,
              refs=(Ref("DepositToAccountRef", "Account", required=True),),
              line_refs={"DepositLineDetail": (Ref("DepositLineDetail.AccountRef", "Account"),
                                               Ref("DepositLineDetail.Entity", ("Customer", "Vendor", "Employee")))}),
    EntityDef("JournalEntry", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "Adjustment"),
              line_fields=("Line",), lines=Lines.JOURNAL,
              depends_on=("Account", "Customer", "Vendor", "Employee", "Class"),
              required=("Line",), doc_number=False, posts_to_ledger=True,
              line_refs={"JournalEntryLineDetail": (
                  Ref("JournalEntryLineDetail.AccountRef", "Account", required=True),
                  Ref("JournalEntryLineDetail.ClassRef", "Class"),
                  Ref("JournalEntryLineDetail.Entity.EntityRef", ("Customer", "Vendor", "Employee")))}),
    # PurchaseOrder: a non-posting vendor document (no A/P, no stock until billed); the bill made
    # from it links it and closes it (POStatus Open -> Closed). APAccountRef is in QBO's minimum
    # required elements for a create. Void is not offered for it; delete is.
    EntityDef("PurchaseOrder", Kind.TRANSACTION,
              typed_fields=(*_TXN_FIELDS, "VendorRef.value", "APAccountRef.value", "POStatus", "DueDate",
                            "EmailStatus"),
              line_fields=("Line",), lines=Lines.EXPENSE, depends_on=("Vendor", "Account", "Item", "Customer", "Term"),
              required=("VendorRef", "APAccountRef", "Line"), doc_number=True, pdf=True, party="Vendor",
              status=("POStatus", "Open", "Closed"),
              refs=(Ref("VendorRef", "Vendor", required=True),
                    Ref("APAccountRef", "Account", required=True, account_types=("Accounts Payable",)),
                    Ref("SalesTermRef", "Term"), Ref("ClassRef", "Class"), Ref("ShipTo", "Customer")),
              line_refs=_EXPENSE_LINE_REFS),
    # Transfer: money moved between two of the company's asset accounts (QBO's reference: both
    # accounts must be classified Asset, and they must differ).
    EntityDef("Transfer", Kind.TRANSACTION,
              typed_fields=("Id", "SyncToken", "TxnDate", "Amount", "FromAccountRef.value", "ToAccountRef.value",
                            "CurrencyRef.value", "PrivateNote", "MetaData.CreateTime", "MetaData.LastUpdatedTime"),
              lines=Lines.TRANSFER, depends_on=("Account",), required=("FromAccountRef", "ToAccountRef", "Amount"),
              posts_to_ledger=True, transfer_accounts=("ToAccountRef", "FromAccountRef"),
              refs=(Ref("FromAccountRef", "Account", required=True, account_types=("Asset",)),
                    Ref("ToAccountRef", "Account", required=True, account_types=("Asset",)))),
    # CreditCardPayment: paying down a credit card from a bank account ("a more limited Transfer").
    # Served at /creditcardpayment but named CreditCardPaymentTxn in every answer. CDC: QBO's CDC
    # covers every entity but five (§3), so this one too [uncertain]; QBO's webhook entity list
    # (§9.1) does not name it, so no webhook.
    EntityDef("CreditCardPayment", Kind.TRANSACTION,
              typed_fields=("Id", "SyncToken", "TxnDate", "Amount", "BankAccountRef.value",
                            "CreditCardAccountRef.value", "VendorRef.value", "CheckNum", "PrintStatus",
                            "CurrencyRef.value", "PrivateNote", "MetaData.CreateTime", "MetaData.LastUpdatedTime"),
              lines=Lines.TRANSFER, depends_on=("Account", "Vendor"),
              required=("BankAccountRef", "CreditCardAccountRef", "Amount"), posts_to_ledger=True, webhook=False,
              wire_name="CreditCardPaymentTxn", transfer_accounts=("CreditCardAccountRef", "BankAccountRef"),
              refs=(Ref("BankAccountRef", "Account", required=True, account_types=("Bank",)),
                    Ref("CreditCardAccountRef", "Account", required=True, account_types=("Credit Card",)),
                    Ref("VendorRef", "Vendor"))),
    # RecurringTransaction: a schedule and the template of one transaction, answered wrapped in the
    # template's type ({"Invoice": {..., "RecurringInfo": {...}}}); templates never post. CDC covers
    # it by the rule of §3 (every entity but five) [uncertain]; QBO's webhook list does not name it.
    EntityDef("RecurringTransaction", Kind.TRANSACTION,
              typed_fields=("Id", "SyncToken", "Type", "RecurringInfo.Name", "RecurringInfo.RecurType",
                            "RecurringInfo.Active", "RecurringInfo.ScheduleInfo.IntervalType",
                            "RecurringInfo.ScheduleInfo.NumInterval", "RecurringInfo.ScheduleInfo.NextDate",
                            "RecurDataRef.value", "TotalAmt", "CurrencyRef.value", "MetaData.CreateTime",
                            "MetaData.LastUpdatedTime"),
              depends_on=("Customer", "Vendor", "Item", "Account"), webhook=False,
              wraps=("Bill", "Purchase", "CreditMemo", "Deposit", "Estimate", "Invoice", "JournalEntry",
                     "RefundReceipt", "SalesReceipt", "Transfer", "VendorCredit", "PurchaseOrder")),
    EntityDef("TimeActivity", Kind.TRANSACTION,
              typed_fields=("Id", "SyncToken", "TxnDate", "NameOf", "Hours", "Minutes",
                            "CustomerRef.value", "EmployeeRef.value", "VendorRef.value", "ItemRef.value",
                            "BillableStatus", "MetaData.CreateTime", "MetaData.LastUpdatedTime"),
              depends_on=("Employee", "Vendor", "Customer", "Item"), required=("NameOf",),
              refs=(Ref("EmployeeRef", "Employee"), Ref("VendorRef", "Vendor"),
                    Ref("CustomerRef", "Customer"), Ref("ItemRef", "Item"))),
    # --- other objects -----------------------------------------------------------------
    # Budget: an amount per account and month. Read through the API (python-quickbooks: "cannot be
    # created or updated via the QuickBooks API"; the 2026 reference also lists create, update and
    # delete, which this project does not rely on): a QuickBooks user sets budgets up. Has Active;
    # CDC and webhooks cover it (§3, §9.1).
    EntityDef("Budget", Kind.NAME_LIST,
              typed_fields=(*_NAME_FIELDS, "Name", "StartDate", "EndDate", "BudgetType", "BudgetEntryType"),
              line_fields=("BudgetDetail",), lines=Lines.BUDGET, depends_on=("Account", "Customer", "Class"),
              writable=False, required=("Name", "StartDate", "EndDate"), unique_name="Name"),
    # ExchangeRate: the rate of a currency to the home currency on a date, set by POST
    # /exchangerate and read with GET /exchangerate?sourcecurrencycode=&asofdate= or a query. It has
    # no Id: the warehouse keys it by source, target and date. Not covered by CDC nor webhooks
    # (QBO lists neither for it), so every landing re-reads it with one query.
    EntityDef("ExchangeRate", Kind.KEYED,
              typed_fields=("SyncToken", "SourceCurrencyCode", "TargetCurrencyCode", "AsOfDate", "Rate",
                            "MetaData.LastUpdatedTime"),
              required=("SourceCurrencyCode", "Rate", "AsOfDate"), cdc=False, webhook=False,
              key_fields=("SourceCurrencyCode", "TargetCurrencyCode", "AsOfDate")),
    # Attachable: a note or a file's metadata (name, content type, size) linked to other objects by
    # AttachableRef. The files themselves (/upload, /download) are not landed. CDC covers it (§3);
    # QBO's webhook list does not name it.
    EntityDef("Attachable", Kind.RECORD,
              typed_fields=("Id", "SyncToken", "FileName", "Note", "Category", "ContentType", "Size",
                            "MetaData.CreateTime", "MetaData.LastUpdatedTime"),
              line_fields=("AttachableRef",), lines=Lines.REFS, webhook=False),
)


@cache
def by_name() -> dict[str, EntityDef]:
    """Entity definitions keyed by their exact QBO name."""
    return {e.name: e for e in ENTITIES}


@cache
def _by_lower() -> dict[str, EntityDef]:
    # QBO's wire names are accepted too (a CDC block of ``CreditCardPaymentTxn``)
    names = {e.wire_name.lower(): e for e in ENTITIES if e.wire_name}
    return {**names, **{e.name.lower(): e for e in ENTITIES}}


def get(name: str) -> EntityDef:
    """Look up an entity case-insensitively (QBO accepts ``cUstomer``).

    Raises:
        KeyError: when QBO has no such entity here.
    """
    return _by_lower()[name.lower()]


def find(name: str) -> EntityDef | None:
    """Like :func:`get` but returns ``None`` for an unknown name."""
    return _by_lower().get(name.lower())


def dependencies_first(entities: Iterable[EntityDef]) -> list[EntityDef]:
    """``entities`` in their order, each moved after those of them it depends on (a stable
    topological sort; dependencies outside ``entities`` are ignored)."""
    chosen = list(entities)
    names = {e.name for e in chosen}
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

    for e in chosen:
        visit(e)
    return done


def push_order() -> list[EntityDef]:
    """Entities the app pushes, dependencies first (a stable topological sort)."""
    return dependencies_first(e for e in ENTITIES if e.push)


def with_lines(*families: Lines) -> tuple[EntityDef, ...]:
    """Transactions whose lines are of one of ``families`` (``with_lines(Lines.SALES)``)."""
    return tuple(e for e in ENTITIES if e.lines in families)


def posting_entities() -> tuple[EntityDef, ...]:
    """Transactions that post to the books, in registry order."""
    return tuple(e for e in ENTITIES if e.posts_to_ledger)


def parties() -> tuple[str, ...]:
    """The name lists that share one DisplayName namespace (Customer, Vendor, Employee)."""
    return tuple(dict.fromkeys(n for e in ENTITIES for n in e.name_scope))


def cdc_entities() -> list[EntityDef]:
    """Entities QBO's CDC endpoint returns (§3)."""
    return [e for e in ENTITIES if e.cdc]
