"""QBO client layer: HTTP, OAuth, entities, errors, webhooks, reports. No Dagster, no SQLAlchemy."""
