"""The QuickBooks connection flows as plain Python: connect, reconnect, switch, disconnect, refresh.

The admin web app and the ``qb-pipelines connections`` commands call these functions; they hold
the business rules of the seed's connection page (``shared/seeds/004``) and no HTTP framework:

* **Connect** sends the admin to Intuit with a random ``state`` the caller binds to the admin's
  session (:func:`begin_connect`). The callback exchanges the code, reads who connected (OpenID
  userinfo) and which company (CompanyInfo), and only then stores anything
  (:func:`complete_connect`): a failure anywhere stores nothing.
* The store decides what kind of connection it was: the **first** one for the tenant (the caller
  opens the Setup Wizard), a **reconnect** of the same company (configuration and mappings kept), or
  a **switch** to another company (configuration kept, mappings flagged for review).
* **Switch** is one step: the old company's grant is revoked at Intuit only once the new company's
  tokens are in hand, so a cancelled switch leaves the current connection working.
* **Disconnect** takes effect locally at once and then revokes at Intuit; a failed revoke is
  reported, never a reason to stay connected (:func:`disconnect`).
* **Refresh** renews access tokens that are about to lapse and moves a connection whose refresh
  token Intuit refuses (``invalid_grant``) to "session expired" (:func:`refresh_due`).

Tokens only ever travel between Intuit, these functions and the store (which encrypts them); they
are never logged nor returned to callers.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from enum import StrEnum
from typing import Any

import requests

from qb_pipelines.qbo.client import MemoryTokenSource, QBOClient, TokenSource
from qb_pipelines.qbo.errors import AuthenticationError, AuthorizationError, InvalidGrantError, QBOError
from qb_pipelines.qbo.oauth import IntuitOAuth
from qb_pipelines.store.connection_state import UnreadableTokenError
from qb_pipelines.store.connections import ConnectionState, ConnectionStore, ConnectionUnavailableError

log = logging.getLogger(__name__)

#: What the seed's card says in each trouble state (exact words of shared/seeds/004).
SESSION_EXPIRED_MESSAGE = "Your QuickBooks Online session has expired. Please reconnect your account."
CONNECTION_ERROR_MESSAGE = "There was an error connecting to QuickBooks Online. Please try again."

#: Builds the QuickBooks client for a company from a token source (the web app adds the rate
#: limiter and the read meter).
ClientFactory = Callable[[str, TokenSource], QBOClient]


class ConnectAction(StrEnum):
    """Why the admin was sent to Intuit: the button they pressed."""

    CONNECT = "connect"
    RECONNECT = "reconnect"
    SWITCH = "switch"


class ConnectFlowError(Exception):
    """The authorization did not complete; nothing was stored.

    Attributes:
        reason: One line for the admin: what went wrong and what to do next (no secrets).
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ConnectResult:
    """The outcome of a completed connection.

    Attributes:
        kind: ``"first"``, ``"reconnect"`` or ``"switch"``, as the store classified it.
        company_name: The connected company's name.
        realm_id: The connected company's realmId.
        user_email: The QuickBooks user who authorized the connection.
        configured: Whether the tenant has finished the Setup Wizard before.
        previous_revoked: On a switch, whether the previous company's grant was revoked at Intuit.
    """

    kind: str
    company_name: str
    realm_id: str
    user_email: str
    configured: bool
    previous_revoked: bool | None = None


@dataclass(frozen=True)
class DisconnectResult:
    """The outcome of a disconnect: always disconnected locally; ``revoked`` says whether Intuit agreed.

    Attributes:
        was_connected: Whether the tenant held tokens to revoke.
        revoked: Whether Intuit confirmed the revocation (``None`` when there was nothing to revoke).
        revoke_error: Why revocation failed, for the admin (the app is disconnected on our side anyway).
    """

    was_connected: bool
    revoked: bool | None
    revoke_error: str | None = None


@dataclass(frozen=True)
class Choice:
    """One entry of a live list (an income account or a tax code)."""

    id: str
    name: str


