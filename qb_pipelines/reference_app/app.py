"""Fieldwise's Starlette app: its settings, its routes, and the worker that hears back.

Settings come from the environment (``qb-pipelines reference-app serve`` options override them):

========================  =====================================================================
``REFAPP_DATABASE``       the app's SQLite file (created when missing)
``REFAPP_API_URL``        the integration's admin web app, which serves the records API
``REFAPP_API_KEY``        the tenant's API key (``qb-pipelines api-keys create TENANT``)
``REFAPP_TENANT``         the tenant key
``REFAPP_POLL_SECONDS``   how often to read the change feed (default 5; 0: never, callback only)
``REFAPP_CALLBACK_SECRET``the signed callback's secret; without it ``/hooks/quickbooks`` answers 404
========================  =====================================================================
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from qb_pipelines.reference_app import pages
from qb_pipelines.reference_app.client import IntegrationClient
from qb_pipelines.reference_app.db import Database
from qb_pipelines.reference_app.feed import SIGNATURE_HEADER, Worker, apply, verified


class ConfigError(ValueError):
    """A missing or bad setting (the message is one line naming it)."""


@dataclass(frozen=True)
class Config:
    database: str
    api_url: str
    api_key: str
    tenant: str
    poll_seconds: float = 5.0
    callback_secret: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Config:
        """Read ``REFAPP_*`` (``overrides`` that are not ``None`` win); raises :class:`ConfigError`."""
        env = os.environ if env is None else env
        names = {"database": "REFAPP_DATABASE", "api_url": "REFAPP_API_URL", "api_key": "REFAPP_API_KEY",
                 "tenant": "REFAPP_TENANT", "poll_seconds": "REFAPP_POLL_SECONDS",
                 "callback_secret": "REFAPP_CALLBACK_SECRET"}
        values = {f: overrides.get(f) if overrides.get(f) not in (None, "") else env.get(var) for f, var in names.items()}
        missing = [names[f] for f in ("database", "api_url", "api_key", "tenant") if not values[f]]
        if missing:
            raise ConfigError(f"set {', '.join(missing)} (the reference app's database, the integration's URL, "
                              "the tenant's API key from `qb-pipelines api-keys create TENANT`, the tenant)")
        try:
            poll = float(values["poll_seconds"]) if values["poll_seconds"] not in (None, "") else 5.0
        except ValueError:
            raise ConfigError("REFAPP_POLL_SECONDS must be a number of seconds (0: callback only)") from None
        return cls(str(values["database"]), str(values["api_url"]), str(values["api_key"]), str(values["tenant"]),
                   poll, str(values["callback_secret"]) if values["callback_secret"] else None)


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def callback(request: Request) -> Response:
    """``POST /hooks/quickbooks``: the integration's signed delivery of the change feed."""
    secret = request.app.state.config.callback_secret
    if not secret:
        return PlainTextResponse("no callback secret configured", status_code=404)
    raw = await request.body()  # verify the exact bytes, before parsing anything
    if not verified(raw, request.headers.get(SIGNATURE_HEADER), secret):
        return PlainTextResponse("bad signature", status_code=401)
    body = json.loads(raw)
    applied = await run_in_threadpool(apply, request.app.state.db, list(body.get("changes") or []))
    return JSONResponse({"applied": applied})  # 2xx: the integration moves its cursor


def create_app(config: Config, *, worker: bool = True) -> Starlette:
    """The app; with ``worker`` (and ``poll_seconds`` > 0) it polls the feed and resends in the background."""
    db = Database(config.database)
    client = IntegrationClient(config.api_url, config.tenant, config.api_key)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        loop = Worker(db, client, config.poll_seconds) if worker and config.poll_seconds > 0 else None
        if loop:
            loop.start()
        try:
            yield
        finally:
            if loop:
                loop.stop()

    doc_routes = []
    for base in ("/invoices", "/estimates"):
        doc_routes += [Route(base, pages.documents, methods=["GET", "POST"]),
                       Route(base + "/{app_id}", pages.document, methods=["GET"])]
    app = Starlette(lifespan=lifespan, routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/hooks/quickbooks", callback, methods=["POST"]),
        Route("/", pages.home, methods=["GET"]),
        Route("/customers", pages.customers, methods=["GET", "POST"]),
        Route("/customers/{app_id}", pages.customer, methods=["GET", "POST"]),
        Route("/items", pages.items, methods=["GET", "POST"]),
        Route("/payments", pages.payments, methods=["GET"]),
        *doc_routes,
    ])
    app.state.config, app.state.db, app.state.client = config, db, client
    return app
