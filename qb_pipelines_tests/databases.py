"""Throwaway databases for the tests: a SQLite file or a fresh PostgreSQL database, dropped after.

PostgreSQL databases are created on the server named by ``QB_TEST_POSTGRES_URL`` (default
:data:`DEFAULT_POSTGRES_URL`) through an AUTOCOMMIT connection, and dropped ``WITH (FORCE)`` when
the block ends, so a test that leaves connections open cannot leak one. When PostgreSQL cannot be
reached the test FAILS with what to do (this suite never skips: a green run must mean the
PostgreSQL paths really ran).

URLs handed out as strings are rendered with ``render_as_string(hide_password=False)``: ``str(url)``
masks the password as ``***``, which would make the URL unusable on a server that needs one.
"""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qb_pipelines.store.db import make_engine, migrate, normalize_url

#: Environment variable naming the PostgreSQL server (and a database on it to connect to) for tests.
POSTGRES_URL_ENV_VAR = "QB_TEST_POSTGRES_URL"
#: The server ``make test`` starts; its database ``test`` is only used to create the throwaway ones.
DEFAULT_POSTGRES_URL = "postgresql+psycopg2://postgres@127.0.0.1:5432/test"

Dialect = Literal["sqlite", "postgresql"]
_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,40}")


def postgres_admin_url() -> sa.URL:
    """``QB_TEST_POSTGRES_URL`` (or the default), pinned to the psycopg2 driver the project ships."""
    return normalize_url(os.environ.get(POSTGRES_URL_ENV_VAR) or DEFAULT_POSTGRES_URL)


@contextmanager
def throwaway_postgres(prefix: str = "qbp") -> Iterator[sa.URL]:
    """A fresh, empty PostgreSQL database named ``<prefix>_<random>``; yields its URL, drops it after.

    Fails the test (never skips it) when the server is not reachable.
    """
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(f"database name prefix must be lower-case letters, digits and _, not {prefix!r}")
    admin_url = postgres_admin_url()
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"{prefix}_{secrets.token_hex(6)}"
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        pytest.fail(
            f"PostgreSQL is not reachable at {admin_url.render_as_string(hide_password=True)}: {exc.orig}. "
            f"Start it (`make test` does) or point {POSTGRES_URL_ENV_VAR} at a PostgreSQL you can use."
        )
    try:
        yield admin_url.set(database=name)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@contextmanager
def throwaway_database(dialect: Dialect, tmp_dir: Path, prefix: str = "qbp") -> Iterator[str]:
    """The URL (a string, password included) of a fresh, empty database of ``dialect``.

    SQLite: the file ``<tmp_dir>/<prefix>.sqlite`` (not created yet). PostgreSQL: a database from
    :func:`throwaway_postgres`, dropped when the block ends.
    """
    if dialect == "sqlite":
        yield f"sqlite:///{Path(tmp_dir) / f'{prefix}.sqlite'}"
    elif dialect == "postgresql":
        with throwaway_postgres(prefix) as url:
            yield url.render_as_string(hide_password=False)
    else:
        raise ValueError(f"dialect must be 'sqlite' or 'postgresql', not {dialect!r}")


@contextmanager
def migrated_engine(dialect: Dialect, tmp_dir: Path, prefix: str = "qbp") -> Iterator[Engine]:
    """An engine (``store.db.make_engine``) on a :func:`throwaway_database` migrated to head."""
    with throwaway_database(dialect, tmp_dir, prefix) as url:
        engine = make_engine(url)
        try:
            migrate(engine)
            yield engine
        finally:
            engine.dispose()