@dataclass
class RefreshSummary:
    """What :func:`refresh_due` did, per tenant key.

    Attributes:
        refreshed: Tenants whose access token was renewed.
        expired: Tenants whose refresh token Intuit refused (now "session expired": an admin must reconnect).
        errors: Tenants that could not be refreshed for another reason, with the reason (retry later).
    """

    refreshed: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly form for the CLI."""
        return {"refreshed": self.refreshed, "expired": self.expired, "errors": self.errors}


# ------------------------------------------------------------------------------------------------
# connect
# ------------------------------------------------------------------------------------------------
def begin_connect(
    store: ConnectionStore, oauth: IntuitOAuth, tenant_key: str, action: str = ConnectAction.CONNECT
) -> tuple[str, str]:
    """Start a connection: the URL of Intuit's consent page and the ``state`` that must come back.

    The caller keeps ``state`` (with the tenant key and the action) in the admin's session and
    compares it in the callback; a callback whose state does not match is refused (CSRF on the
    OAuth flow, reference §10.2).

    Args:
        store: The connections store (the tenant must exist).
        oauth: The Intuit app.
        tenant_key: The tenant being connected.
        action: ``connect``, ``reconnect`` or ``switch`` (recorded by the caller with the state).

    Returns:
        ``(authorization_url, state)``.

    Raises:
        ValueError: On an unknown action.
        LookupError: When the tenant does not exist.
    """
    ConnectAction(action)  # refuse unknown actions early
    if not _tenant_exists(store, tenant_key):
        raise LookupError(f"no tenant {tenant_key!r}: create it first")
    state = secrets.token_urlsafe(32)
    return oauth.authorization_url(state), state


def complete_connect(
    store: ConnectionStore,
    oauth: IntuitOAuth,
    client_factory: ClientFactory,
    tenant_key: str,
    code: str,
    realm_id: str,
    *,
    action: str = ConnectAction.CONNECT,
    environment_name: str | None = None,
) -> ConnectResult:
    """Finish a connection after Intuit redirected back with ``code`` and ``realmId``.

    Exchanges the code, reads the connecting user (userinfo: email, givenName, familyName) and the
    company (CompanyInfo), and only then stores the connection. On a switch to another company,
    the previous company's grant is revoked at Intuit (best effort) before the new one is stored.

    Args:
        store: The connections store.
        oauth: The Intuit app (its redirect URI must be the one used in :func:`begin_connect`).
        client_factory: Builds the QBO client used to read CompanyInfo.
        tenant_key: The tenant bound to the state of this flow.
        code: The authorization code from the callback (single use).
        realm_id: The chosen company's realmId from the callback.
        action: The button that started the flow.
        environment_name: Stored with the connection (``production``/``sandbox``/``emulator``);
            defaults to the OAuth app's environment.

    Returns:
        What kind of connection it was and to whom.

    Raises:
        ConnectFlowError: When anything fails; nothing was stored and the message says what to do.
    """
    if not code or not realm_id:
        raise ConnectFlowError(
            "QuickBooks did not return an authorization code and company. Click Connect and choose a company."
        )
    return _connect(
        store, oauth, client_factory, tenant_key, realm_id, lambda: oauth.exchange_code(code, realm_id),
        refused="QuickBooks refused the authorization (it may have expired or been used already). Click Connect again.",
        environment_name=environment_name,
    )


def connect_with_refresh_token(
    store: ConnectionStore,
    oauth: IntuitOAuth,
    client_factory: ClientFactory,
    tenant_key: str,
    refresh_token: str,
    realm_id: str,
    *,
    environment_name: str | None = None,
) -> ConnectResult:
    """Connect a tenant from a refresh token obtained elsewhere (Intuit's OAuth Playground, the emulator).

    The same connection as :func:`complete_connect` without the browser: the token is refreshed
    once (which proves it and rotates it), the connecting user and CompanyInfo are read with the
    new access token, and only then is the rotated token stored, encrypted. The given token is
    never stored nor logged.

    Args:
        refresh_token: The refresh token (for ``realm_id``'s company).
        realm_id: The company the token was issued for.

    Raises:
        ConnectFlowError: a refused token, a token of another company, QuickBooks unreachable;
            nothing was stored and the message says what to do.
    """
    refresh_token = (refresh_token or "").strip()
    realm_id = (realm_id or "").strip()
    if not refresh_token or not realm_id:
        raise ConnectFlowError("a refresh token and the company's realm ID are both needed.")
    return _connect(
        store, oauth, client_factory, tenant_key, realm_id, lambda: oauth.refresh(refresh_token),
        refused=("QuickBooks refused the refresh token (expired, revoked, already rotated, or issued to another "
                 "app). Get a new one (Intuit's OAuth Playground, or `qb-pipelines emulator tokens REALM`) and "
                 "try again."),
        wrong_company=(f"the token does not open company {realm_id}: check the realm ID (it is shown with the "
                       "token in Intuit's OAuth Playground), then try again with a new token."),
        environment_name=environment_name,
    )


def _connect(
    store: ConnectionStore,
    oauth: IntuitOAuth,
    client_factory: ClientFactory,
    tenant_key: str,
    realm_id: str,
    obtain_tokens: Callable[[], Any],
    *,
    refused: str,
    wrong_company: str | None = None,
    environment_name: str | None = None,
) -> ConnectResult:
    """Obtain tokens, read who connected and which company, then store the connection (both flows)."""
    holder = store.family_holder_of(tenant_key, realm_id)
    if holder is not None:
        # Several companies per tenant: each card of a tenant holds a different company.
        company = holder.company_name or f"company {realm_id}"
        raise ConnectFlowError(
            f"{company} is already connected on the card {holder.tenant_name}: each card of a tenant connects a "
            "different company. Choose another company, or use that card.")
    env_name = environment_name or getattr(getattr(oauth, "environment", None), "name", None) or "production"
    try:
        tokens = obtain_tokens()
        user = oauth.userinfo(tokens.access_token)
        # Reading CompanyInfo may need a refresh already; the token source keeps the newest set.
        fresh = MemoryTokenSource(oauth, tokens)
        client = client_factory(realm_id, fresh)
        company = client.company_info()
    except InvalidGrantError as exc:
        log.warning("connect for tenant %s: tokens refused (%s)", tenant_key, type(exc).__name__)
        raise ConnectFlowError(refused) from exc
    except (AuthenticationError, AuthorizationError) as exc:
        if wrong_company is None:
            log.warning("connect for tenant %s failed: %s", tenant_key, _describe(exc))
            raise ConnectFlowError(
                f"QuickBooks answered with an error ({_describe(exc)}). Try again in a moment.") from exc
        log.warning("connect for tenant %s: the tokens do not open realm %s (%s)", tenant_key, realm_id,
                    type(exc).__name__)
        raise ConnectFlowError(wrong_company) from exc
    except QBOError as exc:
        log.warning("connect for tenant %s failed: %s", tenant_key, _describe(exc))
        raise ConnectFlowError(f"QuickBooks answered with an error ({_describe(exc)}). Try again in a moment.") from exc
    except requests.RequestException as exc:
        log.warning("connect for tenant %s: QuickBooks unreachable (%s)", tenant_key, type(exc).__name__)
        raise ConnectFlowError("QuickBooks could not be reached. Check the network and try again.") from exc

    tokens = fresh.tokens
    if tokens.realm_id is None:
        tokens = replace(tokens, realm_id=realm_id)
    company_name = str(company.get("CompanyName") or company.get("LegalName") or f"Company {realm_id}")
    email = str(user.get("email") or "")
    given = str(user.get("givenName") or "")
    family = str(user.get("familyName") or "")

    previous = store.get(tenant_key)
    previous_revoked: bool | None = None
    if (
        previous is not None
        and previous.realm_id
        and previous.realm_id != realm_id
        and _state(previous) == ConnectionState.CONNECTED
    ):
        # A switch: the old company's grant goes, but only now that the new one is in hand.
        result = disconnect(store, oauth, tenant_key)
        previous_revoked = result.revoked

    kind = store.save_tokens_on_connect(
        tenant_key,
        environment=env_name,
        realm_id=realm_id,
        company_name=company_name,
        user_email=email,
        given_name=given,
        family_name=family,
        tokens=tokens,
    )
    view = store.get(tenant_key)
    log.info("tenant %s connected to realm %s (%s)", tenant_key, realm_id, kind)
    return ConnectResult(
        kind=str(getattr(kind, "value", kind)),
        company_name=company_name,
        realm_id=realm_id,
        user_email=email,
        configured=bool(view is not None and view.configured),
        previous_revoked=previous_revoked,
    )


# ------------------------------------------------------------------------------------------------
# disconnect
# ------------------------------------------------------------------------------------------------
def disconnect(store: ConnectionStore, oauth: IntuitOAuth, tenant_key: str) -> DisconnectResult:
    """Disconnect a tenant now, then revoke its grant at Intuit.

    The local disconnect comes first so it takes effect at once, whatever Intuit answers;
    configuration, mappings and synced data stay (the store keeps them).

    Returns:
        Whether Intuit confirmed the revocation, and why not when it did not.
    """
    refresh_token = store.disconnect(tenant_key)
    if not refresh_token:
        return DisconnectResult(was_connected=False, revoked=None)
    try:
        oauth.revoke(refresh_token)
    except (QBOError, requests.RequestException) as exc:
        reason = _describe(exc) if isinstance(exc, QBOError) else type(exc).__name__
        log.warning("tenant %s disconnected, but revoking at Intuit failed: %s", tenant_key, reason)
        return DisconnectResult(
            was_connected=True,
            revoked=False,
            revoke_error=(
                f"QuickBooks did not confirm the revocation ({reason}). The app is disconnected here; "
                "to be sure, remove it under Apps > My apps in QuickBooks."
            ),
        )
    log.info("tenant %s disconnected and revoked at Intuit", tenant_key)
    return DisconnectResult(was_connected=True, revoked=True)


# ------------------------------------------------------------------------------------------------
# live lists and live-call failures
# ------------------------------------------------------------------------------------------------
def live_lists(client: QBOClient) -> tuple[list[Choice], list[Choice]]:
    """The connected company's income accounts and tax codes, read now (for the wizard and Settings).

    Returns:
        ``(income_accounts, tax_codes)``, each sorted by name.
    """
    accounts = [
        Choice(str(a["Id"]), str(a.get("FullyQualifiedName") or a.get("Name") or a["Id"]))
        for a in client.query_all("Account", where="AccountType = 'Income'")
    ]
    codes = [Choice(str(t["Id"]), str(t.get("Name") or t["Id"])) for t in client.query_all("TaxCode")]
    return sorted(accounts, key=lambda c: c.name.lower()), sorted(codes, key=lambda c: c.name.lower())


def record_live_failure(store: ConnectionStore, tenant_key: str, exc: BaseException) -> str:
    """Record what a failed live call means for the connection, and say it in the seed's words.

    * Intuit refuses the refresh token (``invalid_grant``): the session expired, the admin must
      reconnect (the store's token source has already marked it; marking again is harmless).
    * QuickBooks refuses a freshly refreshed token (401) or the app (403): connection error.
    * A connection already unusable (expired, disconnected): no change, its state says it all.
    * Anything else (QuickBooks unreachable or busy after the client's retries): the state is left
      alone, because a blip must not paint the card red; the message asks to try again.

    Returns:
        The message for the admin.
    """
    if isinstance(exc, ConnectionUnavailableError):
        state = ConnectionState(exc.state)
        return SESSION_EXPIRED_MESSAGE if state is ConnectionState.SESSION_EXPIRED else CONNECTION_ERROR_MESSAGE
    if isinstance(exc, InvalidGrantError):
        store.mark_state(tenant_key, ConnectionState.SESSION_EXPIRED, _describe(exc))
        return SESSION_EXPIRED_MESSAGE
    if isinstance(exc, AuthenticationError | AuthorizationError):
        store.mark_state(tenant_key, ConnectionState.CONNECTION_ERROR, _describe(exc))
        return CONNECTION_ERROR_MESSAGE
    return "QuickBooks Online could not be reached just now. Please try again in a moment."


#: Exceptions a live call can end with that the admin should see as a message, not a 500.
LIVE_CALL_ERRORS: tuple[type[BaseException], ...] = (QBOError, requests.RequestException)


# ------------------------------------------------------------------------------------------------
# refresh
# ------------------------------------------------------------------------------------------------
def refresh_due(
    store: ConnectionStore,
    oauth: IntuitOAuth | Callable[[str], IntuitOAuth],
    within: timedelta = timedelta(minutes=10),
) -> RefreshSummary:
    """Refresh every connection whose access token lapses within ``within`` (or whose refresh
    token is over a day old, which keeps Intuit's 100-day rolling window alive).

    Each refresh goes through the store's token source, so it is single-flight with any worker
    refreshing the same company at the same moment, and the rotated refresh token is stored before
    anyone uses it. ``invalid_grant`` moves the connection to "session expired" (the token source
    does it) and is counted as expired; other failures are reported and left for the next run.

    Args:
        store: The connections store.
        oauth: The Intuit app, or a function from an environment name to the app for it.
        within: Refresh access tokens that expire sooner than this.

    Returns:
        Which tenants were refreshed, expired or failed.
    """
    summary = RefreshSummary()
    for view in store.connections_due_for_refresh(within):
        tenant = view.tenant_key
        app = oauth if isinstance(oauth, IntuitOAuth) else oauth(view.environment or "production")
        try:
            if store.token_source(tenant, app).refresh_if_due(within):
                summary.refreshed.append(tenant)
        except InvalidGrantError:
            summary.expired.append(tenant)
        except UnreadableTokenError as exc:  # the token source marked it connection_error
            log.warning("refreshing tenant %s failed: %s", tenant, exc.message)
            summary.errors[tenant] = f"{exc.message}. Next: {exc.hint}."
        except (QBOError, requests.RequestException) as exc:
            reason = _describe_any(exc)
            log.warning("refreshing tenant %s failed: %s", tenant, reason)
            summary.errors[tenant] = reason
    log.info(
        "token refresh: %d refreshed, %d expired, %d errors",
        len(summary.refreshed),
        len(summary.expired),
        len(summary.errors),
    )
    return summary


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def _tenant_exists(store: ConnectionStore, tenant_key: str) -> bool:
    return store.get(tenant_key) is not None


def _state(view: Any) -> ConnectionState:
    return ConnectionState(getattr(view.state, "value", view.state))


def _describe(exc: QBOError) -> str:
    """A one-line, secret-free description of a QuickBooks error."""
    parts = [type(exc).__name__]
    code = getattr(exc, "code", None)
    if code:
        parts.append(f"code {code}")
    message = getattr(exc, "message", None) or ""
    if message:
        parts.append(str(message)[:200])
    return ": ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0]


def _describe_any(exc: BaseException) -> str:
    if isinstance(exc, QBOError):
        return _describe(exc)
    return type(exc).__name__

