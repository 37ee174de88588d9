"""Intuit OAuth 2.0 and OpenID Connect: connect a company, keep its tokens alive, disconnect it.

The lifecycle (reference §10): the admin's browser goes to :meth:`IntuitOAuth.authorization_url`;
Intuit redirects back with ``code``, ``state`` and ``realmId``; :meth:`IntuitOAuth.exchange_code`
turns the code into a :class:`TokenSet` (a one-hour access token and a refresh token);
:meth:`IntuitOAuth.refresh` trades the refresh token for new ones. Intuit **rotates** refresh
tokens, so the caller must store the returned refresh token before using the new access token
(the connections store does that under a row lock). ``invalid_grant`` means the grant is gone
(revoked, expired after 100 idle days or the 5-year hard cap, or superseded): it raises
:class:`InvalidGrantError`, whose hint tells the admin to reconnect. :meth:`IntuitOAuth.revoke`
ends the grant on disconnect; :meth:`IntuitOAuth.userinfo` names the connecting user.

Code exchange and refresh go through requests-oauthlib's ``OAuth2Session`` (client credentials
as HTTP Basic, as Intuit documents) with ``x-include-refresh-token-hard-expires-in: true`` so
the 5-year hard expiry is known and can be shown to admins. Tokens are never logged:
requests-oauthlib's debug lines (which print token bodies) are filtered out here.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
from oauthlib.oauth2.rfc6749.errors import OAuth2Error
from requests.auth import HTTPBasicAuth
from requests_oauthlib import OAuth2Session

from qb_pipelines.qbo.environments import Environment
from qb_pipelines.qbo.errors import InvalidGrantError, OAuthError, QBOError, TransientServerError, error_from_response

log = logging.getLogger(__name__)

#: What the app asks for: the accounting data, and who the connecting user is.
SCOPES = ("com.intuit.quickbooks.accounting", "openid", "email", "profile")

_HARD_EXPIRY_HEADER = {"x-include-refresh-token-hard-expires-in": "true"}
_TOKEN_HEADERS = {
    "Accept": "application/json",
    "Content-Type": "application/x-www-form-urlencoded;charset=UTF-8",
    **_HARD_EXPIRY_HEADER,
}


class _DropTokenDebug(logging.Filter):
    """requests-oauthlib logs request and response bodies (tokens included) at DEBUG: never emit them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


_oauthlib_log = logging.getLogger("requests_oauthlib.oauth2_session")
if not any(isinstance(f, _DropTokenDebug) for f in _oauthlib_log.filters):
    _oauthlib_log.addFilter(_DropTokenDebug())


@dataclass(frozen=True)
class TokenSet:
    """The tokens of one connection, with when each stops working (all datetimes UTC).

    Attributes:
        access_token: Bearer token for API calls (one hour).
        refresh_token: Trades for new tokens; rotates, so always keep the latest.
        access_expires_at: When the access token lapses.
        refresh_expires_at: When the refresh token lapses if unused (100-day rolling window).
        refresh_hard_expires_at: The grant's absolute end (5 years from the first connection),
            after which the admin must reconnect; ``None`` if Intuit did not say.
        id_token: OpenID id_token (JWT) when ``openid`` was granted.
        realm_id: The company connected (known on code exchange).
    """

    access_token: str
    refresh_token: str
    access_expires_at: datetime
    refresh_expires_at: datetime
    refresh_hard_expires_at: datetime | None = None
    id_token: str | None = None
    realm_id: str | None = None

    def __repr__(self) -> str:  # never print tokens, even in a traceback or a debugger
        return (
            f"TokenSet(access_expires_at={self.access_expires_at.isoformat()}, "
            f"refresh_expires_at={self.refresh_expires_at.isoformat()}, "
            f"refresh_hard_expires_at={self.refresh_hard_expires_at.isoformat() if self.refresh_hard_expires_at else None}, "
            f"realm_id={self.realm_id!r})"
        )

    @classmethod
    def from_response(cls, body: dict[str, Any], *, realm_id: str | None = None,
                      now: datetime | None = None) -> TokenSet:
        """Build from the token endpoint's JSON (``expires_in`` and ``x_refresh_token_*`` in seconds).

        Raises:
            OAuthError: the body lacks an access or refresh token.
        """
        now = now or datetime.now(UTC)
        access, refresh = body.get("access_token"), body.get("refresh_token")
        if not access or not refresh:
            raise OAuthError("the token endpoint answered without an access or refresh token",
                             code="invalid_response")
        hard = body.get("x_refresh_token_hard_expires_in")
        return cls(
            access_token=str(access),
            refresh_token=str(refresh),
            access_expires_at=now + timedelta(seconds=int(body.get("expires_in") or 3600)),
            refresh_expires_at=now + timedelta(seconds=int(body.get("x_refresh_token_expires_in") or 8_726_400)),
            refresh_hard_expires_at=now + timedelta(seconds=int(hard)) if hard is not None else None,
            id_token=body.get("id_token"),
            realm_id=realm_id,
        )


def _raise_for_token_error(response: requests.Response) -> requests.Response:
    """requests-oauthlib compliance hook: turn an error answer into our typed error (with intuit_tid)."""
    if response.status_code >= 400:
        raise error_from_response(response)
    return response


