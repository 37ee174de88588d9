"""Traffic control: QBO's throttles, fault injection, request counters and metering.

What QBO enforces (reference §6, §11 item 8), with the same defaults here:

* 500 requests per rolling minute per company (batch calls included, each counting once);
* 10 requests in flight at once per company **and app** (the 11th concurrent one gets a 429);
* batch calls: 40 per minute per company+app and 120 per minute per company;
* optionally (off by default) the Builder tier's monthly CorePlus cap, past which reads get 429.

Over any limit the request is refused with HTTP 429, Fault code 3001, type ``SERVICE``
(:func:`faults.throttled`), before it runs. QBO's own ``Retry-After`` is unconfirmed (§12); the
emulator always sends one, in seconds until the window that refused the request frees a slot
(1 for the concurrency limit, which frees when a request finishes). Windows are measured on
``emu.clock.lifetime_now()``: real time divided by the clock scale, plus ``advance()`` jumps, so
tests shrink a minute with ``clock_scale`` or skip it with ``advance_clock(61)``.

Metering (§6, App Partner Program): reads (query, read, CDC, reports, CompanyInfo, PDF) are
**CorePlus** and metered; writes are **Core**. Both are counted per company per calendar month
(company time zone) in table ``metering``, so they survive a restart with ``--data-file``.
``admit`` meters read and write requests; a batch call is metered by its items, which the batch
route reports with :meth:`Traffic.meter` (``meter(realm, "read", n_queries)``).

Fault injection (for client tests) is decided **before** the request runs, so a write that gets
an injected 500 was not applied, with one deliberate exception, ``timeout_after_commit``: the
request runs and commits, then the response is dropped or delayed, which is how a client proves
that retrying a timed-out write with the same ``requestid`` does not duplicate it.

API for the v3 routes (``api.py``)::

    with emu.traffic.admit(realm, kind="read", app_key=client_id, path=request.url.path,
                           method=request.method) as ticket:
        response = execute_the_request()
    return response

``admit`` is a sync context manager for handlers running in the thread pool (it sleeps with
``time.sleep``); async handlers use ``async with emu.traffic.admit_async(...)`` with the same
arguments. On entry it counts the request, then raises instead of admitting:

* :class:`faults.QBOFault`: 429 with a ``Retry-After`` in ``fault.headers``, an injected
  500/10000, or an injected 503 marked ``x-emulator-raw: 1`` (the front end's non-JSON page):
  render it like any fault, *including* ``fault.headers`` (minus ``x-emulator-*``);
* :class:`faults.AuthFailure` (injected expired token): render the lower-case 401;
* :class:`DropConnection`: let it propagate (never catch it in a broad ``except Exception``);
  :class:`TrafficMiddleware` turns it into a dropped connection.

A slow-response injection sleeps before the body runs. On a clean exit, a
``timeout_after_commit`` injection sleeps after the body (``"delay"``) or raises
:class:`DropConnection` (``"drop"``). The :class:`Ticket` yielded describes the decisions.

Wiring in ``app.py``: add ``Middleware(TrafficMiddleware)`` to the Starlette middleware list (any
position: it only needs to sit inside Starlette's ``ServerErrorMiddleware``, which all user
middleware does).

How a dropped connection looks: the middleware sends a ``200`` status line with a
``Content-Length`` larger than the bytes that follow, then returns; uvicorn closes the socket
when an ASGI app ends without completing its response. Clients see the connection break while
reading the body: ``requests.exceptions.ChunkedEncodingError`` (urllib3 ``ProtocolError``
"IncompleteRead") or ``httpx.RemoteProtocolError``. ASGI has no way to close before the status
line; for a timeout-shaped failure use the ``"delay"`` after-commit action with a delay longer
than the client's read timeout (the client sees a read timeout).

Control API (under ``/_emulator``): ``GET/POST /faults``, ``GET/POST /limits``,
``GET /companies/{realmId}/counters``, ``GET /metering?realmId=&month=``,
``POST /counters/reset``. Delays in the fault configuration are in real seconds (they shape
what a client experiences, not emulated time).

The rooms: :mod:`.admission` (:class:`Traffic`: admit, throttle, inject, count), :mod:`.control`
(configuration, counters, metering, control API), :mod:`.config` (limits, fault configuration,
tickets), :mod:`.middleware` (dropped connections).
"""

from qb_pipelines.emulator.traffic.admission import Traffic
from qb_pipelines.emulator.traffic.config import (
    EXCLUSIVE_FAULTS,
    FAULT_NAMES,
    KINDS,
    FaultConfig,
    InjectionScope,
    Limits,
    QueuedFault,
    Ticket,
    endpoint_of,
)
from qb_pipelines.emulator.traffic.middleware import DropConnection, DropConnectionMiddleware, TrafficMiddleware

__all__ = [
    "EXCLUSIVE_FAULTS",
    "FAULT_NAMES",
    "KINDS",
    "DropConnection",
    "DropConnectionMiddleware",
    "FaultConfig",
    "InjectionScope",
    "Limits",
    "QueuedFault",
    "Ticket",
    "Traffic",
    "TrafficMiddleware",
    "endpoint_of",
]
