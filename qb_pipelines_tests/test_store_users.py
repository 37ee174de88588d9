"""Admin web users on real SQLite and PostgreSQL: argon2id hashes, roles, sign-in checks, and
the errors an operator sees when creating users from the command line."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from sqlalchemy.engine import Engine

from qb_pipelines.store.db import session_factory
from qb_pipelines.store.users import (
    AdminUserStore,
    DuplicateUserError,
    Role,
    UnknownUserError,
    UserError,
    WeakPasswordError,
)
from qb_pipelines_tests.databases import migrated_engine


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    with migrated_engine(request.param, tmp_path_factory.mktemp("users")) as eng:
        yield eng


@pytest.fixture
def users(engine: Engine) -> AdminUserStore:
    return AdminUserStore(session_factory(engine))


def _email() -> str:
    return f"admin-{uuid.uuid4().hex[:8]}@example.com"


def test_create_and_authenticate(users: AdminUserStore, engine: Engine) -> None:
    email = _email()
    created = users.create(f"  {email.upper()} ", "correct horse battery", "admin")
    assert (created.email, created.role, created.is_admin, created.last_login_at) == (email, Role.ADMIN, True, None)
    signed_in = users.authenticate(email.upper(), "correct horse battery")
    assert signed_in is not None and signed_in.id == created.id and signed_in.last_login_at is not None
    assert users.authenticate(email, "wrong password") is None
    assert users.authenticate("nobody@example.com", "correct horse battery") is None
    assert users.authenticate(email, "") is None
    # Stored as an argon2id hash, never the password.
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT password_hash FROM qb_admin_users WHERE email = :e"), {"e": email}).scalar_one()
    assert stored.startswith("$argon2id$") and "correct horse battery" not in stored
    assert "argon2" not in repr(created) and "correct" not in repr(created)


def test_roles(users: AdminUserStore) -> None:
    viewer = users.create(_email(), "viewer-password", Role.VIEWER)
    assert viewer.role is Role.VIEWER and not viewer.is_admin
    signed_in = users.authenticate(viewer.email, "viewer-password")
    assert signed_in is not None and signed_in.role is Role.VIEWER
    users.set_role(viewer.email, "admin")
    promoted = users.get(viewer.email)
    assert promoted is not None and promoted.is_admin
    with pytest.raises(UserError, match="choose admin or viewer"):
        users.create(_email(), "long enough password", "superuser")
    assert [u.email for u in users.list()] == sorted(u.email for u in users.list())
    assert viewer.email in [u.email for u in users.list()]


def test_weak_password_refused_with_a_clear_message(users: AdminUserStore) -> None:
    email = _email()
    with pytest.raises(WeakPasswordError) as exc:
        users.create(email, "short", "admin")
    assert "at least 8 characters" in str(exc.value)
    assert users.get(email) is None
    users.create(email, "exactly8", "admin")  # 8 is enough
    with pytest.raises(WeakPasswordError):
        users.set_password(email, "1234567")


def test_duplicate_email_refused(users: AdminUserStore) -> None:
    email = _email()
    users.create(email, "first password", "admin")
    with pytest.raises(DuplicateUserError, match="already exists"):
        users.create(email.upper(), "second password", "viewer")
    survivor = users.authenticate(email, "first password")
    assert survivor is not None and survivor.role is Role.ADMIN


def test_bad_email_and_unknown_user(users: AdminUserStore) -> None:
    with pytest.raises(UserError, match="not an e-mail address"):
        users.create("admin", "long enough password", "admin")
    with pytest.raises(UnknownUserError, match="create it first"):
        users.set_password("ghost@example.com", "long enough password")


def test_password_change_and_rehash_of_old_parameters(engine: Engine) -> None:
    weak_hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    old = AdminUserStore(session_factory(engine), hasher=weak_hasher)
    email = _email()
    old.create(email, "original password", "admin")
    current = AdminUserStore(session_factory(engine))
    assert current.authenticate(email, "original password") is not None
    with engine.connect() as conn:
        upgraded = conn.execute(sa.text("SELECT password_hash FROM qb_admin_users WHERE email = :e"), {"e": email}).scalar_one()
    assert not PasswordHasher().check_needs_rehash(upgraded)  # upgraded at sign-in
    current.set_password(email, "a brand new password")
    assert current.authenticate(email, "original password") is None
    assert current.authenticate(email, "a brand new password") is not None
