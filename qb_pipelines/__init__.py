"""qb_pipelines: a Dagster-native QuickBooks Online integration."""

__version__ = "0.1.0"
