"""The QBO Accounting API v3 routes under ``/v3/company/{realmId}/`` (reference §1.2).

Every request goes through :func:`_handle`, which does what QBO's gateway does before and
after the service: authenticate the bearer token (401 lower-case envelope, 403 for another
company), admit it through the throttles and fault injection (429/3001, 5xx), replay a repeated
``requestid`` verbatim, wrap the result in the right envelope with ``time``, and turn faults into
the capitalised ``Fault`` envelope. ``minorversion`` may be absent or any value (§1.5).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from qb_pipelines.emulator import faults, pdf
from qb_pipelines.emulator.clock import qbo_envelope_time
from qb_pipelines.emulator.core import Emulator
from qb_pipelines.emulator.faults import AuthFailure, QBOFault
from qb_pipelines.qbo import registry

JSON = "application/json;charset=UTF-8"
MAX_BATCH_ITEMS = 30
MAX_REQUESTID = 50


class _Result:
    """What a handler produced: raw JSON bytes (already enveloped) or another media type."""

    def __init__(self, body: bytes, media_type: str = JSON, status: int = 200) -> None:
        self.body = body
        self.media_type = media_type
        self.status = status


def _envelope(emu: Emulator, realm: str, key: str, payload: Any) -> bytes:
    time_text = qbo_envelope_time(emu.clock.timestamp(), emu.company_tz(realm))
    if isinstance(payload, bytes | bytearray):
        return b'{"' + key.encode() + b'":' + bytes(payload) + b',"time":"' + time_text.encode() + b'"}'
    return orjson.dumps({key: payload, "time": time_text})


def fault_body(emu: Emulator, realm: str, fault: QBOFault) -> bytes:
    return orjson.dumps({"Fault": fault.fault_json(),
                         "time": qbo_envelope_time(emu.clock.timestamp(), emu.company_tz(realm))})


class _RequestIdLocks:
    """One lock per (realm, requestid): two concurrent retries of a write execute once."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    def get(self, realm: str, requestid: str) -> threading.Lock:
        with self._guard:
            if len(self._locks) > 10000:
                self._locks = {k: v for k, v in self._locks.items() if v.locked()}
            return self._locks.setdefault((realm, requestid), threading.Lock())


_REQUEST_LOCKS = _RequestIdLocks()


def _emu(request: Request) -> Emulator:
    return request.app.state.emu


async def _handle(request: Request, kind: str, work: Callable[[Emulator, str, bytes], _Result],
                  *, replayable: bool = False) -> Response:
    """Authenticate, admit, (replay), run ``work`` in a worker thread, render faults."""
    from starlette.concurrency import run_in_threadpool

    emu = _emu(request)
    realm = request.path_params["realm"]
    raw = await request.body()
    return await run_in_threadpool(_handle_sync, emu, request, realm, kind, work, raw, replayable)


def _handle_sync(emu: Emulator, request: Request, realm: str, kind: str,
                 work: Callable[[Emulator, str, bytes], _Result], raw: bytes, replayable: bool) -> Response:
    headers: dict[str, str] = {}
    try:
        authorization = request.headers.get("authorization")
        bearer = emu.oauth.bearer(realm, authorization)
        with emu.traffic.admit(realm, kind=kind, app_key=bearer.app_key, path=request.url.path,
                               method=request.method, token_id=bearer.token_id) as admission:
            requestid = request.query_params.get("requestid") if replayable else None
            if requestid:
                if len(requestid) > MAX_REQUESTID:
                    raise faults.business(
                        f"You cannot enter more than {MAX_REQUESTID} characters in the request_id field. You "
                        f"tried entering {requestid}, which is {len(requestid)} characters.")
                with _REQUEST_LOCKS.get(realm, requestid):
                    stored = _replay(emu, realm, requestid)
                    if stored is not None:
                        result = stored
                    else:
                        result = _run(emu, realm, work, raw)
                        _remember(emu, realm, requestid, result)
            else:
                result = _run(emu, realm, work, raw)
            after = getattr(admission, "after_execute", None)
            if after is not None:
                after()
        return Response(result.body, status_code=result.status, media_type=result.media_type, headers=headers)
    except AuthFailure as exc:
        return Response(
            orjson.dumps(exc.body(int(emu.clock.timestamp() * 1000))),
            status_code=401,
            media_type=JSON,
            headers={"www-authenticate": 'Bearer realm="Intuit", error="invalid_token"'},
        )
    except QBOFault as fault:
        return _fault_response(emu, realm, fault)


