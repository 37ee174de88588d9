"""Alembic environment of the store, driven programmatically by :func:`qb_pipelines.store.db.migrate`.

The caller puts an Engine in ``config.attributes["engine"]``; there is no ``alembic.ini`` and no
URL in configuration files, so the same code migrates SQLite and PostgreSQL. SQLite runs in batch
mode so later migrations can alter tables (SQLite's ALTER TABLE is limited).
"""

from __future__ import annotations

from alembic import context

from qb_pipelines.store.db import VERSION_TABLE, make_engine
from qb_pipelines.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection=None, url=None) -> None:  # type: ignore[no-untyped-def]
    dialect = connection.dialect.name if connection is not None else str(url).split(":", 1)[0]
    context.configure(
        connection=connection,
        url=url,
        target_metadata=target_metadata,
        version_table=config.get_main_option("version_table") or VERSION_TABLE,
        render_as_batch=dialect.startswith("sqlite"),
        compare_type=True,
    )


def run_migrations_offline() -> None:
    """Emit SQL instead of executing it (``alembic upgrade --sql``)."""
    engine = config.attributes.get("engine")
    _configure(url=engine.url if engine is not None else make_engine().url)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the caller's engine, in one transaction (both dialects have transactional DDL)."""
    engine = config.attributes.get("engine") or make_engine()
    with engine.connect() as connection:
        _configure(connection=connection)
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
