"""Reconciliation: prove that what landed in the warehouse is what QuickBooks holds.

Each check compares one thing the warehouse says with what QBO says and returns a
:class:`CheckOutcome` (passed, a one-line description, figures in ``metadata``, the first
:data:`MAX_MISMATCHES` mismatching ids and amounts, and what would fix it). The Dagster layer
wraps them as asset checks; nothing here knows about Dagster.

The rooms, each with what it may touch:

============== ================================================================================
outcome        :class:`CheckOutcome`, the fix message, money in cents and the per-id comparison
landed         reading the warehouse: typed columns (:class:`WarehouseTable`) and raw bodies
snapshot       QBO against the warehouse per entity: :func:`completeness` (counts, ids, Active)
               and :func:`transaction_totals` (TotalAmt, Balance per id); the only room that
               calls QBO (N/1000 query pages, shared through one :class:`QBOSnapshot`)
chart          the landed chart of accounts: statement sections and default accounts
posting_rules  QuickBooks' posting rules, one step per line family (:func:`postings`)
ledger         the general ledger rebuilt from the landed transactions (:func:`build_ledger`)
report_frames  reading reports, as JSON or as flattened rows read back from the warehouse
balances       :func:`open_receivables` (AgedReceivables, BalanceSheet A/R),
               :func:`customer_balances` (CustomerBalance), :func:`open_payables` (AgedPayables,
               BalanceSheet A/P) and :func:`vendor_balances` (VendorBalance), on current balances
statements     :func:`trial_balance` (TrialBalance), :func:`profit_and_loss` (ProfitAndLoss) and
               :func:`general_ledger` (GeneralLedger: activity and beginning balances per account)
============== ================================================================================

The report checks cost no API call (the reports are passed in, as JSON or flattened). The A/R,
A/P, customer and vendor checks compare *current* balances, so run them on the latest month's reports.
"""

from qb_pipelines.sync.reconcile.balances import (
    AP_PARTY,
    AR_PARTY,
    customer_balances,
    landed_payables,
    landed_receivables,
    open_payables,
    open_receivables,
    payable_entities,
    payables_sources,
    receivable_entities,
    receivables_sources,
    vendor_balances,
)
from qb_pipelines.sync.reconcile.chart import AccountInfo, Chart
from qb_pipelines.sync.reconcile.landed import WarehouseTable, landed_bodies
from qb_pipelines.sync.reconcile.ledger import (
    LEDGER_NAME_LISTS,
    LandedLedger,
    build_ledger,
    ledger_sources,
    posting_entity_names,
)
from qb_pipelines.sync.reconcile.outcome import (
    MAX_MISMATCHES,
    TOLERANCE_CENTS,
    CheckOutcome,
    cents,
    compare_amounts,
    dollars,
    full_refresh_fix,
)
from qb_pipelines.sync.reconcile.posting_rules import Posting, UnbalancedTransaction, postings
from qb_pipelines.sync.reconcile.snapshot import (
    QBOReader,
    QBOSnapshot,
    completeness,
    qbo_snapshot,
    transaction_totals,
)
from qb_pipelines.sync.reconcile.statements import (
    computed_general_ledger,
    computed_profit_and_loss,
    computed_trial_balance,
    fiscal_year_start,
    general_ledger,
    landed_fiscal_month,
    profit_and_loss,
    trial_balance,
)

__all__ = [
    "AP_PARTY",
    "AR_PARTY",
    "LEDGER_NAME_LISTS",
    "MAX_MISMATCHES",
    "TOLERANCE_CENTS",
    "AccountInfo",
    "Chart",
    "CheckOutcome",
    "LandedLedger",
    "Posting",
    "QBOReader",
    "QBOSnapshot",
    "UnbalancedTransaction",
    "WarehouseTable",
    "build_ledger",
    "cents",
    "compare_amounts",
    "completeness",
    "computed_general_ledger",
    "computed_profit_and_loss",
    "computed_trial_balance",
    "customer_balances",
    "dollars",
    "fiscal_year_start",
    "full_refresh_fix",
    "general_ledger",
    "landed_bodies",
    "landed_fiscal_month",
    "landed_payables",
    "landed_receivables",
    "ledger_sources",
    "open_payables",
    "open_receivables",
    "payable_entities",
    "payables_sources",
    "posting_entity_names",
    "postings",
    "profit_and_loss",
    "qbo_snapshot",
    "receivable_entities",
    "receivables_sources",
    "transaction_totals",
    "trial_balance",
    "vendor_balances",
]
