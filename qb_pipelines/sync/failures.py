"""Which failures need an admin, and what to tell whoever sees one.

One policy for every place a sync can fail -- a Dagster run, ``qb-pipelines sync``, the web
app -- so the same failure is never "reconnect" in one place and "retry" in another:

* **needs an admin** (retrying only burns calls): the connection is unusable (never connected,
  disconnected, session expired), Intuit refused the refresh token (``invalid_grant``) or the app
  (``invalid_client``), the app is not allowed into the company (403), or the company key names
  no company that can be synced (unknown, or the tenant switched away);
* **anything else** (throttling, server errors, a token refused twice, an unknown outcome) is
  worth a retry: rows and cursors committed before it are kept, so a rerun continues.
"""

from __future__ import annotations

from qb_pipelines.qbo.errors import AuthorizationError, OAuthError
from qb_pipelines.store.connection_state import ConnectionUnavailableError
from qb_pipelines.sync.companies import UnknownCompanyError

__all__ = ["RECONNECT_STEP", "RETRY_STEP", "needs_admin", "next_step"]

RECONNECT_STEP = ("reconnect in the admin web app (Accounting Integrations > Reconnect), then run the sync "
                  "again")
RETRY_STEP = "rows and cursors committed before the error are kept: run the same sync again to continue"


def needs_admin(exc: BaseException) -> bool:
    """Whether only an admin can fix ``exc`` (retrying would only burn calls)."""
    return isinstance(exc, (ConnectionUnavailableError, OAuthError, AuthorizationError, UnknownCompanyError))


def next_step(exc: BaseException) -> str:
    """What to do about ``exc``, in words an operator can act on."""
    if isinstance(exc, (ConnectionUnavailableError, OAuthError)):
        return f"the QuickBooks session has expired or was revoked: {RECONNECT_STEP}"
    if isinstance(exc, AuthorizationError):
        return "check the app's keys and environment (sandbox or production), or reconnect in the admin web app"
    if isinstance(exc, UnknownCompanyError):
        return "connect the company in the admin web app, or use one of the known company keys"
    return RETRY_STEP