def _fault_response(emu: Emulator, realm: str, fault: QBOFault) -> Response:
    if fault.status == 503 and fault.headers.get("x-emulator-raw") == "1":
        # the gateway's 503 is an HTML page, not a Fault (§4.7)
        return Response("<html><body><h1>503 Service Unavailable</h1></body></html>", status_code=503,
                        media_type="text/html")
    headers = {k: v for k, v in fault.headers.items() if not k.startswith("x-emulator")}
    return Response(fault_body(emu, realm, fault), status_code=fault.status, media_type=JSON, headers=headers)


def _run(emu: Emulator, realm: str, work: Callable[[Emulator, str, bytes], _Result], raw: bytes) -> _Result:
    try:
        return work(emu, realm, raw)
    except QBOFault as fault:
        if fault.status == 400:
            # validation faults are outcomes: a repeated requestid replays them too
            return _Result(fault_body(emu, realm, fault), status=400)
        raise
    except AuthFailure:
        raise
    except Exception as exc:  # an emulator bug must still look like QBO's SystemFault
        import logging

        logging.getLogger(__name__).exception("emulator error")
        raise faults.system_error(f"System Failure Error: {type(exc).__name__}: {exc}") from exc


def _replay(emu: Emulator, realm: str, requestid: str) -> _Result | None:
    with emu.db.read() as c:
        row = c.execute("SELECT status, content_type, body FROM requestids WHERE realm=? AND requestid=?",
                        (realm, requestid)).fetchone()
    return _Result(bytes(row[2]), row[1], row[0]) if row else None


def _remember(emu: Emulator, realm: str, requestid: str, result: _Result) -> None:
    with emu.db.tx() as c:
        c.execute("INSERT OR REPLACE INTO requestids(realm, requestid, status, content_type, body, created_at)"
                  " VALUES (?, ?, ?, ?, ?, ?)",
                  (realm, requestid, result.status, result.media_type, result.body, emu.clock.timestamp()))


def _json_body(raw: bytes, *entity: str) -> dict:
    if not raw.strip():
        raise faults.validation("2020", "Required param missing, need to supply the required value for the API",
                                "Request body is missing. Send the entity as JSON.", "")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise faults.validation("2010", "Request has invalid or unsupported property",
                                f"Property Name:Failed to parse json object; {exc}", "") from None
    if not isinstance(body, dict):
        raise faults.validation("2010", "Request has invalid or unsupported property",
                                "The request body must be a JSON object.", "")
    key = next((k for k in entity if k in body), None)
    if key is not None and len(body) == 1 and isinstance(body.get(key), dict):
        body = body[key]  # some clients wrap the entity in its name (or QBO's wire name)
    return body


def _entity_def(segment: str) -> registry.EntityDef:
    ent = registry.find(segment)
    if ent is None:
        raise QBOFault(404, "ValidationFault", [faults.FaultError(
            "Unsupported Operation", f"Operation Could not find resource for relative : /{segment} of full path",
            "500", "")])
    return ent


# ---------------------------------------------------------------------------- handlers
async def query(request: Request) -> Response:
    from qb_pipelines.emulator import query as q

    text = request.query_params.get("query")
    minorversion = request.query_params.get("minorversion")

    def work(emu: Emulator, realm: str, raw: bytes) -> _Result:
        statement = text if text is not None else raw.decode("utf-8", errors="replace")
        return _Result(_envelope(emu, realm, "QueryResponse", q.execute(emu, realm, statement, minorversion)))

    return await _handle(request, "read", work)


async def cdc(request: Request) -> Response:
    from qb_pipelines.emulator import cdc as cdc_mod

    entities = request.query_params.get("entities", "")
    since = request.query_params.get("changedSince", "")

    def work(emu: Emulator, realm: str, raw: bytes) -> _Result:
        if not entities:
            raise faults.required("entities")
        if not since:
            raise faults.required("changedSince")
        return _Result(cdc_mod.changes(emu, realm, entities, since))

    return await _handle(request, "read", work)


