"""The emulator benchmark: seed a large company, then read every invoice back over real HTTP.

What it measures, and why these figures:

* **seeding**: seconds and invoices per second of :func:`seed.seed_company` (the bulk path), so a
  1,000,000-invoice company is known to take minutes, not hours;
* **serving**: a client pages through ``SELECT * FROM Invoice STARTPOSITION n MAXRESULTS 1000``
  exactly as a QBO client does (``requests.Session`` with keep-alive, bearer token,
  ``Accept: application/json``, ``minorversion=75``) and decodes every page with orjson (checking
  that Ids only go up). ``invoices_per_s`` is invoices over the time spent in HTTP requests (the
  emulator answering, each page received in full); ``decoded_invoices_per_s`` is over the wall
  time, the client's own decoding included (about 20 ms per 1000-invoice page in CPython, and it
  competes for the GIL with the server in this one-process bench). Also pages, bytes per page and
  one ``COUNT(*)``;
* **memory**: the process's peak resident set (``ru_maxrss``, seeding included) and the size of
  the database, so a big company is known to fit.

The server runs in this process (``server.start_in_thread``) and shares the interpreter with the
client, so the serving figure is a floor: a client in its own process leaves the server a whole
core. QBO's 500-requests-per-minute throttle is switched off for the run (``POST
/_emulator/limits {"enabled": false}``, sent by
:class:`~qb_pipelines.qbo.emulator_control.EmulatorControl`): the bench measures the emulator,
not the throttle (under it, 1000-row pages cap any client at 500,000 invoices a minute, about
8,300 a second).

Companies above 50,000 invoices go to a temporary SQLite file (removed afterwards) unless
``data_file`` is given; a ``data_file`` that already holds the bench company with the requested
number of invoices is reused, which skips the seeding.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import orjson
import requests

from qb_pipelines.emulator import seed as seeding
from qb_pipelines.emulator.core import Emulator, EmulatorSettings
from qb_pipelines.emulator.server import start_in_thread
from qb_pipelines.qbo.emulator_control import EmulatorControl, EmulatorControlError

BENCH_COMPANY = "Bench Landscaping Co"
FILE_BACKED_ABOVE = 50_000


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes
    return round(peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024, 1)


def _current_rss_mb() -> float | None:
    try:
        import psutil
    except ImportError:  # psutil is a dependency, but the bench should still run without it
        return None
    return round(psutil.Process().memory_info().rss / (1024 * 1024), 1)


def _db_size_mb(emu: Emulator, data_file: str | None) -> float:
    if data_file:
        total = sum(os.path.getsize(p) for p in (data_file, data_file + "-wal") if os.path.exists(p))
        return round(total / (1024 * 1024), 1)
    with emu.db.read() as c:
        pages = c.execute("PRAGMA page_count").fetchone()[0]
        size = c.execute("PRAGMA page_size").fetchone()[0]
    return round(pages * size / (1024 * 1024), 1)


def _existing_bench_company(emu: Emulator, invoices: int) -> str | None:
    for company in emu.engine.companies():
        if company["name"] != BENCH_COMPANY:
            continue
        with emu.db.read() as c:
            count = c.execute("SELECT COUNT(*) FROM objects WHERE realm=? AND entity='Invoice' AND status IS NULL",
                              (company["realmId"],)).fetchone()[0]
        if count == invoices:
            return company["realmId"]
    return None


def run(invoices: int = 100_000, page_size: int = 1000, data_file: str | None = None,
        out: Callable[[str], Any] = print) -> dict:
    """Seed a company with ``invoices`` invoices and page through them over HTTP.

    Args:
        invoices: invoices in the bench company.
        page_size: MAXRESULTS of each query page (QBO allows at most 1000).
        data_file: SQLite file for the emulator; a temporary file is used (and removed) above
            50,000 invoices when omitted, memory below.
        out: where progress lines go.

    Returns:
        ``invoices_per_s`` (served over HTTP), ``decoded_invoices_per_s`` (client decoding
        included), ``peak_rss_mb``, ``seed_s``, ``seed_invoices_per_s``, ``pages``, ``api_calls``,
        ``bytes_per_page``, ``count_ms``, ``served``, ``http_s``, ``wall_s``, ``invoices``,
        ``page_size``, ``db_mb``, ``rss_mb``, ``file_backed``.
    """
    tmpdir = None
    if data_file is None and invoices > FILE_BACKED_ABOVE:
        tmpdir = tempfile.mkdtemp(prefix="qbo-bench-")
        data_file = os.path.join(tmpdir, "bench.sqlite")
    emu = Emulator(EmulatorSettings(data_file=data_file))
    running = None
    try:
        realm = _existing_bench_company(emu, invoices) if data_file else None
        seed_s = 0.0
        if realm is None:
            realm = emu.engine.create_company(BENCH_COMPANY)
            out(f"seeding {invoices:,} invoices into {data_file or 'memory'} ...")
            last = [time.perf_counter()]

            def progress(p: dict) -> None:
                if time.perf_counter() - last[0] >= 10:
                    last[0] = time.perf_counter()
                    out(f"  {p['invoices']:,}/{p['of']:,} invoices, {p['payments']:,} payments, {p['seconds']:.0f} s")

            t0 = time.perf_counter()
            summary = seeding.seed_company(emu, realm, invoices=invoices, seed=1, progress=progress)
            seed_s = time.perf_counter() - t0
            out(f"seeded {summary['invoices']:,} invoices, {summary['payments']:,} payments, "
                f"{summary['customers']:,} customers, {summary['items']:,} items in {seed_s:.1f} s "
                f"({invoices / seed_s:,.0f} invoices/s)")
        else:
            out(f"reusing the bench company {realm} in {data_file} ({invoices:,} invoices)")

        running = start_in_thread(emu)
        base = running.url
        control = EmulatorControl(base)
        try:
            control.set_limits({"enabled": False})
        except EmulatorControlError as exc:
            out(f"could not lift the throttle ({exc.status}); pages may be refused with 429")
        session = requests.Session()
        session.headers.update({"Authorization": f"Bearer {control.tokens(realm)['access_token']}",
                                "Accept": "application/json"})
        control.close()
        query_url = f"{base}/v3/company/{realm}/query"

        def fetch(text: str) -> bytes:
            r = session.get(query_url, params={"query": text, "minorversion": "75"}, timeout=300)
            if r.status_code != 200:
                raise RuntimeError(f"query failed with {r.status_code}: {r.text[:300]}")
            return r.content

        t0 = time.perf_counter()
        counted = orjson.loads(fetch("SELECT COUNT(*) FROM Invoice"))["QueryResponse"]
        count_ms = (time.perf_counter() - t0) * 1000
        out(f"COUNT(*) = {counted.get('totalCount'):,} in {count_ms:.1f} ms")

        # Two clocks: the time spent in HTTP requests (the emulator serving a page, sent and
        # received in full) and the wall time including the client decoding every page with
        # orjson, which in this one-process setup also competes with the server for the GIL.
        served = pages = total_bytes = 0
        http_s = 0.0
        start = 1
        last_id = 0
        t_wall = time.perf_counter()
        while True:
            t_req = time.perf_counter()
            content = fetch(f"SELECT * FROM Invoice STARTPOSITION {start} MAXRESULTS {page_size}")
            http_s += time.perf_counter() - t_req
            rows = orjson.loads(content)["QueryResponse"].get("Invoice", [])
            if not rows:
                break
            if int(rows[0]["Id"]) <= last_id:
                raise RuntimeError(f"page at {start} repeats or reorders rows (Id {rows[0]['Id']} after {last_id})")
            last_id = int(rows[-1]["Id"])
            pages += 1
            served += len(rows)
            total_bytes += len(content)
            if len(rows) < page_size:
                break
            start += page_size
        wall = time.perf_counter() - t_wall
        per_s = served / http_s if http_s > 0 else 0.0
        decoded_per_s = served / wall if wall > 0 else 0.0
        out(f"served {served:,} invoices in {pages:,} pages of {total_bytes / max(1, pages) / 1024:,.0f} KiB: "
            f"{per_s:,.0f} invoices/s over HTTP, {decoded_per_s:,.0f} invoices/s with the client decoding each page")
        if served != invoices:
            out(f"warning: expected {invoices:,} invoices, the pages held {served:,}")

        result = {
            "invoices": invoices,
            "page_size": page_size,
            "served": served,
            "invoices_per_s": round(per_s, 1),
            "decoded_invoices_per_s": round(decoded_per_s, 1),
            "http_s": round(http_s, 3),
            "wall_s": round(wall, 3),
            "pages": pages,
            "api_calls": pages + 2,  # the pages, the COUNT(*) and the final empty page
            "bytes_per_page": round(total_bytes / max(1, pages)),
            "count_ms": round(count_ms, 2),
            "seed_s": round(seed_s, 3),
            "seed_invoices_per_s": round(invoices / seed_s, 1) if seed_s else None,
            "peak_rss_mb": _peak_rss_mb(),
            "rss_mb": _current_rss_mb(),
            "db_mb": _db_size_mb(emu, data_file),
            "file_backed": bool(data_file),
        }
        if served % page_size != 0 or served == 0:
            result["api_calls"] -= 1  # the last page was short: no empty page was fetched
        out(f"peak RSS {result['peak_rss_mb']:,} MB, database {result['db_mb']:,} MB")
        return result
    finally:
        if running is not None:
            running.stop()
        with contextlib.suppress(Exception):
            emu.close()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
