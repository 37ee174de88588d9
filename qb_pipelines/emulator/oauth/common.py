"""The OAuth server's vocabulary: lifetimes, well-known defaults, scopes, errors and small helpers.

Pure values and functions (no database, no HTTP routing); every room of the server imports from here.
"""

from __future__ import annotations

import base64
import hashlib
import random
import secrets
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from itsdangerous import URLSafeTimedSerializer
from starlette.responses import Response

# --- lifetimes (emulated seconds) ---------------------------------------------------------------
ACCESS_TOKEN_LIFETIME_S = 3600
#: Rolling inactivity window of a refresh token: the fresh value Intuit sends (101 days).
REFRESH_ROLLING_S = 8_726_400
#: Hard cap from the original grant: 5 years (5 x 365 days).
REFRESH_HARD_CAP_S = 5 * 365 * 86_400
AUTH_CODE_LIFETIME_S = 300
REFRESH_GRACE_S = 86_400
#: How long a half-filled authorize page stays usable (real seconds; it is a browser session).
AUTHORIZE_FLOW_MAX_AGE_S = 1800

# --- well-known defaults ------------------------------------------------------------------------
DEFAULT_CLIENT_ID = "emulator-client-id"
DEFAULT_CLIENT_SECRET = "emulator-client-secret"
DEFAULT_APP_NAME = "Emulator Demo App"
DEFAULT_REDIRECT_URIS = (
    # Intuit registers its OAuth Playground for every development app.
    "https://developer.intuit.com/v2/OAuth2Playground/RedirectUrl",
    "http://localhost:3000/callback",
    "http://127.0.0.1:3000/callback",
)
DEFAULT_USER_EMAIL = "demo@example.com"
DEFAULT_USER_PASSWORD = "demo"

ACCOUNTING_SCOPE = "com.intuit.quickbooks.accounting"
KNOWN_SCOPES = frozenset(
    {
        ACCOUNTING_SCOPE,
        "com.intuit.quickbooks.payment",
        "openid",
        "profile",
        "email",
        "phone",
        "address",
        "intuit_name",
        "com.intuit.quickbooks.payroll",
        "com.intuit.quickbooks.payroll.timetracking",
        "com.intuit.quickbooks.payroll.benefits",
        "com.intuit.quickbooks.payroll.payslip.read",
        "payroll.compensation.read",
        "project-management.project",
        "app-foundations.custom-field-definitions",
        "app-foundations.custom-field-definitions.read",
        "app-foundations.custom-dimensions.read",
        "time-tracking.time-entry",
        "indirect-tax.tax-calculation.quickbooks",
    }
)
#: What the consent page tells the user each scope allows.
SCOPE_WORDING = {
    ACCOUNTING_SCOPE: "Access and edit your QuickBooks accounting data",
    "com.intuit.quickbooks.payment": "Process payments",
    "openid": "Verify your identity",
    "profile": "See your name",
    "email": "See your email address",
    "phone": "See your phone number",
    "address": "See your address",
}

# The JWE protected header Intuit's access tokens start with: {"enc":"A128CBC-HS256","alg":"dir"}.
JWE_HEADER = "eyJlbmMiOiJBMTI4Q0JDLUhTMjU2IiwiYWxnIjoiZGlyIn0"
# Bearer tokens outside these lengths are rejected before any lookup, as Intuit's gateway does.
MIN_BEARER_LEN, MAX_BEARER_LEN = 20, 4096


class OAuthError(Exception):
    """An OAuth error answer from the token or revoke endpoint: ``{"error", "error_description"}``."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def response(self) -> Response:
        headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
        if self.error == "invalid_client":
            headers["WWW-Authenticate"] = 'Basic realm="Intuit"'
        return json_response({"error": self.error, "error_description": self.description}, self.status, headers)


def json_response(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # Intuit's OAuth hosts answer application/json;charset=UTF-8
    return Response(orjson.dumps(body), status, headers, media_type="application/json;charset=UTF-8")


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class Bearer:
    """An authenticated v3 request: the app that makes it and the access token's internal id."""

    app_key: str
    token_id: str


def new_token_id(expiry: int, rng: random.Random | None = None) -> str:
    """An access token's internal id, ``AB0<expiry epoch><37 letters and digits>`` (a captured 401's shape)."""
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    pick = rng.choice if rng is not None else secrets.choice
    return f"AB0{expiry}{''.join(pick(alphabet) for _ in range(37))}"


def alnum(n: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
    return "".join(secrets.choice(alphabet) for _ in range(n))


def with_query(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` appended to whatever query it already carries."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def hash_password(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 10_000).hex()


class OAuthRoom:
    """What every room of :class:`~qb_pipelines.emulator.oauth.server.OAuthServer` shares (set by its ``__init__``)."""

    emu: Any  # the emulator: its database (``emu.db``), clock and base URL
    refresh_grace_s: float
    _secret: bytes  # the per-emulator secret refresh token values and authorize flows derive from
    _flows: URLSafeTimedSerializer  # signs the half-filled authorize flow carried by the pages
    _key_lock: threading.Lock
    _signing: tuple[Any, str] | None