async def report(request: Request) -> Response:
    from qb_pipelines.emulator import reports

    name = request.path_params["name"]
    params = dict(request.query_params)
    params.pop("minorversion", None)

    def work(emu: Emulator, realm: str, raw: bytes) -> _Result:
        # reports are the root object: no envelope, no top-level time (§8)
        return _Result(orjson.dumps(reports.report(emu, realm, name, params)))

    return await _handle(request, "read", work)


async def read_entity(request: Request) -> Response:
    segment = request.path_params["entity"]
    obj_id = request.path_params["id"]

    def work(emu: Emulator, realm: str, raw: bytes) -> _Result:
        ent = _entity_def(segment)
        ident = "1" if ent.kind is registry.Kind.SINGLETON and obj_id == realm else obj_id
        return _Result(_envelope(emu, realm, ent.json_key, emu.engine.read(realm, ent.name, ident)))

    return await _handle(request, "read", work)


async def read_preferences(request: Request) -> Response:
    def work(emu: Emulator, realm: str, raw: bytes) -> _Result:
        return _Result(_envelope(emu, realm, "Preferences", emu.engine.read(realm, "Preferences", "1")))

    return await _handle(request, "read", work)


async def read_exchange_rate(request: Request) -> Response:
    """``GET /exchangerate?sourcecurrencycode=EUR&asofdate=2024-01-31``: the rate in effect then."""
    params = {k.lower(): v for k, v in request.query_params.items()}

    def work(emu: Emulator, realm: str, raw: bytes) -> _Result:
        rate = emu.engine.exchange_rate(realm, params.get("sourcecurrencycode"), params.get("asofdate"))
        return _Result(_envelope(emu, realm, "ExchangeRate", rate))

    return await _handle(request, "read", work)


async def write_entity(request: Request) -> Response:
    segment = request.path_params["entity"]
    operation = (request.query_params.get("operation") or "").lower()
    include = (request.query_params.get("include") or "").lower()

    def work(emu: Emulator, realm: str, raw: bytes) -> _Result:
        ent = _entity_def(segment)
        body = _json_body(raw, ent.name, ent.json_key)
        out = _write(emu, realm, ent, body, operation, include)
        return _Result(_envelope(emu, realm, ent.json_key, out))

    return await _handle(request, "write", work, replayable=True)


def _write(emu: Emulator, realm: str, ent: registry.EntityDef, body: dict, operation: str, include: str) -> dict:
    if ent.kind is registry.Kind.SINGLETON:
        if ent.name == "CompanyInfo":
            body.setdefault("Id", "1")
        return emu.engine.update(realm, ent.name, body)
    if operation == "delete":
        return emu.engine.delete(realm, ent.name, body)
    if operation == "void" or include == "void":
        return emu.engine.void(realm, ent.name, body)
    if operation not in ("", "create", "update"):
        raise faults.unsupported(f"{operation} on {ent.name}")
    if ent.identity(body) is not None or operation == "update":  # a wrapped template's Id counts
        return emu.engine.update(realm, ent.name, body)
    return emu.engine.create(realm, ent.name, body)


async def entity_pdf(request: Request) -> Response:
    segment = request.path_params["entity"]
    obj_id = request.path_params["id"]

    def work(emu: Emulator, realm: str, raw: bytes) -> _Result:
        ent = _entity_def(segment)
        if not ent.pdf:
            raise faults.unsupported(f"PDF for {ent.name}")
        body = emu.engine.read(realm, ent.name, obj_id)
        company = emu.engine.read(realm, "CompanyInfo", "1")
        return _Result(pdf.render(ent.name, body, company), media_type="application/pdf")

    return await _handle(request, "read", work)


async def entity_send(request: Request) -> Response:
    segment = request.path_params["entity"]
    obj_id = request.path_params["id"]
    send_to = request.query_params.get("sendTo")

    def work(emu: Emulator, realm: str, raw: bytes) -> _Result:
        ent = _entity_def(segment)
        return _Result(_envelope(emu, realm, ent.json_key, emu.engine.send(realm, ent.name, obj_id, send_to)))

    return await _handle(request, "write", work, replayable=True)


