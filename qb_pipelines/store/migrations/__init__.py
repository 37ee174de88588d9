"""Alembic migrations of the integration store (run with :func:`qb_pipelines.store.db.migrate`)."""
