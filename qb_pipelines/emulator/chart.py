"""The starting lists of every emulated company: chart of accounts, tax, terms, payment methods.

Ids follow QBO's sandbox company ("Craig's Design and Landscaping") where the reference shows
them (Undeposited Funds 4, A/P 33, Checking 35, Sales of Product Income 79, COGS 80, Inventory
Asset 81, Design income 82, A/R 84, Discounts given 86, TaxCode 2 -> TaxRate 3 at 8%), so
payloads read like the samples.
"""

from __future__ import annotations

# The built-in item every QBO company starts with ("Services", Item 1).
SERVICES_ITEM = 1

# Well-known account Ids used by computed fields and the ledger.
SERVICES = 1
UNDEPOSITED_FUNDS = 4
ACCOUNTS_PAYABLE = 33
CHECKING = 35
SAVINGS = 36
LANDSCAPING_SERVICES = 45
SALES_OF_PRODUCT_INCOME = 79
COST_OF_GOODS_SOLD = 80
INVENTORY_ASSET = 81
DESIGN_INCOME = 82
ACCOUNTS_RECEIVABLE = 84
DISCOUNTS_GIVEN = 86
SALES_TAX_PAYABLE = 89
MASTERCARD = 41
OPENING_BALANCE_EQUITY = 92
RETAINED_EARNINGS = 93
REFUNDS_TO_CUSTOMERS = 94

# (Id, Name, Classification, AccountType, AccountSubType)
ACCOUNTS: tuple[tuple[int, str, str, str, str], ...] = (
    (SERVICES, "Services", "Revenue", "Income", "ServiceFeeIncome"),
    (UNDEPOSITED_FUNDS, "Undeposited Funds", "Asset", "Other Current Asset", "UndepositedFunds"),
    (7, "Advertising", "Expense", "Expense", "AdvertisingPromotional"),
    (11, "Bank Charges", "Expense", "Expense", "BankCharges"),
    (13, "Meals and Entertainment", "Expense", "Expense", "EntertainmentMeals"),
    (15, "Equipment Rental", "Expense", "Expense", "EquipmentRental"),
    (17, "Job Expenses", "Expense", "Expense", "SuppliesMaterials"),
    (20, "Insurance", "Expense", "Expense", "Insurance"),
    (29, "Legal & Professional Fees", "Expense", "Expense", "LegalProfessionalFees"),
    (ACCOUNTS_PAYABLE, "Accounts Payable (A/P)", "Liability", "Accounts Payable", "AccountsPayable"),
    (CHECKING, "Checking", "Asset", "Bank", "Checking"),
    (SAVINGS, "Savings", "Asset", "Bank", "Savings"),
    (37, "Truck", "Asset", "Fixed Asset", "Vehicles"),
    (MASTERCARD, "Mastercard", "Liability", "Credit Card", "CreditCard"),
    (LANDSCAPING_SERVICES, "Landscaping Services", "Revenue", "Income", "ServiceFeeIncome"),
    (55, "Office Expenses", "Expense", "Expense", "OfficeGeneralAdministrativeExpenses"),
    (57, "Rent or Lease", "Expense", "Expense", "RentOrLeaseOfBuildings"),
    (59, "Utilities", "Expense", "Expense", "Utilities"),
    (SALES_OF_PRODUCT_INCOME, "Sales of Product Income", "Revenue", "Income", "SalesOfProductIncome"),
    (COST_OF_GOODS_SOLD, "Cost of Goods Sold", "Expense", "Cost of Goods Sold", "SuppliesMaterialsCogs"),
    (INVENTORY_ASSET, "Inventory Asset", "Asset", "Other Current Asset", "Inventory"),
    (DESIGN_INCOME, "Design income", "Revenue", "Income", "ServiceFeeIncome"),
    (83, "Interest Earned", "Revenue", "Other Income", "InterestEarned"),
    (ACCOUNTS_RECEIVABLE, "Accounts Receivable (A/R)", "Asset", "Accounts Receivable", "AccountsReceivable"),
    (85, "Miscellaneous", "Expense", "Other Expense", "OtherMiscellaneousExpense"),
    (DISCOUNTS_GIVEN, "Discounts given", "Revenue", "Income", "DiscountsRefundsGiven"),
    (SALES_TAX_PAYABLE, "Board of Equalization Payable", "Liability", "Other Current Liability",
     "GlobalTaxPayable"),
    (90, "Loan Payable", "Liability", "Other Current Liability", "OtherCurrentLiabilities"),
    (91, "Notes Payable", "Liability", "Long Term Liability", "OtherLongTermLiabilities"),
    (OPENING_BALANCE_EQUITY, "Opening Balance Equity", "Equity", "Equity", "OpeningBalanceEquity"),
    (RETAINED_EARNINGS, "Retained Earnings", "Equity", "Equity", "RetainedEarnings"),
    (REFUNDS_TO_CUSTOMERS, "Refunds to customers", "Revenue", "Income", "DiscountsRefundsGiven"),
)

# Natural sign of each classification: +1 when a debit raises the balance.
DEBIT_NORMAL = {"Asset": 1, "Expense": 1, "Liability": -1, "Equity": -1, "Revenue": -1}
# Classification of each AccountType (QBO derives it; an account only names its type).
CLASSIFICATIONS = {
    "Bank": "Asset", "Accounts Receivable": "Asset", "Other Current Asset": "Asset", "Fixed Asset": "Asset",
    "Other Asset": "Asset", "Accounts Payable": "Liability", "Credit Card": "Liability",
    "Other Current Liability": "Liability", "Long Term Liability": "Liability", "Equity": "Equity",
    "Income": "Revenue", "Other Income": "Revenue", "Cost of Goods Sold": "Expense", "Expense": "Expense",
    "Other Expense": "Expense",
}


def classification(account_type: str) -> str:
    """The Classification QBO derives from an AccountType (Expense for a type it does not know)."""
    return CLASSIFICATIONS.get(account_type, "Expense")


# Control accounts and the party whose Balance is their sub-ledger: a customer's Balance is its
# share of A/R, a vendor's its share of A/P (the postings carry the party on those rows).
SUBLEDGERS = {"Accounts Receivable": "Customer", "Accounts Payable": "Vendor"}

TAX_AGENCY = {"Id": "1", "DisplayName": "Board of Equalization"}
# (Id, Name, RateValue, liability account)
TAX_RATES: tuple[tuple[int, str, float, int], ...] = (
    (3, "California", 8.0, SALES_TAX_PAYABLE),
    (4, "Tucson City", 0.5, SALES_TAX_PAYABLE),
)
# (Id, Name, [rate ids])
TAX_CODES: tuple[tuple[int, str, tuple[int, ...]], ...] = (
    (2, "California", (3,)),
    (3, "Tucson", (4,)),
)
# (Id, Name, DueDays)
TERMS: tuple[tuple[int, str, int], ...] = (
    (1, "Due on receipt", 0),
    (2, "Net 10", 10),
    (3, "Net 30", 30),
    (4, "Net 60", 60),
    (5, "Net 15", 15),
)
# (Id, Name, Type)
PAYMENT_METHODS: tuple[tuple[int, str, str], ...] = (
    (1, "Cash", "NON_CREDIT_CARD"),
    (2, "Check", "NON_CREDIT_CARD"),
    (3, "Visa", "CREDIT_CARD"),
    (4, "MasterCard", "CREDIT_CARD"),
    (5, "American Express", "CREDIT_CARD"),
    (6, "Discover", "CREDIT_CARD"),
)
