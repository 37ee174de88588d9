"""Helpers of the QBO client's tests: clients on emulator companies, recorded requests and delays.

A client here talks to a real emulator over HTTP with tokens of a real grant (minted by the control
API, refreshed through the real token endpoint), its own rate limiter, and optionally a
:class:`Recorder` that keeps every request sent and every retry delay (so backoff costs no time).
"""

from __future__ import annotations

from typing import Any

import requests

from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.client import MemoryTokenSource, QBOClient
from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.qbo.environments import environment
from qb_pipelines.qbo.oauth import IntuitOAuth, TokenSet
from qb_pipelines.qbo.ratelimit import CompanyRateLimiter

CALLBACK = "http://localhost:3000/callback"  # registered for the emulator's default app


def oauth_for(running: RunningEmulator, tokens: dict[str, Any] | None = None) -> IntuitOAuth:
    """The emulator's default app as an :class:`IntuitOAuth` client."""
    tokens = tokens or {"client_id": "emulator-client-id", "client_secret": "emulator-client-secret"}
    return IntuitOAuth(tokens["client_id"], tokens["client_secret"], CALLBACK, environment("emulator", running.url))


def token_source(running: RunningEmulator, realm: str, **kwargs: Any) -> MemoryTokenSource:
    """Tokens of a new grant on ``realm`` (no browser), refreshed through the real token endpoint."""
    with EmulatorControl(running.url) as control:
        body = control.tokens(realm)
    return MemoryTokenSource(oauth_for(running, body), TokenSet.from_response(body, realm_id=realm), **kwargs)


class Recorder:
    """Records every HTTP request the client sends (URL, method, headers) and every retry delay."""

    def __init__(self) -> None:
        self.requests: list[requests.PreparedRequest] = []
        self.delays: list[float] = []

    def hook(self, response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
        self.requests.append(response.request)
        return response

    def sleep(self, seconds: float) -> None:
        self.delays.append(seconds)


def make_client(running: RunningEmulator, realm: str, tokens: Any = None, *, recorder: Recorder | None = None,
                **kwargs: Any) -> QBOClient:
    """A client on ``realm`` with its own limiter (QBO's numbers) and, optionally, a recorder."""
    session = requests.Session()
    if recorder is not None:
        session.hooks["response"].append(recorder.hook)
        kwargs.setdefault("sleep", recorder.sleep)
    kwargs.setdefault("rate_limiter", CompanyRateLimiter())
    return QBOClient(realm, tokens or token_source(running, realm), environment("emulator", running.url),
                     session=session, **kwargs)


def counters(running: RunningEmulator, realm: str) -> dict[str, Any]:
    """The company's request, throttle and injected-fault counters."""
    with EmulatorControl(running.url) as control:
        return control.counters(realm)
