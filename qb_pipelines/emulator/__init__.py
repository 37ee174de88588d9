"""The QuickBooks Online emulator: QBO v3 Accounting API and Intuit OAuth 2.0, served locally.

Imports nothing from the project but ``qb_pipelines.qbo`` vocabulary (registry, signatures).
"""