async def batch(request: Request) -> Response:
    requestid = request.query_params.get("requestid") or ""
    minorversion = request.query_params.get("minorversion")

    def work(emu: Emulator, realm: str, raw: bytes) -> _Result:
        body = _json_body(raw)
        items = body.get("BatchItemRequest")
        if not isinstance(items, list) or not items:
            raise faults.required("BatchItemRequest")
        if len(items) > MAX_BATCH_ITEMS:
            raise faults.business(
                f"The batch request has {len(items)} items; the maximum is {MAX_BATCH_ITEMS}. Split it into "
                f"batches of {MAX_BATCH_ITEMS} or fewer.", "BatchItemRequest")
        seen: set[str] = set()
        out = []
        for item in items:
            out.append(_batch_item(emu, realm, item, requestid, seen, minorversion))
        # Intuit meters the work inside a batch: queries as reads (CorePlus), the rest as writes
        queries = sum(1 for item in items if isinstance(item, dict) and "Query" in item)
        if queries:
            emu.traffic.meter(realm, "read", queries)
        if len(items) - queries:
            emu.traffic.meter(realm, "write", len(items) - queries)
        return _Result(_envelope(emu, realm, "BatchItemResponse", orjson.dumps(out)))

    return await _handle(request, "batch", work, replayable=True)


def _batch_item(emu: Emulator, realm: str, item: Any, requestid: str, seen: set[str],
                minorversion: str | None) -> dict:
    from qb_pipelines.emulator import query as q

    bid = str(item.get("bId", "")) if isinstance(item, dict) else ""
    try:
        if not bid:
            raise faults.required("bId")
        if bid in seen:
            raise faults.business(f"Duplicate bId {bid} in the batch: each item needs its own bId.", "bId")
        seen.add(bid)
        if requestid and len(requestid) + len(bid) > MAX_REQUESTID:
            raise faults.business(
                f"You cannot enter more than {MAX_REQUESTID} characters in the request_id field. You tried "
                f"entering {requestid}{bid}, which is {len(requestid) + len(bid)} characters.")
        if "Query" in item:
            return {"bId": bid, "QueryResponse": orjson.Fragment(q.execute(emu, realm, str(item["Query"]), minorversion))}
        operation = str(item.get("operation", "")).lower()
        keys = [k for k in item if k not in ("bId", "operation", "optionsData")]
        if len(keys) != 1 or registry.find(keys[0]) is None or not isinstance(item[keys[0]], dict):
            raise faults.validation("2010", "Request has invalid or unsupported property",
                                    "A batch item needs exactly one entity payload (or a Query).", "")
        ent = registry.get(keys[0])
        payload = item[keys[0]]
        options = str(item.get("optionsData", "")).lower()
        if operation == "delete":
            result = emu.engine.delete(realm, ent.name, payload)
        elif options == "void" and operation == "update":
            result = emu.engine.void(realm, ent.name, payload)
        elif operation == "update":
            result = emu.engine.update(realm, ent.name, payload)
        elif operation == "create":
            result = emu.engine.create(realm, ent.name, payload)
        else:
            raise faults.validation("2170", "Invalid Enumeration",
                                    f"Invalid Enumeration : operation {operation!r}; use create, update or delete",
                                    "operation")
        return {"bId": bid, ent.json_key: result}
    except QBOFault as fault:
        if fault.status not in (400, 404):
            raise
        return {"bId": bid, "Fault": fault.fault_json()}


def routes() -> list[Route]:
    base = "/v3/company/{realm}"
    return [
        Route(base + "/query", query, methods=["GET", "POST"]),
        Route(base + "/cdc", cdc, methods=["GET"]),
        Route(base + "/batch", batch, methods=["POST"]),
        Route(base + "/reports/{name}", report, methods=["GET"]),
        Route(base + "/preferences", read_preferences, methods=["GET"]),
        Route(base + "/exchangerate", read_exchange_rate, methods=["GET"]),
        Route(base + "/{entity}/{id}/pdf", entity_pdf, methods=["GET"]),
        Route(base + "/{entity}/{id}/send", entity_send, methods=["POST"]),
        Route(base + "/{entity}/{id}", read_entity, methods=["GET"]),
        Route(base + "/{entity}", write_entity, methods=["POST"]),
    ]