class IntuitOAuth:
    """One developer app's OAuth client for one environment.

    Args:
        client_id: The app's client id (sandbox and production keys differ).
        client_secret: The app's client secret. Never logged.
        redirect_uri: The callback registered with the app (must match exactly).
        environment: Production, sandbox or emulator URLs.
        session: ``requests.Session`` for revoke and userinfo (a fresh one when omitted).
        timeout: Seconds before a call to Intuit's OAuth hosts is abandoned.
    """

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        environment: Environment,
        *,
        session: requests.Session | None = None,
        timeout: float = 30,
    ) -> None:
        self.client_id = client_id
        self._client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.environment = environment
        self.session = session or requests.Session()
        self.timeout = timeout
        if environment.name == "emulator" and environment.token_url.startswith("http://"):
            # oauthlib refuses plain HTTP unless told otherwise. Only the local emulator is served
            # over HTTP; Intuit's hosts are all HTTPS, so this relaxes nothing that reaches Intuit.
            os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")

    def __repr__(self) -> str:
        return f"IntuitOAuth(client_id={self.client_id!r}, environment={self.environment.name!r})"

    @property
    def _basic(self) -> HTTPBasicAuth:
        return HTTPBasicAuth(self.client_id, self._client_secret)

    def _oauth_session(self, *, with_scope: bool) -> OAuth2Session:
        oauth = OAuth2Session(
            self.client_id, redirect_uri=self.redirect_uri, scope=list(SCOPES) if with_scope else None
        )
        oauth.register_compliance_hook("access_token_response", _raise_for_token_error)
        oauth.register_compliance_hook("refresh_token_response", _raise_for_token_error)
        return oauth

    def authorization_url(self, state: str) -> str:
        """The consent page URL to send the admin's browser to.

        Args:
            state: An unguessable value bound to the admin's session; the callback must check that
                the same value comes back (CSRF protection).
        """
        url, _ = self._oauth_session(with_scope=True).authorization_url(self.environment.authorize_url, state=state)
        return url

    def exchange_code(self, code: str, realm_id: str) -> TokenSet:
        """Trade the callback's authorization code for tokens. A code works once, for a few minutes.

        Raises:
            InvalidGrantError: the code was used already, expired, or the redirect URI differs.
            OAuthError: wrong client credentials or another token-endpoint error.
            TransientServerError: Intuit could not be reached (the code may be spent: start over).
        """
        oauth = self._oauth_session(with_scope=True)
        try:
            token = oauth.fetch_token(
                self.environment.token_url,
                code=code,
                auth=self._basic,
                headers=dict(_TOKEN_HEADERS),
                timeout=self.timeout,
                include_client_id=False,
            )
        except QBOError:
            raise
        except OAuth2Error as exc:
            raise self._oauthlib_error(exc) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientServerError(
                f"could not reach Intuit's token endpoint: {type(exc).__name__}",
                hint="try connecting again from Accounting Integrations",
            ) from None
        log.info("authorization code exchanged for realm %s", realm_id)
        return TokenSet.from_response(dict(token), realm_id=realm_id)

    def refresh(self, refresh_token: str, *, attempts: int = 3) -> TokenSet:
        """Trade a refresh token for a new access token and a (rotated) refresh token.

        A lost answer is retried with the same refresh token: Intuit keeps a superseded refresh
        token valid for a while after rotation, so the retry cannot strand the connection.

        Raises:
            InvalidGrantError: the grant is revoked, expired or the token superseded: reconnect.
            OAuthError: another token-endpoint error (client credentials...).
            TransientServerError: Intuit could not be reached after ``attempts`` tries.
        """
        last: Exception | None = None
        for attempt in range(attempts):
            oauth = self._oauth_session(with_scope=False)
            try:
                token = oauth.refresh_token(
                    self.environment.token_url,
                    refresh_token=refresh_token,
                    auth=self._basic,
                    headers=dict(_TOKEN_HEADERS),
                    timeout=self.timeout,
                )
                return TokenSet.from_response(dict(token))
            except TransientServerError as exc:
                last = exc
            except QBOError:
                raise
            except OAuth2Error as exc:
                raise self._oauthlib_error(exc) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = TransientServerError(f"could not reach Intuit's token endpoint: {type(exc).__name__}")
            if attempt + 1 < attempts:
                time.sleep(min(4.0, 0.5 * 2**attempt))
        assert last is not None
        raise last

    def revoke(self, token: str) -> None:
        """End the grant at Intuit (disconnect). Either the refresh or the access token works.

        Raises:
            OAuthError: Intuit refused (wrong client credentials...).
            TransientServerError: Intuit could not be reached.
        """
        try:
            resp = self.session.post(
                self.environment.revoke_url,
                json={"token": token},
                auth=self._basic,
                headers={"Accept": "application/json"},
                timeout=self.timeout,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientServerError(f"could not reach Intuit's revoke endpoint: {type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise error_from_response(resp)
        log.info("grant revoked at Intuit (intuit_tid %s)", resp.headers.get("intuit_tid"))

    def userinfo(self, access_token: str) -> dict[str, Any]:
        """The connecting user's OpenID claims: ``email``, ``givenName``, ``familyName``, ``sub``...

        Raises:
            AuthenticationError: the access token is not valid.
            OAuthError: another refusal (e.g. ``openid`` not granted).
        """
        try:
            resp = self.session.get(
                self.environment.userinfo_url,
                headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
                timeout=self.timeout,
            )
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise TransientServerError(f"could not reach Intuit's userinfo endpoint: {type(exc).__name__}") from None
        if resp.status_code >= 400:
            raise error_from_response(resp)
        return resp.json()

    @staticmethod
    def _oauthlib_error(exc: OAuth2Error) -> OAuthError:
        description = exc.description or str(exc)
        if exc.error == "invalid_grant":
            return InvalidGrantError(f"invalid_grant: {description}", code="invalid_grant", detail=description,
                                     status=exc.status_code)
        return OAuthError(f"{exc.error}: {description}", code=exc.error, detail=description, status=exc.status_code)
