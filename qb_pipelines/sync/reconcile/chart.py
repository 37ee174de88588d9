"""The company's chart of accounts as landed: where each account sits on the statements, and
which account QuickBooks books to when a transaction names none."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from qb_pipelines.sync.reconcile.outcome import id_order


@dataclass(frozen=True)
class AccountInfo:
    """One landed account: where it sits on the statements."""

    id: str
    name: str
    account_type: str
    subtype: str
    classification: str


# Statement sections by AccountType (QBO's chart of accounts).
_PL_GROUPS = {"Income": "Income", "Cost of Goods Sold": "COGS", "Expense": "Expenses",
              "Other Income": "OtherIncome", "Other Expense": "OtherExpenses"}
_BY_CLASSIFICATION = {"Asset": "Other Current Asset", "Liability": "Other Current Liability", "Equity": "Equity",
                      "Revenue": "Income", "Expense": "Expense"}
_KNOWN_TYPES = {"Bank", "Accounts Receivable", "Other Current Asset", "Fixed Asset", "Other Asset",
                "Accounts Payable", "Credit Card", "Other Current Liability", "Long Term Liability", "Equity",
                *_PL_GROUPS}


class Chart:
    """The company's landed chart of accounts, and the default accounts QBO books to when a
    transaction does not name one (found by type and detail type, as QBO does)."""

    def __init__(self, accounts: Iterable[dict]) -> None:
        self.accounts: dict[str, AccountInfo] = {}
        self._defaults: dict[str, str | None] = {}
        for body in accounts:
            classification = body.get("Classification") or "Asset"
            account_type = body.get("AccountType") or ""
            if account_type not in _KNOWN_TYPES:
                account_type = _BY_CLASSIFICATION.get(classification, "Other Current Asset")
            ident = str(body.get("Id"))
            self.accounts[ident] = AccountInfo(ident, body.get("FullyQualifiedName") or body.get("Name") or ident,
                                               account_type, body.get("AccountSubType") or "", classification)

    def _find(self, *, subtype: str | None = None, account_type: str | None = None, name: str | None = None
              ) -> str | None:
        matches = [a for a in self.accounts.values()
                   if (subtype is None or a.subtype == subtype) and (account_type is None or a.account_type == account_type)
                   and (name is None or a.name.lower() == name.lower())]
        return min((a.id for a in matches), key=id_order) if matches else None

    def default(self, role: str) -> str | None:
        """The account QBO uses for ``role`` when the transaction names none (memoised: it is
        asked for every posting)."""
        if role not in self._defaults:
            self._defaults[role] = self._resolve_default(role)
        return self._defaults[role]

    def _resolve_default(self, role: str) -> str | None:
        finders: dict[str, list[Callable[[], str | None]]] = {
            "ar": [lambda: self._find(account_type="Accounts Receivable")],
            "ap": [lambda: self._find(account_type="Accounts Payable")],
            "undeposited": [lambda: self._find(subtype="UndepositedFunds")],
            "income": [lambda: self._find(account_type="Income", name="Services"),
                       lambda: self._find(account_type="Income")],
            "discount": [lambda: self._find(subtype="DiscountsRefundsGiven", name="Discounts given"),
                         lambda: self._find(subtype="DiscountsRefundsGiven")],
            "sales_tax": [lambda: self._find(subtype="GlobalTaxPayable"), lambda: self._find(subtype="SalesTaxPayable")],
            "cogs": [lambda: self._find(account_type="Cost of Goods Sold")],
            "inventory": [lambda: self._find(subtype="Inventory")],
            "checking": [lambda: self._find(account_type="Bank", subtype="Checking"),
                         lambda: self._find(account_type="Bank")],
            "card": [lambda: self._find(account_type="Credit Card")],
            "opening_equity": [lambda: self._find(subtype="OpeningBalanceEquity")],
            "retained": [lambda: self._find(subtype="RetainedEarnings")],
        }
        for finder in finders[role]:
            found = finder()
            if found is not None:
                return found
        return None

    def get(self, ident: str) -> AccountInfo:
        return self.accounts.get(ident) or AccountInfo(ident, f"Account {ident}", "Other Current Asset", "", "Asset")

    def ids_of_type(self, account_type: str) -> set[str]:
        return {a.id for a in self.accounts.values() if a.account_type == account_type}

    def pl_group(self, ident: str) -> str | None:
        return _PL_GROUPS.get(self.get(ident).account_type)

