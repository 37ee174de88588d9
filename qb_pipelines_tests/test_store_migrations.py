"""The store's schema: Alembic migrations create it from scratch on SQLite and PostgreSQL, running
them again changes nothing, the models match the migrations exactly, and the migration scripts
ship with the package."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Engine

from qb_pipelines.store import db
from qb_pipelines.store.models import Base
from qb_pipelines_tests.databases import throwaway_postgres

STORE_TABLES = {
    "qb_tenants",
    "qb_connections",
    "qb_integration_settings",
    "qb_entity_mappings",
    "qb_admin_users",
    "qb_api_usage",
    "qb_connection_events",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty database of each dialect (PostgreSQL as a plain ``postgresql://`` URL)."""
    if request.param == "sqlite":
        # the folder exists: the store never creates one for a SQLite URL (a typo would hide the real store)
        (tmp_path / "nested").mkdir()
        yield f"sqlite:///{tmp_path / 'nested' / 'store.sqlite'}"
    else:
        with throwaway_postgres() as url:
            yield url.set(drivername="postgresql").render_as_string(hide_password=False)


def _tables(engine: Engine) -> set[str]:
    return set(sa.inspect(engine).get_table_names())


def _head() -> str:
    """The latest revision (later issues add migrations after ``0001_connections``)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(db.alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def test_migrate_creates_everything_from_scratch_and_again_is_a_no_op(empty_url: str) -> None:
    db.migrate(empty_url)  # by URL: make_engine maps postgresql:// to psycopg2, creates SQLite's folder
    engine = db.make_engine(empty_url)
    try:
        assert engine.dialect.driver in ("pysqlite", "psycopg2")
        tables = _tables(engine)
        assert STORE_TABLES | {db.VERSION_TABLE} <= tables
        assert db.current_revision(engine) == _head()
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO qb_tenants (key, name, created_at) VALUES ('t1', 'Kept', CURRENT_TIMESTAMP)"))
        db.migrate(engine)  # by Engine, a second time
        assert db.current_revision(engine) == _head()
        assert _tables(engine) == tables
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT name FROM qb_tenants")).scalars().all() == ["Kept"]
            assert conn.execute(sa.text(f"SELECT count(*) FROM {db.VERSION_TABLE}")).scalar_one() == 1
    finally:
        engine.dispose()


def test_models_match_the_migrations(empty_url: str) -> None:
    engine = db.make_engine(empty_url)
    try:
        db.migrate(engine)
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={
                    "compare_type": True,
                    "version_table": db.VERSION_TABLE,
                    # The store's tables only: the warehouse's have their own schema test.
                    "include_name": lambda name, type_, _parent: type_ != "table" or name in Base.metadata.tables,
                },
            )
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(empty_url: str) -> None:
    from alembic import command

    engine = db.make_engine(empty_url)
    try:
        db.migrate(engine)
        command.downgrade(db.alembic_config(engine), "base")
        assert _tables(engine) == {db.VERSION_TABLE}
        assert db.current_revision(engine) is None
        db.migrate(engine)
        assert _tables(engine) >= STORE_TABLES
        assert db.current_revision(engine) == _head()
    finally:
        engine.dispose()


def test_default_url_and_driver_mapping(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(db.DATABASE_URL_ENV_VAR, raising=False)
    monkeypatch.chdir(tmp_path)
    assert db.default_url() == f"sqlite:///{tmp_path / db.DEFAULT_SQLITE_FILENAME}"
    monkeypatch.setenv(db.DATABASE_URL_ENV_VAR, "postgresql://app@db.internal:5432/qb")
    assert db.default_url() == "postgresql://app@db.internal:5432/qb"
    assert db.normalize_url(db.default_url()).drivername == "postgresql+psycopg2"
    assert db.normalize_url("postgresql+psycopg2://x@h/d").drivername == "postgresql+psycopg2"
    assert db.normalize_url("sqlite:///x.sqlite").drivername == "sqlite"


def test_sqlite_transactions_are_real(tmp_path: Path) -> None:
    """SQLAlchemy emits BEGIN itself on SQLite: a rollback undoes reads-then-writes, and an
    IMMEDIATE transaction holds the write lock from its first statement."""
    engine = db.make_engine(f"sqlite:///{tmp_path / 's.sqlite'}")
    other = db.make_engine(f"sqlite:///{tmp_path / 's.sqlite'}", connect_args={"timeout": 0.1})
    try:
        db.migrate(engine)
        with engine.connect() as conn:
            conn.begin()
            conn.execute(sa.text("INSERT INTO qb_tenants (key, name, created_at) VALUES ('a', 'A', CURRENT_TIMESTAMP)"))
            conn.rollback()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM qb_tenants")).scalar_one() == 0
        with engine.connect().execution_options(**{db.SQLITE_BEGIN_OPTION: "IMMEDIATE"}) as locker:
            locker.begin()
            locker.execute(sa.text("SELECT 1"))  # the lock is taken by BEGIN IMMEDIATE already
            with other.connect() as conn, pytest.raises(sa.exc.OperationalError, match="locked"):
                conn.begin()
                conn.execute(sa.text("INSERT INTO qb_tenants (key, name, created_at) VALUES ('b', 'B', CURRENT_TIMESTAMP)"))
            locker.rollback()
    finally:
        engine.dispose()
        other.dispose()


def test_migration_scripts_ship_with_the_package(tmp_path: Path) -> None:
    """Editable and regular installs both carry env.py, the template and every version script."""
    package = resources.files("qb_pipelines.store.migrations")
    for name in ("env.py", "script.py.mako", "versions/0001_connections.py"):
        assert package.joinpath(name).is_file(), name
    # What a regular install copies: setuptools' build_py (the step a wheel build runs), on a
    # copy of the project so the checkout is left untouched.
    root = Path(__file__).resolve().parents[1]
    src = tmp_path / "src"
    shutil.copytree(root / "qb_pipelines", src / "qb_pipelines", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(root / name, src / name)
    out = subprocess.run(
        [sys.executable, "-c", "from setuptools import setup; setup()", "-q", "build_py", "--build-lib", str(tmp_path / "lib")],
        cwd=src, capture_output=True, text=True, timeout=240,
    )
    assert out.returncode == 0, out.stderr
    built = tmp_path / "lib" / "qb_pipelines" / "store" / "migrations"
    for name in ("env.py", "script.py.mako", "versions/0001_connections.py"):
        assert (built / name).is_file(), name
