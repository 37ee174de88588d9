"""The states of a tenant's QuickBooks connection, and the error of a connection that cannot be used."""

from __future__ import annotations

from enum import StrEnum

from qb_pipelines.qbo.errors import QBOError

__all__ = ["USABLE_STATES", "ConnectKind", "ConnectionState", "ConnectionUnavailableError", "UnreadableTokenError"]


class ConnectionState(StrEnum):
    """Where a tenant's QuickBooks connection stands (the card on Accounting Integrations)."""

    NOT_CONNECTED = "not_connected"  # never connected: "No QuickBooks Online account connected"
    CONNECTED = "connected"
    SESSION_EXPIRED = "session_expired"  # invalid_grant: reconnect
    CONNECTION_ERROR = "connection_error"  # cannot reach or refused: reconnect / try again
    DISCONNECTED = "disconnected"  # an admin disconnected; configuration kept


class ConnectKind(StrEnum):
    """What a successful authorization meant for the tenant."""

    FIRST = "first"  # never connected before: open the Setup Wizard
    RECONNECT = "reconnect"  # the same company again: configuration and mappings preserved
    SWITCH = "switch"  # another company: configuration kept, mappings need review


#: States in which tokens may be used (a connection error may be transient: keep trying).
USABLE_STATES = (ConnectionState.CONNECTED.value, ConnectionState.CONNECTION_ERROR.value)


class ConnectionUnavailableError(QBOError):
    """The tenant has no usable QuickBooks connection (never connected, disconnected or expired)."""

    def __init__(self, tenant_key: str, state: ConnectionState) -> None:
        hints = {
            ConnectionState.NOT_CONNECTED: "connect QuickBooks Online from Accounting Integrations",
            ConnectionState.DISCONNECTED: "the integration was disconnected: connect it again from Accounting Integrations",
            ConnectionState.SESSION_EXPIRED: "the QuickBooks Online session has expired: reconnect from Accounting Integrations",
        }
        super().__init__(
            f"tenant {tenant_key!r} has no usable QuickBooks connection (state {state.value})",
            code=state.value,
            hint=hints.get(state, "reconnect from Accounting Integrations"),
        )
        self.tenant_key = tenant_key
        self.state = state


class UnreadableTokenError(ConnectionUnavailableError):
    """The tenant's stored tokens cannot be decrypted: altered in the database, or ``QB_FERNET_KEY`` changed.

    Either way the connection cannot be used until the key is restored or the company reconnected,
    so the store marks it ``connection_error`` (the card says so) before this is raised.
    """

    def __init__(self, tenant_key: str) -> None:
        super().__init__(tenant_key, ConnectionState.CONNECTION_ERROR)
        self.message = (f"the stored QuickBooks tokens of tenant {tenant_key!r} cannot be decrypted with "
                        "QB_FERNET_KEY (they were altered, or the key changed)")
        self.hint = ("reconnect the company in the admin web app (Accounting Integrations > Reconnect), "
                     "or restore the QB_FERNET_KEY the tokens were stored with")
        self.args = (self.message,)
