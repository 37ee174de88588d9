"""Sync logic: plans, merges and reconciliation maths, plain Python (no Dagster, no web)."""
