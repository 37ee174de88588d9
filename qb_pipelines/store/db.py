"""Database plumbing for the integration store: engines, sessions and migrations.

One SQLAlchemy URL (``QB_DATABASE_URL``) names the store. Without it the store is a SQLite file,
``.qb_pipelines.sqlite`` in the current working directory (the folder the command runs in), so a
laptop or the demo needs no database server; deployments point the variable at PostgreSQL.

Two details make both dialects behave the same for the connections store:

* **PostgreSQL driver**: the project ships psycopg2, and SQLAlchemy 2.1 maps a bare
  ``postgresql://`` URL to psycopg 3, so :func:`make_engine` rewrites it to ``postgresql+psycopg2``.
* **SQLite transactions**: Python's ``sqlite3`` module starts transactions lazily and only before
  writes, which breaks "lock, re-read, write" sequences. The engine takes that job over (SQLAlchemy
  documents the recipe in its SQLite dialect, "Serializable isolation / Savepoints / Transactional
  DDL"): the driver is put in autocommit mode and SQLAlchemy's ``begin`` event emits ``BEGIN``
  itself, or ``BEGIN IMMEDIATE`` when the connection carries the execution option
  :data:`SQLITE_BEGIN_OPTION` = ``"IMMEDIATE"``. ``BEGIN IMMEDIATE`` takes SQLite's write lock at
  once, which is the cross-process lock the token refresh needs (PostgreSQL uses
  ``SELECT ... FOR UPDATE`` instead). File databases run in WAL mode so readers never wait for a
  writer, with a generous busy timeout so writers queue instead of failing.

Migrations are Alembic's, configured programmatically (no ``alembic.ini``); the scripts live in
``qb_pipelines/store/migrations/`` and the version is kept in the table
:data:`VERSION_TABLE` so the store can share a database with other Alembic-managed schemas.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from qb_pipelines.config import SettingsError

#: Environment variable naming the store's SQLAlchemy URL.
DATABASE_URL_ENV_VAR = "QB_DATABASE_URL"
#: File name of the default SQLite store (in the current working directory).
DEFAULT_SQLITE_FILENAME = ".qb_pipelines.sqlite"
#: Connection execution option read by the SQLite ``begin`` hook: ``"IMMEDIATE"`` or ``"DEFERRED"``.
SQLITE_BEGIN_OPTION = "qb_sqlite_begin"
#: Alembic's version table for the store's migrations (not the default ``alembic_version``, so a
#: database shared with Dagster or the host application never mixes histories).
VERSION_TABLE = "qb_store_alembic_version"
#: How long a SQLite writer waits for the write lock before failing, in seconds. A token refresh
#: holds the lock for one HTTP round trip to Intuit (30 s timeout), so waiters must outlast that.
SQLITE_BUSY_TIMEOUT_S = 90

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def default_url() -> str:
    """The store URL: ``QB_DATABASE_URL`` or a SQLite file in the current directory."""
    url = (os.environ.get(DATABASE_URL_ENV_VAR) or "").strip()
    if url:
        return url
    return f"sqlite:///{Path.cwd() / DEFAULT_SQLITE_FILENAME}"


def normalize_url(url: str | sa.URL) -> sa.URL:
    """Parse a URL and pin PostgreSQL to the psycopg2 driver the project ships."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg2")
    return parsed


def make_engine(url: str | sa.URL | None = None, **kwargs: Any) -> Engine:
    """Create the store's engine.

    Args:
        url: SQLAlchemy URL; ``None`` means :func:`default_url` (``QB_DATABASE_URL`` or the
            default SQLite file). ``postgresql://`` is mapped to ``postgresql+psycopg2://``.
        **kwargs: passed to :func:`sqlalchemy.create_engine` (e.g. ``pool_size``).

    Returns:
        An engine whose transactions behave the same on SQLite and PostgreSQL (see module doc).
    """
    parsed = normalize_url(url if url is not None else default_url())
    if parsed.get_backend_name() == "sqlite":
        return _make_sqlite_engine(parsed, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    if parsed.get_driver_name() == "psycopg2":
        # an UPDATE run with many parameter sets (a push batch's outcomes) in pages of 100 rows, not
        # one round trip a row
        kwargs.setdefault("executemany_mode", "values_plus_batch")
    return sa.create_engine(parsed, **kwargs)


def _make_sqlite_engine(url: sa.URL, **kwargs: Any) -> Engine:
    database = url.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    if not in_memory:
        # Never create the folder: a typo in the URL would otherwise make a new, empty store that
        # every command then silently uses.
        folder = Path(database).expanduser().resolve().parent
        if not folder.is_dir():
            raise SettingsError(
                f"{DATABASE_URL_ENV_VAR} points into {folder}, which does not exist: create it "
                f"(mkdir -p {folder}) or fix the URL.")
    connect_args = dict(kwargs.pop("connect_args", {}))
    # sqlite3's own busy timeout: how long a writer waits for the write lock.
    connect_args.setdefault("timeout", SQLITE_BUSY_TIMEOUT_S)
    # Pooled connections are handed between threads; each is used by one thread at a time.
    connect_args.setdefault("check_same_thread", False)
    engine = sa.create_engine(url, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level: SQLAlchemy's begin hook below emits BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            if not in_memory:
                cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        mode = str(conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "DEFERRED")).upper()
        if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
            raise ValueError(f"{SQLITE_BEGIN_OPTION} must be DEFERRED, IMMEDIATE or EXCLUSIVE, not {mode!r}")
        conn.exec_driver_sql("BEGIN" if mode == "DEFERRED" else f"BEGIN {mode}")

    return engine


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions bound to ``engine`` that keep loaded values readable after commit."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(engine_or_url: Engine | str | sa.URL | None = None) -> Any:
    """An Alembic ``Config`` for the store's migrations, without any ``alembic.ini``.

    Args:
        engine_or_url: the database to migrate; an Engine is used as is (its connection is
            handed to ``env.py``), a URL goes through :func:`make_engine`.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("version_table", VERSION_TABLE)
    if isinstance(engine_or_url, Engine):
        config.attributes["engine"] = engine_or_url
    else:
        config.attributes["engine"] = make_engine(engine_or_url)
        config.attributes["dispose_engine"] = True
    return config


def migrate(engine_or_url: Engine | str | sa.URL | None = None, revision: str = "head") -> None:
    """Bring the store's schema up to ``revision`` (the latest by default).

    Safe to run at every start: at the target revision it changes nothing.

    Args:
        engine_or_url: an Engine, a URL, or ``None`` for :func:`default_url`.
        revision: Alembic revision to upgrade to.
    """
    from alembic import command

    config = alembic_config(engine_or_url)
    try:
        command.upgrade(config, revision)
    finally:
        if config.attributes.get("dispose_engine"):
            config.attributes["engine"].dispose()


def current_revision(engine: Engine) -> str | None:
    """The store schema's Alembic revision, or ``None`` for a database never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()
