"""A new company's starting lists: CompanyInfo, Preferences, the chart of accounts, tax (agency,
rates, codes), terms, payment methods and the built-in "Services" item.

What every QBO company has before anyone enters anything, with the Ids of QBO's sandbox company
(``chart.py``), so payloads read like the reference samples. Every QBO company has Item 1
"Services" (income to Account 1 "Services"): clients create their first invoice with
``ItemRef`` 1, and QBO falls back to it on a sales line that names no item.
"""

from __future__ import annotations

from qb_pipelines.emulator import chart
from qb_pipelines.emulator.db import dumps
from qb_pipelines.emulator.engine.store import Tx
from qb_pipelines.emulator.engine.values import USD

#: Objects the sequences continue after: (sequence, last Id used by the starting lists).
_SEQUENCES = (("Account", 100), ("Term", 10), ("PaymentMethod", 10), ("TaxCode", 10), ("TaxRate", 10),
              ("TaxAgency", 10), ("Item", chart.SERVICES_ITEM))


def _company_info(tx: Tx, name: str, email: str | None, meta: dict) -> dict:
    addr = {"Id": "1", "Line1": "123 Sierra Way", "City": "San Pablo", "CountrySubDivisionCode": "CA",
            "PostalCode": "87999", "Country": "US"}
    return {
        "CompanyName": name, "LegalName": name, "CompanyAddr": addr, "CustomerCommunicationAddr": addr,
        "LegalAddr": addr, "PrimaryPhone": {"FreeFormNumber": "(650)944-4444"},
        "CompanyStartDate": tx.today(), "FiscalYearStartMonth": "January", "Country": "US",
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


def _preferences(meta: dict) -> dict:
    return {
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


def _lists(meta: dict) -> list[tuple[str, int, dict]]:
    """The chart of accounts, tax rates and codes, terms and payment methods."""
    def common(obj_id: int) -> dict:
        return {"domain": "QBO", "sparse": False, "Id": str(obj_id), "SyncToken": "0", "MetaData": meta}

    rows: list[tuple[str, int, dict]] = []
    for acc_id, acc_name, cls, typ, sub in chart.ACCOUNTS:
        rows.append(("Account", acc_id, {
            "Name": acc_name, "SubAccount": False, "FullyQualifiedName": acc_name, "Active": True,
            "Classification": cls, "AccountType": typ, "AccountSubType": sub,
            "CurrentBalance": 0, "CurrentBalanceWithSubAccounts": 0, "CurrencyRef": USD,
            **common(acc_id)}))
    # the agency the sales tax rates are owed to (US companies show system-created agencies)
    rows.append(("TaxAgency", int(chart.TAX_AGENCY["Id"]), {
        "DisplayName": chart.TAX_AGENCY["DisplayName"], "TaxTrackedOnSales": True, "TaxTrackedOnPurchases": False,
        **common(int(chart.TAX_AGENCY["Id"]))}))
    rate_names = {rate[0]: rate[1] for rate in chart.TAX_RATES}
    for rate_id, rate_name, value, _acc in chart.TAX_RATES:
        rows.append(("TaxRate", rate_id, {
            "Name": rate_name, "Description": f"Sales Tax {rate_name}", "Active": True, "RateValue": value,
            "AgencyRef": {"value": chart.TAX_AGENCY["Id"]}, "SpecialTaxType": "NONE",
            "DisplayType": "ReadOnly",
            "EffectiveTaxRate": [{"RateValue": value, "EffectiveDate": "2014-01-01T00:00:00-08:00"}],
            **common(rate_id)}))
    for code_id, code_name, rate_ids in chart.TAX_CODES:
        rows.append(("TaxCode", code_id, {
            "Name": code_name, "Description": code_name, "Active": True, "Hidden": False,
            "Taxable": True, "TaxGroup": len(rate_ids) > 1,
            "SalesTaxRateList": {"TaxRateDetail": [
                {"TaxRateRef": {"value": str(r), "name": rate_names[r]},
                 "TaxTypeApplicable": "TaxOnAmount", "TaxOrder": 0} for r in rate_ids]},
            "PurchaseTaxRateList": {"TaxRateDetail": []},
            **common(code_id)}))
    for term_id, term_name, days in chart.TERMS:
        rows.append(("Term", term_id, {
            "Name": term_name, "Active": True, "Type": "STANDARD", "DueDays": days, "DiscountDays": 0,
            **common(term_id)}))
    for pm_id, pm_name, pm_type in chart.PAYMENT_METHODS:
        rows.append(("PaymentMethod", pm_id, {"Name": pm_name, "Active": True, "Type": pm_type, **common(pm_id)}))
    # the built-in item, exactly as the sample company's Item 1 reads
    rows.append(("Item", chart.SERVICES_ITEM, {
        "Name": "Services", "Active": True, "FullyQualifiedName": "Services", "Taxable": False, "UnitPrice": 0,
        "Type": "Service", "IncomeAccountRef": {"value": str(chart.SERVICES), "name": "Services"},
        "PurchaseCost": 0, "TrackQtyOnHand": False, **common(chart.SERVICES_ITEM)}))
    return rows


def bootstrap(tx: Tx, name: str, email: str | None) -> None:
    """Store a company's starting lists and start its Id sequences after them."""
    meta = {"CreateTime": tx.stamp(), "LastUpdatedTime": tx.stamp()}
    rows = [("CompanyInfo", 1, _company_info(tx, name, email, meta)), ("Preferences", 1, _preferences(meta)),
            *_lists(meta)]
    ts = int(tx.ts)
    tx.conn.executemany(
        "INSERT OR REPLACE INTO objects(realm, entity, id, active, status, created_at, updated_at, body)"
        " VALUES (?, ?, ?, 1, NULL, ?, ?, ?)",
        [(tx.realm, entity, obj_id, ts, ts, dumps(body)) for entity, obj_id, body in rows],
    )
    tx.conn.executemany("INSERT OR REPLACE INTO sequences(realm, name, value) VALUES (?, ?, ?)",
                        [(tx.realm, seq, last) for seq, last in _SEQUENCES])
