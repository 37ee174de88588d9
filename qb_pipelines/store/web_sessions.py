"""Server-side sessions of the admin web app: a cookie is only a pointer the store can revoke.

Signing in creates a row and gives the browser a random session id (in its signed cookie); the
store keeps the id's SHA-256, never the id, so the table opens nothing if it leaks. Every request
resolves the id here, which is where a session ends:

* **sign-out** revokes it (a copy of the cookie replayed later opens nothing);
* a **password change** or the **user removed** revokes every session of that user
  (:mod:`qb_pipelines.store.users` does it in the same transaction);
* **idle timeout**: no request for longer than the app's idle timeout;
* **absolute expiry**: ``expires_at``, set at sign-in (8 hours by default), however active.

``last_seen_at`` is written at most once a minute per session, so browsing costs a read, not a
write, per page.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from qb_pipelines.store.models import AdminUser, WebSession
from qb_pipelines.store.repository import Repository

__all__ = ["ActiveSession", "WebSessionStore", "session_hash"]

#: How stale ``last_seen_at`` may get before a request writes it again.
TOUCH_EVERY = timedelta(minutes=1)
#: Ended sessions are deleted this long after they ended (kept a while for the audit's sake).
KEEP_ENDED = timedelta(days=7)


def session_hash(session_id: str) -> str:
    """The stored key of a session id (SHA-256 hex): the cookie's value is never stored."""
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass(frozen=True)
class ActiveSession:
    """A live session and its user as the store has them now (role changes apply at once)."""

    email: str
    role: str
    user_id: int
    created_at: datetime
    expires_at: datetime


class WebSessionStore(Repository):
    """Starts, resolves and ends admin web sessions (see the module docstring)."""

    def start(self, user_id: int, lifetime: timedelta) -> str:
        """Open a session for user ``user_id`` lasting at most ``lifetime``; returns the new session id.

        The id is 256 random bits; only its hash is stored. Sessions that ended over a week ago are
        deleted on the way.
        """
        session_id = secrets.token_urlsafe(32)
        now = self._now()
        with self._write() as session:
            session.execute(sa.delete(WebSession).where(
                sa.or_(WebSession.expires_at < now - KEEP_ENDED, WebSession.revoked_at < now - KEEP_ENDED)))
            session.add(WebSession(id=session_hash(session_id), user_id=user_id, created_at=now, last_seen_at=now,
                                   expires_at=now + lifetime))
        return session_id

    def resolve(self, session_id: str, idle: timedelta) -> ActiveSession | None:
        """The live session of ``session_id``, or ``None`` when unknown, revoked, idle too long or expired.

        A session found idle or expired is marked revoked with that reason. A live one has its
        ``last_seen_at`` moved to now (at most once per :data:`TOUCH_EVERY`).
        """
        if not session_id:
            return None
        key = session_hash(session_id)
        now = self._now()
        with self._read() as session:
            row = session.execute(
                sa.select(WebSession, AdminUser.email, AdminUser.role)
                .join(AdminUser, AdminUser.id == WebSession.user_id)
                .where(WebSession.id == key)
            ).one_or_none()
        if row is None:
            return None
        web, email, role = row
        if web.revoked_at is not None:
            return None
        ended = "expired" if now >= web.expires_at else "idle" if now - web.last_seen_at > idle else None
        if ended is not None:
            self._revoke(sa.and_(WebSession.id == key, WebSession.revoked_at.is_(None)), ended)
            return None
        if now - web.last_seen_at >= TOUCH_EVERY:
            with self._write() as session:
                session.execute(sa.update(WebSession).where(WebSession.id == key, WebSession.revoked_at.is_(None))
                                .values(last_seen_at=now))
        return ActiveSession(email=email, role=role, user_id=web.user_id, created_at=web.created_at,
                             expires_at=web.expires_at)

    def end(self, session_id: str) -> None:
        """Sign-out: revoke the session (a replayed cookie then opens nothing)."""
        if session_id:
            self._revoke(sa.and_(WebSession.id == session_hash(session_id), WebSession.revoked_at.is_(None)),
                         "signed_out")

    def revoke_user(self, user_id: int, reason: str) -> int:
        """Revoke every live session of a user; returns how many."""
        return self._revoke(sa.and_(WebSession.user_id == user_id, WebSession.revoked_at.is_(None)), reason)

    def live_count(self, user_id: int) -> int:
        """Sessions of the user not revoked nor expired (idle ones included until next seen)."""
        now = self._now()
        with self._read() as session:
            return int(session.scalar(sa.select(sa.func.count()).select_from(WebSession).where(
                WebSession.user_id == user_id, WebSession.revoked_at.is_(None), WebSession.expires_at > now)) or 0)

    def _revoke(self, where: sa.ColumnElement[bool], reason: str) -> int:
        with self._write() as session:
            result = session.execute(sa.update(WebSession).where(where)
                                     .values(revoked_at=self._now(), revoked_reason=reason))
            return int(result.rowcount or 0)
