"""The records API: the app's HTTP door to the outbox and the change feed (``/api/v1/...``).

=========================================================  ======================================
``POST /api/v1/tenants/{tenant}/records``                  one record, or ``{"records": [...]}``
                                                           (at most :data:`MAX_RECORDS`, one
                                                           transaction: all stored or none) ->
                                                           202 with the outbox row(s)
``GET  /api/v1/tenants/{tenant}/records/{entity}/{app_id}``  where the record's latest version is
``GET  /api/v1/tenants/{tenant}/changes?after=SEQ&limit=N``   the change feed after the app's cursor
``GET  /api/v1/schema``                                    every payload's JSON Schema (no key)
=========================================================  ======================================

The app is a program, not a browser: the API is served by :class:`ApiDoor`, an ASGI middleware
placed outside the admin app's session middleware (as the webhook intake is), so a request never
reads nor gets a session cookie and no CSRF applies. Each tenant's routes need one of the
tenant's API keys (``qb-pipelines api-keys create TENANT``), sent as ``Authorization: Bearer
<key>`` or ``X-API-Key: <key>``:

* no key, an unknown or a revoked key: 401 with ``WWW-Authenticate: Bearer``;
* a key of another tenant, or a tenant that does not exist: 404, the same answer, so a key never
  tells whether another tenant exists;
* a record that breaks the contract: 422 ``{"error", "field"}``, the field a JSON path
  (``data.lines[2].qty``; ``records[3].data.email`` in a batch); malformed JSON: 400; a body over
  :data:`MAX_BODY_BYTES`: 413. Nothing is stored on any error.
* more than ``QB_API_RATE_LIMIT`` requests a second on one key (bursts of twice that, per web
  worker): 429 with ``Retry-After``.

Enqueueing is idempotent as the outbox is: the same ``(entity, app_id, version)`` again answers
the stored row with ``"duplicate": true``; an older version than the latest answers the latest
with ``"ignored": true``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from typing import Any
from urllib.parse import quote

from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from qb_pipelines.store.db import SQLITE_BEGIN_OPTION
from qb_pipelines.store.feed import MAX_READ
from qb_pipelines.store.outbox import EnqueueResult, OutboxView
from qb_pipelines.store.repository import UnknownTenantError
from qb_pipelines.sync.companies import UnknownCompanyError
from qb_pipelines.sync.push import PayloadError, enqueue_record
from qb_pipelines.sync.push.contract import ENTITIES, Record, schemas, validate
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.web.dagster_launch import PushLauncher

log = logging.getLogger(__name__)

__all__ = ["MAX_BODY_BYTES", "MAX_RECORDS", "PREFIX", "ApiDoor", "api_middleware", "routes"]

#: Every path of the API starts with this.
PREFIX = "/api/"
#: Largest request body (a record with 750 lines is about 100 KB; send big sets in several requests).
MAX_BODY_BYTES = 5 * 1024 * 1024
#: Most records in one ``{"records": [...]}`` request.
MAX_RECORDS = 500

_NO_TENANT = "no such tenant for this API key"


def _error(status: int, message: str, *, field: str | None = None, headers: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if field is not None:
        body["field"] = field
    return JSONResponse(body, status_code=status, headers=headers)


def _when(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# ------------------------------------------------------------------------------------------------
# keys and limits
# ------------------------------------------------------------------------------------------------
class KeyRate:
    """A token bucket per API key (in this process): ``rate`` requests a second, bursts of ``2 * rate``."""

    def __init__(self, rate: float) -> None:
        self.rate = float(rate)
        self.burst = max(1.0, 2 * self.rate)
        self._buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """Spend one request of ``key``; returns 0 when allowed, else the seconds to wait."""
        if self.rate <= 0 or math.isinf(self.rate):
            return 0.0
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1:
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self._buckets[key] = (tokens - 1, now)
        if len(self._buckets) > 10_000:  # forget idle keys (a full bucket is the default anyway)
            self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < 60}
        return 0.0


def _presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("x-api-key", "").strip() or None


async def _tenant(request: Request) -> str | Response:
    """The tenant of the path if the request's key opens it; the error response otherwise."""
    runtime: Runtime = request.app.state.runtime
    key = _presented_key(request)
    tenant = await run_in_threadpool(runtime.api_keys.tenant_of, key) if key else None
    if tenant is None:
        return _error(401, "Missing or invalid API key: send 'Authorization: Bearer <key>' (or 'X-API-Key: <key>') "
                           "with a key made by `qb-pipelines api-keys create TENANT`.",
                      headers={"WWW-Authenticate": 'Bearer realm="qb-pipelines"'})
    if tenant != request.path_params["tenant"]:
        return _error(404, _NO_TENANT)
    wait = request.app.state.key_rate.take(hashlib.sha256(key.encode()).hexdigest()[:24])
    if wait > 0:
        return _error(429, f"Too many requests on this API key: at most {request.app.state.key_rate.rate:g} a "
                           "second. Slow down, or send records in batches ({\"records\": [...]}).",
                      headers={"Retry-After": str(max(1, math.ceil(wait)))})
    return tenant


