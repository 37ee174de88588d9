"""Admin users of the web app: who may sign in, and whether they may change anything.

Two roles: ``admin`` connects, disconnects, switches companies and changes settings; ``viewer``
sees the same pages and can change nothing. Users are created (and removed) from the command line.
A password change or a removal ends every web session of that user at once, in the same
transaction (:mod:`qb_pipelines.store.web_sessions`).

Passwords are hashed with argon2id (argon2-cffi's defaults: memory-hard, salted per user); the
store never keeps nor logs a password. Hashes made with older parameters are upgraded at the
next successful sign-in. A failed sign-in for an unknown e-mail costs the same hashing work as
a wrong password, so response times do not reveal which e-mails exist.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from qb_pipelines.store.db import SQLITE_BEGIN_OPTION
from qb_pipelines.store.models import AdminUser, WebSession, utcnow

#: Shortest password accepted.
MIN_PASSWORD_LENGTH = 8


class Role(StrEnum):
    """What a signed-in user may do."""

    ADMIN = "admin"  # connect, disconnect, switch, change settings
    VIEWER = "viewer"  # read-only


class UserError(ValueError):
    """A user cannot be created or changed as asked (the message says why and what to do)."""


class WeakPasswordError(UserError):
    """The password is too short."""


class DuplicateUserError(UserError):
    """A user with this e-mail already exists."""


class UnknownUserError(UserError):
    """No user has this e-mail."""


@dataclass(frozen=True)
class AdminUserView:
    """A user as the web app sees it (never the password hash)."""

    id: int
    email: str
    role: Role
    created_at: datetime
    last_login_at: datetime | None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


def _view(user: AdminUser) -> AdminUserView:
    return AdminUserView(user.id, user.email, Role(user.role), user.created_at, user.last_login_at)


def normalize_email(email: str) -> str:
    """Lower-cased, trimmed e-mail (sign-in is case-insensitive)."""
    return (email or "").strip().lower()


class AdminUserStore:
    """Creates, lists and authenticates admin web users.

    Args:
        session_factory: sessions bound to the store's engine.
        hasher: the argon2 hasher (tests may pass cheaper parameters).
        clock: "now" (tests move time).
    """

    def __init__(self, session_factory: sessionmaker[Session], hasher: PasswordHasher | None = None, *,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self._sf = session_factory
        self._hasher = hasher or PasswordHasher()
        self._now = clock
        self._dummy: str | None = None

    @property
    def _dummy_hash(self) -> str:
        # Verified against when the e-mail is unknown, to spend the same time as a real check.
        if self._dummy is None:
            self._dummy = self._hasher.hash(secrets.token_urlsafe(16))
        return self._dummy

    def __repr__(self) -> str:
        return "AdminUserStore()"

    def _write(self) -> Session:
        session = self._sf()
        session.begin()
        session.connection(execution_options={SQLITE_BEGIN_OPTION: "IMMEDIATE"})
        return session

    @staticmethod
    def _check_password(password: str) -> None:
        if password is None or len(password) < MIN_PASSWORD_LENGTH:
            raise WeakPasswordError(
                f"The password is too short: use at least {MIN_PASSWORD_LENGTH} characters "
                "(a passphrase of several words is best)."
            )

    @staticmethod
    def _check_role(role: Role | str) -> Role:
        try:
            return Role(role)
        except ValueError:
            raise UserError(f"Unknown role {role!r}: choose admin or viewer.") from None

    def create(self, email: str, password: str, role: Role | str = Role.ADMIN) -> AdminUserView:
        """Create a user.

        Raises:
            UserError: the e-mail is not an e-mail address, or the role is unknown.
            WeakPasswordError: the password has fewer than 8 characters.
            DuplicateUserError: a user with this e-mail exists (change its password instead).
        """
        email = normalize_email(email)
        if "@" not in email or email.startswith("@") or email.endswith("@") or len(email) > 320:
            raise UserError(f"{email!r} is not an e-mail address.")
        role = self._check_role(role)
        self._check_password(password)
        password_hash = self._hasher.hash(password)
        session = self._write()
        try:
            with session:
                user = AdminUser(email=email, password_hash=password_hash, role=role.value, created_at=self._now())
                session.add(user)
                session.flush()
                view = _view(user)
                session.commit()
                return view
        except IntegrityError:
            raise DuplicateUserError(
                f"A user with the e-mail {email} already exists: choose another e-mail or change that user's password."
            ) from None

    def authenticate(self, email: str, password: str) -> AdminUserView | None:
        """The user if the e-mail and password match, else ``None`` (no hint which was wrong)."""
        email = normalize_email(email)
        with self._sf() as session:
            user = session.scalars(sa.select(AdminUser).where(AdminUser.email == email)).one_or_none()
            stored_hash = user.password_hash if user else self._dummy_hash
            try:
                self._hasher.verify(stored_hash, password or "")
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return None
            if user is None:
                return None
        session = self._write()
        with session:
            user = session.scalars(sa.select(AdminUser).where(AdminUser.email == email)).one()
            user.last_login_at = self._now()
            if self._hasher.check_needs_rehash(user.password_hash):
                user.password_hash = self._hasher.hash(password)
            view = _view(user)
            session.commit()
            return view

    def get(self, email: str) -> AdminUserView | None:
        """The user with this e-mail, or ``None``."""
        with self._sf() as session:
            user = session.scalars(sa.select(AdminUser).where(AdminUser.email == normalize_email(email))).one_or_none()
            return _view(user) if user else None

    def list(self) -> list[AdminUserView]:
        """Every user, by e-mail."""
        with self._sf() as session:
            return [_view(u) for u in session.scalars(sa.select(AdminUser).order_by(AdminUser.email)).all()]

    def set_password(self, email: str, password: str) -> None:
        """Replace a user's password and end every web session of that user (same transaction).

        Raises:
            WeakPasswordError: fewer than 8 characters.
            UnknownUserError: no such user.
        """
        self._check_password(password)
        password_hash = self._hasher.hash(password)
        session = self._write()
        with session:
            user = self._existing(session, email)
            user.password_hash = password_hash
            session.execute(sa.update(WebSession).where(WebSession.user_id == user.id, WebSession.revoked_at.is_(None))
                            .values(revoked_at=self._now(), revoked_reason="password_changed"))
            session.commit()

    def remove(self, email: str) -> None:
        """Delete a user and every web session of theirs (same transaction): they are signed out at once.

        A user later created again with the same e-mail is a new user: no old session opens it.

        Raises:
            UnknownUserError: no such user.
        """
        session = self._write()
        with session:
            user = self._existing(session, email, "nothing to remove")
            session.execute(sa.delete(WebSession).where(WebSession.user_id == user.id))
            session.delete(user)
            session.commit()

    @staticmethod
    def _existing(session: Session, email: str, hint: str = "create it first") -> AdminUser:
        user = session.scalars(sa.select(AdminUser).where(AdminUser.email == normalize_email(email))).one_or_none()
        if user is None:
            raise UnknownUserError(f"No user with the e-mail {normalize_email(email)}: {hint}.")
        return user

    def set_role(self, email: str, role: Role | str) -> None:
        """Make a user an admin or a viewer.

        Raises:
            UserError: unknown role.
            UnknownUserError: no such user.
        """
        role = self._check_role(role)
        session = self._write()
        with session:
            user = self._existing(session, email)
            user.role = role.value
            session.commit()
