"""The one client of the QBO emulator's control API (``{url}/_emulator/...``).

The emulator plays Intuit for the demo, the tests and the benchmarks; besides QuickBooks' own
v3 API it serves a control API to create and seed companies, mint tokens without a browser, act
as a QuickBooks user, inject faults, move its clock and steer its webhooks (README, "Control
API"). Everything in the project that drives an emulator goes through :class:`EmulatorControl`:
the command line, the Dagster resource ``qbo_emulator``, the demo, the benchmarks and the tests.

It speaks HTTP only and never imports the emulator, so it drives an emulator started anywhere,
by anyone, as a tool outside the project would. QuickBooks data itself is read through
:class:`qb_pipelines.qbo.client.QBOClient`, exactly as from Intuit; :class:`EmulatorControlTokens`
gives that client tokens minted by the control API (benchmarks and tests that skip OAuth).

Errors say what to do next: no emulator answering names the command that starts one; a 404 on a
company route says how to list companies. A connection refused is retried a few times with
backoff, because an emulator that was just started may not listen yet; nothing else is retried
(``act`` and ``seed`` are not idempotent).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from qb_pipelines.qbo.environments import DEFAULT_EMULATOR_PORT, DEFAULT_EMULATOR_URL

__all__ = [
    "DEFAULT_EMULATOR_URL",
    "EmulatorControl",
    "EmulatorControlError",
    "EmulatorControlTokens",
    "EmulatorTimeoutError",
    "EmulatorUnreachableError",
    "serve_hint",
]

_DEFAULT: Any = object()
_UNSET: Any = object()


class EmulatorControlError(RuntimeError):
    """A control request failed; the message says what happened and what to do.

    Attributes:
        url: the emulator's base URL.
        method: the HTTP method of the request.
        target: the full URL requested.
        status: the HTTP status answered (``None`` when nothing was answered).
        body: the decoded answer (JSON or text; ``None`` when nothing was answered).
    """

    def __init__(self, message: str, *, url: str, method: str = "", target: str = "", status: int | None = None,
                 body: Any = None) -> None:
        super().__init__(message)
        self.url, self.method, self.target, self.status, self.body = url, method, target, status, body


class EmulatorUnreachableError(EmulatorControlError):
    """No emulator answers at the URL (nothing listens there, even after a few retries)."""


class EmulatorTimeoutError(EmulatorControlError):
    """The emulator accepted the request but did not answer in time."""


def serve_hint(url: str) -> str:
    """The command that starts an emulator where ``url`` points (its port)."""
    tail = url.rstrip("/").rsplit(":", 1)[-1]
    port = tail if url.count(":") >= 2 and tail.isdigit() else str(DEFAULT_EMULATOR_PORT)
    return f"start one with `qb-pipelines emulator serve --port {port}`"


def _short(data: Any) -> str:
    text = data if isinstance(data, str) else json.dumps(data)
    return text if len(text) < 2000 else text[:2000] + "..."


class EmulatorControl:
    """Every route of the emulator's control API, as methods that return decoded JSON.

    Args:
        url: the emulator's base URL (``http://127.0.0.1:8765``).
        timeout_s: per-request timeout in seconds (``None``: wait as long as it takes).
        connect_retries: retries of a refused connection (an emulator still starting).
        backoff_s: backoff factor between those retries (0, 2x, 4x ... seconds).

    Raises (from every method):
        EmulatorUnreachableError: no emulator answers at ``url``.
        EmulatorTimeoutError: it did not answer in time.
        EmulatorControlError: it answered an error status (4xx/5xx).
    """

    def __init__(self, url: str = DEFAULT_EMULATOR_URL, *, timeout_s: float | None = 30.0, connect_retries: int = 3,
                 backoff_s: float = 0.25) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.session = requests.Session()
        # Only refused connections (nothing sent yet) and gateway answers to GETs are retried:
        # replaying a POST that reached the emulator could create a second company or change.
        retry = Retry(total=connect_retries, connect=connect_retries, read=0, redirect=0, other=0,
                      status=connect_retries, status_forcelist=(502, 503, 504),
                      allowed_methods=frozenset({"GET", "HEAD"}), backoff_factor=backoff_s, raise_on_status=False)
        adapter = HTTPAdapter(max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["Accept"] = "application/json"

    def __repr__(self) -> str:
        return f"EmulatorControl({self.url!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def __enter__(self) -> EmulatorControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------ plumbing

    def target(self, path: str) -> str:
        """The full URL of a control ``path`` (``companies`` -> ``{url}/_emulator/companies``)."""
        return f"{self.url}/_emulator/{path.lstrip('/')}"

    def response(self, method: str, path: str, *, json: Any = _UNSET, params: dict[str, Any] | None = None,
                 data: bytes | str | None = None, headers: dict[str, str] | None = None,
                 timeout: float | None = _DEFAULT) -> requests.Response:
        """Send one control request and return the raw response, whatever its status.

        For callers that assert statuses themselves (the emulator's own tests); everyone else
        uses :meth:`call` or a named method.

        Raises:
            EmulatorUnreachableError: nothing answers at the URL.
            EmulatorTimeoutError: no answer in time.
        """
        target = self.target(path)
        kwargs: dict[str, Any] = {"params": params, "headers": headers,
                                  "timeout": self.timeout_s if timeout is _DEFAULT else timeout}
        if json is not _UNSET:
            kwargs["json"] = json
        elif data is not None:
            kwargs["data"] = data
        try:
            return self.session.request(method, target, **kwargs)
        except requests.ConnectionError as exc:
            raise EmulatorUnreachableError(
                f"no emulator at {self.url}: {serve_hint(self.url)}, or set QBO_EMULATOR_URL",
                url=self.url, method=method, target=target) from exc
        except requests.Timeout as exc:
            raise EmulatorTimeoutError(
                f"the emulator at {self.url} did not answer {method} {target} in time; "
                "check it is running and not overloaded", url=self.url, method=method, target=target) from exc

    def call(self, method: str, path: str, body: Any = None, *, params: dict[str, Any] | None = None,
             timeout: float | None = _DEFAULT) -> Any:
        """Send one control request and return its decoded JSON (or text) body.

        Raises:
            EmulatorControlError: the emulator answered 4xx or 5xx (the message quotes it).
        """
        resp = self.response(method, path, json=body if body is not None else _UNSET, params=params, timeout=timeout)
        try:
            data: Any = resp.json()
        except ValueError:
            data = resp.text
        if resp.status_code >= 400:
            target = self.target(path)
            message = f"{method} {target} answered {resp.status_code}: {_short(data)}"
            if resp.status_code == 404 and "/companies/" in target:
                message += "\nThe company may not exist here: list them with `qb-pipelines emulator companies`."
            raise EmulatorControlError(message, url=self.url, method=method, target=target, status=resp.status_code,
                                       body=data)
        return data

    # ------------------------------------------------------------------------------ liveness

    def health(self) -> dict[str, Any]:
        """``GET /health``: ``status``, the number of companies and the emulator's base URL."""
        return dict(self.call("GET", "health"))

    def wait_until_ready(self, timeout_s: float = 60.0, *, still_starting: Callable[[], bool] | None = None,
                         poll_s: float = 0.1) -> dict[str, Any]:
        """Wait until the emulator answers ``/health`` (it may be seeding before it listens).

        Args:
            timeout_s: how long to wait.
            still_starting: called between attempts; returning ``False`` (its process exited)
                stops the wait at once.
            poll_s: seconds between attempts.

        Raises:
            EmulatorUnreachableError: it never answered (or ``still_starting`` said it died).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                resp = self.session.get(self.target("health"), timeout=2)
                if resp.status_code == 200:
                    return dict(resp.json())
            except requests.RequestException:
                pass
            if (still_starting is not None and not still_starting()) or time.monotonic() > deadline:
                raise EmulatorUnreachableError(f"no emulator answered at {self.url} within {timeout_s:.0f} s",
                                               url=self.url, method="GET", target=self.target("health"))
            time.sleep(poll_s)

    # ------------------------------------------------------------------------------ companies

    def companies(self) -> list[dict[str, Any]]:
        """Every company, each with ``realmId`` and ``name`` (a fixed contract)."""
        return list(self.call("GET", "companies"))

    def create_company(self, name: str, *, realm_id: str | None = None, seed: dict[str, Any] | None = None
                       ) -> dict[str, Any]:
        """A new company with QBO's starting lists, optionally seeded (``{"invoices": N, "seed": S}``)."""
        body: dict[str, Any] = {"name": name}
        if realm_id:
            body["realmId"] = realm_id
        if seed is not None:
            body["seed"] = seed
        return dict(self.call("POST", "companies", body, timeout=None if seed else _DEFAULT))

    def reset_company(self, realm: str) -> dict[str, Any]:
        """Empty a company back to its starting lists (all its data is dropped)."""
        return dict(self.call("POST", f"companies/{realm}/reset"))

    def seed_company(self, realm: str, invoices: int, seed: int = 0, **extra: Any) -> dict[str, Any]:
        """Add about ``invoices`` invoices with customers, items and payments, deterministically.

        Large seeds take minutes: no timeout.
        """
        return dict(self.call("POST", f"companies/{realm}/seed", {"invoices": invoices, "seed": seed, **extra},
                              timeout=None))

    def act(self, realm: str, entity: str, operation: str, body: dict[str, Any] | None = None, *,
            from_id: str | None = None, into_id: str | None = None, send_to: str | None = None) -> dict[str, Any]:
        """Change the company as a QuickBooks user would; the change shows in CDC and webhooks.

        Args:
            realm: the company.
            entity: a QBO entity name (``Customer``).
            operation: ``create``, ``update``, ``delete``, ``void``, ``inactivate``, ``merge`` or ``send``.
            body: the entity body (``Id`` for everything but create; SyncToken is filled in).
            from_id: ``merge``: the Id merged away.
            into_id: ``merge``: the Id that remains.
            send_to: ``send``: the address the document goes to.

        Returns:
            The emulator's answer, ``{entity: object}``.
        """
        request: dict[str, Any] = {"entity": entity, "operation": operation, "body": body or {}}
        extras = {"from_id": from_id, "into_id": into_id, "send_to": send_to}
        request.update({k: v for k, v in extras.items() if v is not None})
        return dict(self.call("POST", f"companies/{realm}/act", request))

    def export(self, realm: str, entity: str, *, include_deleted: bool = False) -> list[dict[str, Any]]:
        """Every object of ``entity`` (tombstones too with ``include_deleted``): the truth to compare with."""
        params = {"include_deleted": "true"} if include_deleted else None
        resp = self.response("GET", f"companies/{realm}/export/{entity}", params=params, timeout=None)
        if resp.status_code >= 400:
            raise EmulatorControlError(f"GET {resp.url} answered {resp.status_code}: {_short(resp.text)}",
                                       url=self.url, method="GET", target=resp.url, status=resp.status_code,
                                       body=resp.text)
        return [orjson.loads(line) for line in resp.content.splitlines() if line.strip()]

    def counts(self, realm: str) -> dict[str, dict[str, int]]:
        """Active, inactive and deleted objects per entity."""
        return dict(self.call("GET", f"companies/{realm}/counts", timeout=None))

    def sends(self, realm: str) -> list[dict[str, Any]]:
        """Documents "sent" by e-mail (recorded, never mailed)."""
        return list(self.call("GET", f"companies/{realm}/sends"))

    # ------------------------------------------------------------------------------ OAuth

    def tokens(self, realm: str, *, email: str | None = None) -> dict[str, Any]:
        """``access_token``, ``refresh_token``, ``client_id``, ``client_secret`` for ``realm``, no browser.

        A fixed contract; the token endpoint accepts what it returns. Never log the result.
        """
        return dict(self.call("POST", f"companies/{realm}/tokens", {"email": email} if email else None))

    def apps(self) -> list[dict[str, Any]]:
        """The developer apps (client id, redirect URIs)."""
        return list(self.call("GET", "apps"))

    def register_app(self, client_id: str | None = None, redirect_uris: Iterable[str] = (), *,
                     client_secret: str | None = None, name: str | None = None, replace: bool = False
                     ) -> dict[str, Any]:
        """Create a developer app, or add redirect URIs to one (all of them with ``replace``)."""
        body: dict[str, Any] = {"redirect_uris": list(redirect_uris), "replace": replace}
        body.update({k: v for k, v in {"client_id": client_id, "client_secret": client_secret, "name": name}.items()
                     if v is not None})
        return dict(self.call("POST", "apps", body))

    def users(self, realm: str | None = None) -> list[dict[str, Any]]:
        """QuickBooks users (those who can open ``realm`` when given)."""
        return list(self.call("GET", "users", params={"realmId": realm} if realm else None))

    def add_user(self, email: str, password: str, **fields: Any) -> dict[str, Any]:
        """A QuickBooks user (``givenName``, ``familyName``, ``realmIds``, ``accessAll`` ... in ``fields``)."""
        return dict(self.call("POST", "users", {"email": email, "password": password, **fields}))

    def expire_tokens(self, realm: str, what: str = "all") -> dict[str, Any]:
        """Expire a company's ``access``, ``refresh`` or ``all`` tokens, as if they lapsed."""
        return dict(self.call("POST", "oauth/expire", {"realmId": realm, "what": what}))

    def revoke_all(self, realm: str) -> dict[str, Any]:
        """Revoke every grant of ``realm`` (as if the user disconnected the app inside QuickBooks)."""
        return dict(self.call("POST", "oauth/revoke-all", {"realmId": realm}))

    # ------------------------------------------------------------------------------ clock

    def clock(self) -> dict[str, Any]:
        """The emulator's time: ``offset_seconds``, ``scale``, ``now``."""
        return dict(self.call("GET", "clock"))

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move emulated time forward (expire tokens, age CDC windows, fire webhook retries)."""
        return dict(self.call("POST", "clock", {"advance_seconds": seconds}))

    def set_clock_scale(self, scale: float) -> dict[str, Any]:
        """Emulated seconds per real second for lifetimes and retry delays."""
        return dict(self.call("POST", "clock", {"scale": scale}))

    # ------------------------------------------------------------------------------ traffic

    def faults(self) -> dict[str, Any]:
        """The injected faults now in force."""
        return dict(self.call("GET", "faults"))

    def set_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        """Inject faults: ``rates``, ``slow_delay_s``, ``scope``, ``next``, ``clear``, ``seed`` (README)."""
        return dict(self.call("POST", "faults", body))

    def clear_faults(self) -> dict[str, Any]:
        """Remove every injected fault."""
        return self.set_faults({"clear": True})

    def limits(self) -> dict[str, Any]:
        """The throttles' numbers (QBO's by default)."""
        return dict(self.call("GET", "limits"))

    def set_limits(self, body: dict[str, Any]) -> dict[str, Any]:
        """Change the throttles (``{"enabled": false}`` lifts them)."""
        return dict(self.call("POST", "limits", body))

    def counters(self, realm: str) -> dict[str, Any]:
        """Request, throttle and injected-fault counters of ``realm``."""
        return dict(self.call("GET", f"companies/{realm}/counters"))

    def metering(self) -> dict[str, Any]:
        """Metered reads and writes per company and month."""
        return dict(self.call("GET", "metering"))

    def reset_counters(self) -> dict[str, Any]:
        """Zero the counters."""
        return dict(self.call("POST", "counters/reset"))

    # ------------------------------------------------------------------------------ webhooks

    def webhook_subscriptions(self) -> list[dict[str, Any]]:
        """The webhook subscriptions."""
        return list(self.call("GET", "webhooks").get("subscriptions", []))

    def subscribe_webhooks(self, url: str, verifier_token: str, *, format: str = "cloudevents",
                           window_s: float | None = None, **extra: Any) -> dict[str, Any]:
        """Send every change of every company to ``url``, signed with ``verifier_token``.

        Args:
            url: the endpoint (the web app's ``/webhooks/quickbooks``).
            verifier_token: the HMAC key of the ``intuit-signature`` header.
            format: ``cloudevents`` or ``legacy``.
            window_s: grouping window (1 s by default in the emulator).
            extra: any other key of the subscription (``app``, duplicate and late probabilities...).
        """
        body: dict[str, Any] = {"url": url, "verifier_token": verifier_token, "format": format, **extra}
        if window_s is not None:
            body["window_s"] = window_s
        return dict(self.call("POST", "webhooks", body))

    def unsubscribe_webhooks(self, app: str = "default") -> dict[str, Any]:
        """Remove the subscription of ``app``."""
        return dict(self.call("DELETE", "webhooks", params={"app": app}))

    def webhook_deliveries(self, app: str | None = None) -> dict[str, Any]:
        """The delivery log (``deliveries``) and how many changes wait (``pending``)."""
        return dict(self.call("GET", "webhooks/deliveries", params={"app": app} if app else None))

    def flush_webhooks(self) -> dict[str, Any]:
        """Deliver what waits in the grouping window now."""
        return dict(self.call("POST", "webhooks/flush"))

    # ------------------------------------------------------------------------------ tokens

    def token_source(self, realm: str) -> EmulatorControlTokens:
        """A :class:`~qb_pipelines.qbo.client.TokenSource` for ``realm`` minted by this control API."""
        return EmulatorControlTokens(self, realm)


class EmulatorControlTokens:
    """:class:`qb_pipelines.qbo.client.TokenSource` backed by the control API's ``tokens`` route.

    It asks for a fresh grant at start and again when the client reports the current access
    token stale (a 401), so it plays the part a connection's stored tokens play in production
    (:meth:`qb_pipelines.store.connections.ConnectionStore.token_source`) for benchmarks and tests
    that skip OAuth.

    Args:
        control: the emulator's control client, or its base URL.
        realm: the company's realmId.
        timeout_s: HTTP timeout when ``control`` is a URL.
    """

    def __init__(self, control: EmulatorControl | str, realm: str, *, timeout_s: float = 30.0) -> None:
        self.control = control if isinstance(control, EmulatorControl) else EmulatorControl(control,
                                                                                             timeout_s=timeout_s)
        self.url, self.realm = self.control.url, realm
        self._lock = threading.Lock()
        self._token = self._mint()

    def __repr__(self) -> str:  # never show the token
        return f"EmulatorControlTokens(url={self.url!r}, realm={self.realm!r})"

    def _mint(self) -> str:
        return str(self.control.tokens(self.realm)["access_token"])

    def access_token(self) -> str:
        return self._token

    def refresh(self, stale_access_token: str) -> str:
        """A new access token unless another thread already replaced the stale one."""
        with self._lock:
            if self._token == stale_access_token:
                self._token = self._mint()
            return self._token
