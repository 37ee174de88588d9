"""Dagster definitions: thin assets, checks, sensors and schedules over ``sync`` and ``store``."""