# ------------------------------------------------------------------------------------------------
# records
# ------------------------------------------------------------------------------------------------
class _TooLarge(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _row_json(result: EnqueueResult) -> dict[str, Any]:
    row = result.row
    return {"id": row.id, "entity": row.entity, "app_id": row.app_id, "version": row.version, "op": row.op,
            "status": row.api_status, "detail_status": row.status, "duplicate": result.duplicate,
            "ignored": result.ignored}


def _parse_records(data: Any) -> tuple[list[Record], bool] | Response:
    """Validate every record before anything is stored; the 422 names the first faulty field."""
    batch = isinstance(data, dict) and "records" in data
    if batch:
        extra = sorted(set(data) - {"records"})
        if extra:
            return _error(422, "a batch carries only \"records\"", field=extra[0])
        items = data["records"]
        if not isinstance(items, list) or not items:
            return _error(422, "\"records\" must be a non-empty list of records", field="records")
        if len(items) > MAX_RECORDS:
            return _error(422, f"at most {MAX_RECORDS} records per request (got {len(items)}); send several requests",
                          field="records")
    else:
        items = [data]
    records = []
    for i, item in enumerate(items):
        try:
            records.append(validate(item))
        except PayloadError as exc:
            return _error(422, exc.message, field=f"records[{i}].{exc.field}" if batch else exc.field)
    return records, batch


class _AtRecord(Exception):
    """A record refused while storing (its transaction rolled back)."""

    def __init__(self, index: int, error: PayloadError) -> None:
        super().__init__(str(error))
        self.index, self.error = index, error


def _enqueue_all(runtime: Runtime, tenant: str, records: list[Record]) -> list[EnqueueResult]:
    """Every record in one transaction: all stored, or none.

    On SQLite the transaction takes the write lock at once (``BEGIN IMMEDIATE``): enqueueing reads
    the latest version before it writes, and a deferred transaction caught between a concurrent
    commit and its own write fails with "database is locked" instead of waiting its turn.
    """
    out = []
    with runtime.engine.connect().execution_options(**{SQLITE_BEGIN_OPTION: "IMMEDIATE"}) as conn, conn.begin():
        for i, record in enumerate(records):
            try:
                out.append(enqueue_record(conn, tenant, record))
            except PayloadError as exc:  # raised inside the transaction: everything rolls back
                raise _AtRecord(i, exc) from exc
    return out


async def post_records(request: Request) -> Response:
    tenant = await _tenant(request)
    if isinstance(tenant, Response):
        return tenant
    try:
        body = await _read_body(request)
    except _TooLarge:
        return _error(413, f"Request body larger than {MAX_BODY_BYTES} bytes: send fewer records per request.")
    except ClientDisconnect:
        return _error(400, "The request body ended early.")
    try:
        data = json.loads(body, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError) as exc:
        return _error(400, f"Malformed JSON: {exc}")
    parsed = _parse_records(data)
    if isinstance(parsed, Response):
        return parsed
    records, batch = parsed
    runtime: Runtime = request.app.state.runtime
    try:
        results = await run_in_threadpool(_enqueue_all, runtime, tenant, records)
    except _AtRecord as exc:  # found while storing (a created_at without time zone...): nothing stored
        field = f"records[{exc.index}].{exc.error.field}" if batch else exc.error.field
        return _error(422, exc.error.message, field=field)
    except UnknownTenantError:
        return _error(404, _NO_TENANT)
    except SQLAlchemyError as exc:
        log.error("records API: enqueue for %s failed: %s", tenant, type(exc).__name__)
        return _error(503, "The outbox is unavailable right now; nothing was stored. Try again.",
                      headers={"Retry-After": "5"})
    launcher = request.app.state.push_launcher
    if launcher is not None and any(not (r.duplicate or r.ignored) for r in results):
        launcher.records_enqueued(tenant)  # best effort, in the background; the sensor is the backstop
    if batch:
        return JSONResponse({"records": [_row_json(r) for r in results]}, status_code=202)
    first = results[0].row
    return JSONResponse(_row_json(results[0]), status_code=202,
                        headers={"Location": f"/api/v1/tenants/{tenant}/records/{first.entity}/"
                                             f"{quote(first.app_id, safe='')}"})


def record_status(runtime: Runtime, tenant: str, row: OutboxView) -> dict[str, Any]:
    """What ``GET .../records/{entity}/{app_id}`` answers for the record's latest row."""
    qbo_id, sync_token = row.qbo_id, row.sync_token
    if qbo_id is None or sync_token is None:
        realm = row.realm_id
        if realm is None:
            view = runtime.connections.get(tenant)
            realm = getattr(view, "realm_id", None)
        mapping = runtime.mappings.get(tenant, realm, row.entity, row.app_id) if realm else None
        if mapping is not None:
            qbo_id, sync_token = qbo_id or mapping.qbo_id, sync_token or mapping.sync_token
    error = None
    if row.status != "synced" and (row.error_code or row.error_message):
        error = {"code": row.error_code, "message": row.error_message, "next_step": row.next_step}
    return {"entity": row.entity, "app_id": row.app_id, "version": row.version, "op": row.op,
            "status": row.api_status, "detail_status": row.status, "reason": row.reason, "qbo_id": qbo_id,
            "sync_token": sync_token, "error": error, "attempts": row.attempts,
            "next_attempt_at": _when(row.next_attempt_at), "updated_at": _when(row.updated_at)}


async def get_record(request: Request) -> Response:
    tenant = await _tenant(request)
    if isinstance(tenant, Response):
        return tenant
    entity, app_id = request.path_params["entity"], request.path_params["app_id"]
    if entity not in ENTITIES:
        return _error(404, f"unknown entity {entity!r}: one of {', '.join(ENTITIES)}")
    runtime: Runtime = request.app.state.runtime

    def read() -> dict[str, Any] | None:
        row = runtime.outbox.record(tenant, entity, app_id)
        return record_status(runtime, tenant, row) if row is not None else None

    found = await run_in_threadpool(read)
    if found is None:
        return _error(404, f"no {entity} {app_id!r} was sent for this tenant")
    return JSONResponse(found)


# ------------------------------------------------------------------------------------------------
# the feed and the schema
# ------------------------------------------------------------------------------------------------
def _int_param(request: Request, name: str, default: int, low: int, high: int) -> int | Response:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        return _error(400, f"{name} must be a whole number from {low} to {high}", field=name)
    return int(text)


async def get_changes(request: Request) -> Response:
    tenant = await _tenant(request)
    if isinstance(tenant, Response):
        return tenant
    after = _int_param(request, "after", 0, 0, 2**62)
    if isinstance(after, Response):
        return after
    limit = _int_param(request, "limit", 100, 1, MAX_READ)
    if isinstance(limit, Response):
        return limit
    runtime: Runtime = request.app.state.runtime
    changes, next_seq = await run_in_threadpool(runtime.feed.read, tenant, after, limit)
    return JSONResponse({"changes": [c.as_json() for c in changes], "next": next_seq})


async def get_schema(request: Request) -> Response:
    return JSONResponse(schemas())


routes = [
    Route("/api/v1/schema", get_schema, methods=["GET"]),
    Route("/api/v1/tenants/{tenant}/records", post_records, methods=["POST"]),
    Route("/api/v1/tenants/{tenant}/records/{entity}/{app_id:path}", get_record, methods=["GET"]),
    Route("/api/v1/tenants/{tenant}/changes", get_changes, methods=["GET"]),
]


# ------------------------------------------------------------------------------------------------
# serving it beside the admin app
# ------------------------------------------------------------------------------------------------
async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    headers = getattr(exc, "headers", None)
    message = {404: "no such API route (see the README: the records API)", 405: "method not allowed here"}.get(
        status, str(getattr(exc, "detail", "error")))
    return _error(status, message, headers=headers)


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("records API: unhandled error on %s %s: %s", request.method, request.url.path, type(exc).__name__)
    return _error(500, "Something went wrong on our side; nothing was stored if the request wrote. Try again.")


def _company_of(runtime: Runtime, tenant: str) -> str | None:
    try:
        return runtime.resolve(tenant).key
    except UnknownCompanyError:
        return None


def api_app(runtime: Runtime, rate_per_s: float = 50.0, dagster_graphql_url: str | None = None) -> Starlette:
    """The API as its own small Starlette app (JSON errors, the runtime, the per-key limiter).

    With ``dagster_graphql_url`` an enqueue asks Dagster for the push run at once
    (:class:`~qb_pipelines.web.dagster_launch.PushLauncher`).
    """
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error, 500: _server_error})
    app.state.runtime = runtime
    app.state.key_rate = KeyRate(rate_per_s)
    app.state.push_launcher = (PushLauncher(dagster_graphql_url, lambda tenant: _company_of(runtime, tenant))
                               if dagster_graphql_url else None)
    return app


class ApiDoor:
    """ASGI middleware sending ``/api/...`` to the API app, everything else to the admin app."""

    def __init__(self, app: ASGIApp, *, api: ASGIApp, prefix: str = PREFIX) -> None:
        self.app, self.api, self.prefix = app, api, prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and (path.startswith(self.prefix) or path == self.prefix.rstrip("/")):
            await self.api(scope, receive, send)
            return
        await self.app(scope, receive, send)


def api_middleware(settings: Any, runtime: Runtime) -> Middleware:
    """The :class:`ApiDoor` for the admin app (:func:`qb_pipelines.web.app.create_app`)."""
    return Middleware(ApiDoor, api=api_app(runtime, float(getattr(settings, "api_rate_per_s", 50.0)),
                                           getattr(settings, "dagster_graphql_url", None)))
