"""The emulator's control API under ``/_emulator/``: drive the emulator from scripts and tests.

Fixed contract (other tools depend on it):

* ``GET /_emulator/companies`` -> ``[{"realmId": "...", "name": "..."}, ...]``
* ``POST /_emulator/companies/{realmId}/tokens`` -> ``access_token``, ``refresh_token``,
  ``client_id``, ``client_secret`` accepted by the token endpoint (served by ``oauth/``).

Besides (this module): create and reset companies, seed them, act as a QuickBooks user (changes
that show in CDC and webhooks), export a company's objects, list sent documents. Faults, limits,
counters and metering live in ``traffic/``; webhooks in ``webhooks.py``; OAuth apps, users and
token expiry in ``oauth/control.py``.

The clock (``GET|POST /_emulator/clock``): ``{"advance_seconds": 3600}`` moves emulator time
forward, ``{"now": "2028-03-01T08:00:00Z"}`` moves it forward to an instant (start an emulator
with ``EmulatorSettings(now=...)`` / ``serve --now`` to pin it earlier), ``{"frozen": true}``
stops it (``false`` lets it run again), ``{"scale": 0.001}`` shortens enforced durations. The
answer is the clock's state: ``now``, ``offset_seconds``, ``scale``, ``frozen``.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from qb_pipelines.emulator.core import Emulator
from qb_pipelines.emulator.faults import QBOFault
from qb_pipelines.qbo import registry


def _emu(request: Request) -> Emulator:
    return request.app.state.emu


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _json(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"body is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("body must be a JSON object")
    return data


async def list_companies(request: Request) -> Response:
    return JSONResponse(_emu(request).engine.companies())


async def create_company(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    emu = _emu(request)
    try:
        data = await _json(request)
    except ValueError as exc:
        return _error(400, str(exc))
    name = str(data.get("name") or "").strip()
    if not name:
        return _error(400, 'a company needs a name: POST {"name": "Acme Landscaping"}')
    realm = data.get("realmId")
    try:
        realm = await run_in_threadpool(emu.engine.create_company, name, str(realm) if realm else None)
    except QBOFault as fault:
        return _error(409, fault.errors[0].detail)
    seed = data.get("seed")
    if isinstance(seed, dict):
        from qb_pipelines.emulator import seed as seeding

        await run_in_threadpool(seeding.seed_company, emu, realm, **seed)
    return JSONResponse({"realmId": realm, "name": name}, status_code=201)


async def reset_company(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    emu = _emu(request)
    realm = request.path_params["realm"]
    try:
        await run_in_threadpool(emu.engine.reset_company, realm)
    except KeyError:
        return _error(404, f"no company {realm}: GET /_emulator/companies lists them")
    return JSONResponse({"realmId": realm, "reset": True})


async def seed_company(request: Request) -> Response:
    from starlette.concurrency import run_in_threadpool

    from qb_pipelines.emulator import seed as seeding

    emu = _emu(request)
    realm = request.path_params["realm"]
    if not emu.engine.company_exists(realm):
        return _error(404, f"no company {realm}: GET /_emulator/companies lists them")
    try:
        data = await _json(request)
        summary = await run_in_threadpool(seeding.seed_company, emu, realm, **data)
    except (ValueError, TypeError) as exc:
        return _error(400, f"bad seed request: {exc}")
    return JSONResponse(summary)


async def act(request: Request) -> Response:
    """Act as a QuickBooks user: the change shows in CDC and fires webhooks like any other."""
    from starlette.concurrency import run_in_threadpool

    emu = _emu(request)
    realm = request.path_params["realm"]
    if not emu.engine.company_exists(realm):
        return _error(404, f"no company {realm}: GET /_emulator/companies lists them")
    try:
        data = await _json(request)
    except ValueError as exc:
        return _error(400, str(exc))
    entity = registry.find(str(data.get("entity", "")))
    operation = str(data.get("operation", "")).lower()
    body = data.get("body") or {}
    if entity is None:
        return _error(400, f"unknown entity {data.get('entity')!r}; use a QBO entity name such as Invoice")
    engine = emu.engine
    try:
        # a QuickBooks user may do in the product what the API refuses (set up a budget)
        if operation == "create":
            result = await run_in_threadpool(partial(engine.create, as_user=True), realm, entity.name, body)
        elif operation == "update":
            if "SyncToken" not in body and "Id" in body:
                current = engine.read(realm, entity.name, body["Id"])
                body = {**body, "SyncToken": current["SyncToken"], "sparse": body.get("sparse", True)}
            result = await run_in_threadpool(partial(engine.update, as_user=True), realm, entity.name, body)
        elif operation in ("delete", "void"):
            if "SyncToken" not in entity.fields_of(body):  # a wrapped template carries it inside
                current = engine.read(realm, entity.name, entity.identity(body))
                body = _with_sync_token(entity, body, entity.fields_of(current)["SyncToken"])
            fn = engine.delete if operation == "delete" else engine.void
            result = await run_in_threadpool(fn, realm, entity.name, body)
        elif operation == "inactivate":
            current = engine.read(realm, entity.name, body.get("Id"))
            result = await run_in_threadpool(engine.update, realm, entity.name,
                                             {"Id": current["Id"], "SyncToken": current["SyncToken"],
                                              "sparse": True, "Active": False})
        elif operation == "merge":
            result = await run_in_threadpool(engine.merge, realm, entity.name, str(data.get("from_id")),
                                             str(data.get("into_id")))
        elif operation == "send":
            result = await run_in_threadpool(engine.send, realm, entity.name, str(body.get("Id")),
                                             data.get("send_to"))
        else:
            return _error(400, "operation must be create, update, delete, void, inactivate, merge or send")
    except QBOFault as fault:
        return JSONResponse({"Fault": fault.fault_json()}, status_code=fault.status)
    return JSONResponse({entity.name: result})


def _with_sync_token(entity: registry.EntityDef, body: dict, token: str) -> dict:
    """``body`` with the current SyncToken, inside the template when it wraps one."""
    for key in entity.wraps:
        if isinstance(body.get(key), dict):
            return {**body, key: {**body[key], "SyncToken": token}}
    return {**body, "SyncToken": token}


async def export(request: Request) -> Response:
    """Every object of one entity (tombstones too with ``include_deleted=true``), as JSON lines."""
    emu = _emu(request)
    realm = request.path_params["realm"]
    entity = registry.find(request.path_params["entity"])
    if entity is None:
        return _error(404, "unknown entity")
    include_deleted = request.query_params.get("include_deleted", "false").lower() == "true"

    def rows() -> Any:
        last = -1
        while True:
            with emu.db.read() as c:
                chunk = c.execute(
                    "SELECT id, status, body FROM objects WHERE realm=? AND entity=? AND id>? ORDER BY id LIMIT 2000",
                    (realm, entity.name, last)).fetchall()
            if not chunk:
                return
            for obj_id, status, body in chunk:
                last = obj_id
                if status == "Deleted" and not include_deleted:
                    continue
                yield bytes(body) + b"\n"

    return StreamingResponse(rows(), media_type="application/x-ndjson")


async def counts(request: Request) -> Response:
    """Row counts per entity (live, inactive, deleted): the truth a warehouse load is checked against."""
    emu = _emu(request)
    realm = request.path_params["realm"]
    with emu.db.read() as c:
        rows = c.execute(
            "SELECT entity, SUM(status IS NULL AND active=1), SUM(status IS NULL AND active=0),"
            " SUM(status='Deleted') FROM objects WHERE realm=? GROUP BY entity", (realm,)).fetchall()
    return JSONResponse({e: {"active": a or 0, "inactive": i or 0, "deleted": d or 0} for e, a, i, d in rows})


async def sends(request: Request) -> Response:
    return JSONResponse(_emu(request).engine.sends(request.path_params["realm"]))


async def health(request: Request) -> Response:
    emu = _emu(request)
    return JSONResponse({"status": "ok", "companies": len(emu.engine.companies()), "base_url": emu.base_url})


def _clock_state(emu: Emulator) -> dict[str, Any]:
    clock = emu.clock
    return {"offset_seconds": clock.offset, "scale": clock.scale, "now": clock.now().isoformat(),
            "frozen": clock.frozen}


async def clock(request: Request) -> Response:
    """Read or move the emulator's clock (forward only; see the module docstring)."""
    emu = _emu(request)
    if request.method == "POST":
        try:
            body = await _json(request)
            frozen = body.get("frozen")
            if frozen is not None and not isinstance(frozen, bool):
                raise ValueError("frozen must be true or false")
            if frozen:  # first, so a "now" given with it is exact
                emu.clock.freeze()
            if body.get("scale") is not None:
                scale = float(body["scale"])
                if scale <= 0:
                    raise ValueError("scale must be positive")
                emu.clock.set_scale(scale)
            if body.get("advance_seconds") is not None:
                seconds = float(body["advance_seconds"])
                if seconds < 0:
                    raise ValueError("the clock only moves forward")
                emu.advance_clock(seconds)
            if body.get("now") is not None:
                when = datetime.fromisoformat(str(body["now"]).replace("Z", "+00:00").replace("z", "+00:00"))
                emu.set_clock(when)
            if frozen is False:
                emu.clock.unfreeze()
        except (TypeError, ValueError) as err:
            return JSONResponse({"error": "bad_request", "message": str(err)}, status_code=400)
    return JSONResponse(_clock_state(emu))


def routes() -> list[Route]:
    base = "/_emulator/companies"
    return [
        Route("/_emulator/health", health, methods=["GET"]),
        Route("/_emulator/clock", clock, methods=["GET", "POST"]),
        Route(base, list_companies, methods=["GET"]),
        Route(base, create_company, methods=["POST"]),
        Route(base + "/{realm}/reset", reset_company, methods=["POST"]),
        Route(base + "/{realm}/seed", seed_company, methods=["POST"]),
        Route(base + "/{realm}/act", act, methods=["POST"]),
        Route(base + "/{realm}/export/{entity}", export, methods=["GET"]),
        Route(base + "/{realm}/counts", counts, methods=["GET"]),
        Route(base + "/{realm}/sends", sends, methods=["GET"]),
    ]
