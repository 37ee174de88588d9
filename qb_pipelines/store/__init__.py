"""Storage layer: SQLAlchemy models, repositories and Alembic migrations (no Dagster, no web)."""
