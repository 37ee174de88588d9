"""Webhooks: QBO's change notifications, grouped, signed, delivered in order and retried.

How QBO does it (reference §9), and how the emulator mirrors it:

* **Subscription**: one endpoint URL and verifier token per app (here: per ``app`` name, default
  ``"default"``), in either the legacy ``eventNotifications`` format or the CloudEvents array
  (the default: it is mandatory on QBO from 2026). Optional filters: entities, realms. Every
  company's changes are sent (QBO sends only companies that authorised the app; the emulator's
  companies all count as authorised unless ``realms`` narrows them).
* **Source of events**: table ``changes``, which the engine writes in the same transaction as
  every Create/Update/Delete/Void/Merge/Emailed. A background thread polls it by ``seq``. The
  cursor of the last delivered change is kept in the db's ``kv`` table, so a restart with a
  data file neither loses nor re-sends events. A new subscription starts at the newest change.
* **Grouping**: changes are collected for ``window_s`` emulated seconds (real wait scaled by
  the clock) after the first one arrives, then sent as one delivery spanning realms (legacy: one
  ``eventNotifications[]`` item per realm; CloudEvents: one array), at most 1000 events each.
* **Signing**: ``intuit-signature`` = base64 HMAC-SHA256 of the exact body bytes with the
  verifier token (:func:`qb_pipelines.qbo.webhooks.sign`), plus ``intuit-created-time``,
  ``intuit-t-id``, ``intuit-notification-schema-version: 0.1``, ``user-agent
  intuit_notification_server/0.1``.
* **Retries**: only an HTTP 200 within ``timeout_s`` (3 s) acknowledges. Anything else is
  retried after 0 s, 10 s, 20 s, 30 s, 5 min, 20 min, 2 h, 4 h, 6 h, then every 6 h (delays
  between attempts, emulated seconds scaled by the clock), forever: Intuit no longer documents
  giving up. Deliveries are **in order**: later deliveries wait until the failing one is
  acknowledged (§9.1, "held until the failing event is acknowledged").
* **Imperfections** QBO documents (events "can arrive out of order and be duplicated"):
  ``duplicate_probability`` re-sends an acknowledged delivery once more, byte-identical;
  ``out_of_order_probability`` is the chance that a change is held back one grouping window, so
  it arrives after changes that happened later. Both draw from a random source seeded by
  ``seed``, so a test sees the same imperfections every run.

Control API: ``GET/POST/DELETE /_emulator/webhooks`` (subscriptions), ``GET
/_emulator/webhooks/deliveries`` (attempt log), ``POST /_emulator/webhooks/flush`` (close the
open group and attempt every pending delivery now, ignoring retry waits: deterministic tests).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import random
import threading
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from qb_pipelines.emulator.clock import PACIFIC
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.webhooks import VERB_BY_OPERATION, sign

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator

log = logging.getLogger(__name__)

FORMATS = ("cloudevents", "legacy")
#: Intuit's current retry delays (Oct 2025, §9.1), then ``retry_every_s`` forever.
RETRY_SCHEDULE_S = (0.0, 10.0, 20.0, 30.0, 300.0, 1200.0, 7200.0, 14400.0, 21600.0)
RETRY_EVERY_S = 21600.0
_KV_SUBSCRIPTIONS = "webhooks.subscriptions"
_KV_CURSOR = "webhooks.cursor."
_POLL_S = 0.05  # real seconds between polls of the changes table
_LOG_SIZE = 2000  # attempts kept in the delivery log
_BATCH_ROWS = 5000  # changes read per poll
_MAX_EVENTS = 1000  # events per delivery (QBO states no limit; this keeps bodies reasonable)


@dataclass
class Subscription:
    """One app's webhook endpoint and delivery behaviour."""

    url: str
    verifier_token: str
    app: str = "default"
    format: str = "cloudevents"
    entities: list[str] | None = None
    realms: list[str] | None = None
    window_s: float = 1.0
    duplicate_probability: float = 0.0
    out_of_order_probability: float = 0.0
    seed: int = 0
    timeout_s: float = 3.0
    retry_schedule_s: list[float] = field(default_factory=lambda: list(RETRY_SCHEDULE_S))
    retry_every_s: float = RETRY_EVERY_S

    @classmethod
    def from_json(cls, body: dict, previous: Subscription | None = None) -> Subscription:
        """Validate a ``POST /_emulator/webhooks`` body (a partial update when ``previous``).

        Raises:
            ValueError: on an unknown key or an invalid value.
        """
        if not isinstance(body, dict):
            raise ValueError("body must be a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = set(body) - known
        if unknown:
            raise ValueError(f"unknown keys: {sorted(unknown)}")
        data: dict[str, Any] = asdict(previous) if previous else {}
        data.update(body)
        if not data.get("verifier_token"):
            # the developer portal shows a generated token; do the same
            data["verifier_token"] = str(uuid.uuid4())
        url = data.get("url")
        if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError("url must be an http(s) URL")
        if data.get("format", "cloudevents") not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}")
        for key in ("entities", "realms"):
            value = data.get(key)
            if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
                raise ValueError(f"{key} must be a list of strings or null")
        for key in ("duplicate_probability", "out_of_order_probability"):
            if key in data and not 0.0 <= float(data[key]) <= 1.0:
                raise ValueError(f"{key} must be within 0..1")
        for key in ("window_s", "retry_every_s"):
            if key in data and float(data[key]) < 0:
                raise ValueError(f"{key} must be >= 0")
        if "timeout_s" in data and float(data["timeout_s"]) <= 0:
            raise ValueError("timeout_s must be > 0")
        schedule = data.get("retry_schedule_s", list(RETRY_SCHEDULE_S))
        if not isinstance(schedule, list) or any(float(s) < 0 for s in schedule):
            raise ValueError("retry_schedule_s must be a list of non-negative seconds")
        sub = cls(**data)
        sub.retry_schedule_s = [float(s) for s in schedule]
        for key in ("window_s", "timeout_s", "retry_every_s", "duplicate_probability", "out_of_order_probability"):
            setattr(sub, key, float(getattr(sub, key)))
        sub.seed = int(sub.seed)
        return sub

    def retry_delay(self, failed_attempts: int) -> float:
        """Emulated seconds to wait after the ``failed_attempts``-th failure."""
        if failed_attempts - 1 < len(self.retry_schedule_s):
            return self.retry_schedule_s[failed_attempts - 1]
        return self.retry_every_s


@dataclass
class _Change:
    seq: int
    realm: str
    entity: str
    entity_id: str
    operation: str
    occurred_at: float
    deleted_id: str | None
    hold: bool = False  # out-of-order: wait one more grouping window


@dataclass
class Delivery:
    """One POST (with its retries): a rendered, signed body and its progress."""

    id: str
    seqs: list[int]
    body: bytes
    signature: str
    t_id: str
    duplicate: bool = False
    attempts: int = 0
    next_at: float = 0.0  # time.monotonic() of the next attempt


@dataclass
class _State:
    """What the dispatcher tracks per subscription."""

    sub: Subscription
    rng: random.Random
    read_seq: int  # newest change read from the table
    cursor: int  # every change <= cursor is acknowledged (persisted)
    forming: list[_Change] = field(default_factory=list)
    forming_since: float | None = None
    queue: list[Delivery] = field(default_factory=list)


class WebhookDispatcher:
    """Reads changes, groups, signs and delivers them to each subscription. Thread-safe."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self._work = threading.RLock()  # one tick (poll, group, send) at a time
        self._states: dict[str, _State] = {}
        self._log: deque[dict] = deque(maxlen=_LOG_SIZE)
        self._serial = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        for app, data in (emu.db.kv_get(_KV_SUBSCRIPTIONS, {}) or {}).items():
            sub = Subscription.from_json(data)
            cursor = int(emu.db.kv_get(_KV_CURSOR + app, 0) or 0)
            self._states[app] = _State(sub, random.Random(sub.seed), cursor, cursor)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="qbo-emulator-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the delivery thread; waits at most for one in-flight POST to time out."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=10)
        self._thread = None

    def _run(self) -> None:
        stop = self._stop
        while not stop.wait(_POLL_S):
            try:
                self.tick()
            except Exception:  # keep delivering after a bad tick (e.g. a closed db at shutdown)
                if stop.is_set():
                    return
                log.exception("webhook delivery tick failed")

    # --- subscriptions --------------------------------------------------------------------

    def subscribe(self, body: dict) -> dict:
        """Create or update a subscription (``POST /_emulator/webhooks``); returns it.

        A new subscription starts after the newest existing change. Updating one keeps its
        cursor and pending deliveries (they go to the new URL) and re-seeds its random source.

        Raises:
            ValueError: on an invalid body.
        """
        app = str(body.get("app") or "default") if isinstance(body, dict) else "default"
        with self._work:
            state = self._states.get(app)
            sub = Subscription.from_json({**body, "app": app}, state.sub if state else None)
            if state is None:
                with self.emu.db.read() as c:
                    newest = c.execute("SELECT COALESCE(MAX(seq), 0) FROM changes").fetchone()[0]
                state = _State(sub, random.Random(sub.seed), newest, newest)
                self.emu.db.kv_set(_KV_CURSOR + app, newest)
                self._states[app] = state
            else:
                state.sub = sub
                state.rng = random.Random(sub.seed)
            self._save_subscriptions()
            return self._describe(state)

    def unsubscribe(self, app: str = "default") -> bool:
        """Remove a subscription and drop its pending deliveries; False when there was none."""
        with self._work:
            state = self._states.pop(app, None)
            self._save_subscriptions()
        return state is not None

    def subscriptions(self) -> list[dict]:
        with self._work:
            return [self._describe(s) for s in self._states.values()]

    def deliveries(self, app: str | None = None) -> list[dict]:
        """The attempt log, oldest first (``GET /_emulator/webhooks/deliveries``)."""
        return [dict(entry) for entry in list(self._log) if app is None or entry["app"] == app]

    def _describe(self, state: _State) -> dict:
        out = asdict(state.sub)
        out["pending_deliveries"] = len(state.queue)
        out["pending_changes"] = len(state.forming)
        out["cursor"] = state.cursor
        return out

    def _save_subscriptions(self) -> None:
        self.emu.db.kv_set(_KV_SUBSCRIPTIONS, {app: asdict(s.sub) for app, s in self._states.items()})

    # --- the work -------------------------------------------------------------------------

    def flush(self) -> dict:
        """Deliver what is pending now: read new changes, close every group (held changes
        included, in a second delivery), attempt each pending delivery once in order.

        Returns:
            Counts: ``attempted``, ``delivered`` and ``pending`` (deliveries still queued).
        """
        return self.tick(force=True)

    def tick(self, force: bool = False) -> dict:
        """One round of the delivery loop (the thread calls it every few milliseconds)."""
        totals = {"attempted": 0, "delivered": 0, "pending": 0}
        with self._work:
            for state in list(self._states.values()):
                self._poll(state)
                self._close_groups(state, force)
                attempted, delivered = self._send_due(state, force)
                totals["attempted"] += attempted
                totals["delivered"] += delivered
                totals["pending"] += len(state.queue)
        return totals

    def _poll(self, state: _State) -> None:
        sub = state.sub
        with self.emu.db.read() as c:
            rows = c.execute(
                "SELECT seq, realm, entity, entity_id, operation, occurred_at, deleted_id FROM changes "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (state.read_seq, _BATCH_ROWS),
            ).fetchall()
        if not rows:
            return
        entities = {e.lower() for e in sub.entities} if sub.entities is not None else None
        for seq, realm, entity, entity_id, operation, occurred_at, deleted_id in rows:
            state.read_seq = seq
            if entities is not None and entity.lower() not in entities:
                continue
            known = registry.find(entity)
            if known is not None and not known.webhook:
                continue  # QBO sends no webhook for it (the registry's ``webhook``, reference §9.1)
            if sub.realms is not None and realm not in sub.realms:
                continue
            change = _Change(seq, realm, entity, str(entity_id), operation, float(occurred_at), deleted_id)
            if sub.out_of_order_probability and state.rng.random() < sub.out_of_order_probability:
                change.hold = True
            if state.forming_since is None:
                state.forming_since = time.monotonic()
            state.forming.append(change)
        self._advance_cursor(state)

    def _close_groups(self, state: _State, force: bool) -> None:
        window = self.emu.clock.real_delay(state.sub.window_s)
        while state.forming and (force or time.monotonic() - (state.forming_since or 0.0) >= window):
            ready = [c for c in state.forming if not c.hold]
            held = [c for c in state.forming if c.hold]
            for c in held:
                c.hold = False  # held once: goes out with the next group
            # a bulk change (seeding, an import) is split so no single POST grows without bound
            for start in range(0, len(ready), _MAX_EVENTS):
                state.queue.append(self._render(state, ready[start : start + _MAX_EVENTS]))
            state.forming = held
            state.forming_since = time.monotonic() if held else None
            if not force:
                break

    def _send_due(self, state: _State, force: bool) -> tuple[int, int]:
        attempted = delivered = 0
        while state.queue:
            head = state.queue[0]
            if not force and head.next_at > time.monotonic():
                break
            attempted += 1
            if not self._attempt(state, head):
                break  # in order: nothing behind it goes out until it is acknowledged
            delivered += 1
            state.queue.pop(0)
            sub = state.sub
            if not head.duplicate and sub.duplicate_probability and state.rng.random() < sub.duplicate_probability:
                state.queue.append(
                    Delivery(self._next_id(), head.seqs, head.body, head.signature, str(uuid.uuid4()), duplicate=True)
                )
            self._advance_cursor(state)
            if force and attempted >= 1000:
                break
        return attempted, delivered

    def _advance_cursor(self, state: _State) -> None:
        """Persist the highest seq below which every change has been acknowledged."""
        waiting = [c.seq for c in state.forming]
        waiting += [s for d in state.queue if not d.duplicate for s in d.seqs]
        cursor = min(waiting) - 1 if waiting else state.read_seq
        if cursor > state.cursor:
            state.cursor = cursor
            self.emu.db.kv_set(_KV_CURSOR + state.sub.app, cursor)

    def _next_id(self) -> str:
        self._serial += 1
        return f"wh-{self._serial:06d}"

    # --- rendering ------------------------------------------------------------------------

    def _render(self, state: _State, changes: list[_Change]) -> Delivery:
        sub = state.sub
        if sub.format == "legacy":
            payload: Any = legacy_payload(changes)
        else:
            payload = cloudevents_payload(changes, source_for(sub.app))
        body = orjson.dumps(payload)
        return Delivery(
            self._next_id(), [c.seq for c in changes], body, sign(body, sub.verifier_token), str(uuid.uuid4())
        )

    # --- sending --------------------------------------------------------------------------

    def _attempt(self, state: _State, delivery: Delivery) -> bool:
        sub = state.sub
        delivery.attempts += 1
        headers = {
            "intuit-signature": delivery.signature,
            "intuit-created-time": self.emu.clock.now().astimezone(PACIFIC).strftime("%Y-%m-%dT%H:%M:%S%z"),
            "intuit-t-id": delivery.t_id,
            "intuit-notification-schema-version": "0.1",
            "content-type": "application/json; charset=utf-8",
            "accept": "application/json",
            "user-agent": "intuit_notification_server/0.1",
        }
        status, error = _post(sub.url, delivery.body, headers, sub.timeout_s)
        ok = status == 200
        entry: dict[str, Any] = {
            "id": delivery.id,
            "app": sub.app,
            "url": sub.url,
            "attempt": delivery.attempts,
            "status": status,
            "error": error,
            "ok": ok,
            "duplicate": delivery.duplicate,
            "seqs": list(delivery.seqs),
            "payload": orjson.loads(delivery.body),
            "body": delivery.body.decode("utf-8"),
            "signature": delivery.signature,
            "time": self.emu.clock.now().isoformat(timespec="milliseconds"),
            "next_retry": None,
            "next_retry_in_s": None,
        }
        if not ok:
            delay = sub.retry_delay(delivery.attempts)
            real = self.emu.clock.real_delay(delay)
            delivery.next_at = time.monotonic() + real
            entry["next_retry_in_s"] = delay
            entry["next_retry"] = (self.emu.clock.now() + timedelta(seconds=real)).isoformat(timespec="milliseconds")
        self._log.append(entry)
        return ok

    # --- control API ----------------------------------------------------------------------

    def control_routes(self) -> list[Route]:
        """Routes under ``/_emulator/webhooks``."""

        async def get_subs(request: Request) -> JSONResponse:
            return JSONResponse({"subscriptions": await run_in_threadpool(self.subscriptions)})

        async def post_sub(request: Request) -> JSONResponse:
            raw = await request.body()
            try:
                body = orjson.loads(raw) if raw.strip() else {}
                return JSONResponse(await run_in_threadpool(self.subscribe, body))
            except (ValueError, TypeError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)

        async def delete_sub(request: Request) -> JSONResponse:
            app = request.query_params.get("app", "default")
            removed = await run_in_threadpool(self.unsubscribe, app)
            return JSONResponse({"deleted": removed}, status_code=200 if removed else 404)

        async def get_deliveries(request: Request) -> JSONResponse:
            entries = self.deliveries(request.query_params.get("app"))
            pending = sum(len(s.queue) for s in list(self._states.values()))
            return JSONResponse({"deliveries": entries, "pending": pending})

        async def post_flush(request: Request) -> JSONResponse:
            return JSONResponse(await run_in_threadpool(self.flush))

        return [
            Route("/_emulator/webhooks", get_subs, methods=["GET"]),
            Route("/_emulator/webhooks", post_sub, methods=["POST"]),
            Route("/_emulator/webhooks", delete_sub, methods=["DELETE"]),
            Route("/_emulator/webhooks/deliveries", get_deliveries, methods=["GET"]),
            Route("/_emulator/webhooks/flush", post_flush, methods=["POST"]),
        ]


# --- payloads (pure functions, reused by tests) ---------------------------------------------


def source_for(app: str) -> str:
    """The opaque, stable, app-specific CloudEvents ``source`` (``intuit.<base64 of 32 bytes>``)."""
    digest = hashlib.sha256(b"qbo-emulator-app:" + app.encode("utf-8")).digest()
    return "intuit." + base64.b64encode(digest).decode("ascii")


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def legacy_time(ts: float) -> str:
    """Legacy ``lastUpdated`` in UTC with milliseconds: ``2016-10-05T03:09:04.000Z``."""
    whole, millis = divmod(round(ts * 1000), 1000)  # round once so the second cannot roll back
    return _utc(whole).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z"


def cloudevents_time(ts: float) -> str:
    """CloudEvents ``time`` in UTC with nanoseconds, as QBO sends: ``2025-09-10T21:31:25.179851517Z``."""
    whole, micros = divmod(round(ts * 1_000_000), 1_000_000)
    return _utc(whole).strftime("%Y-%m-%dT%H:%M:%S.") + f"{micros * 1000:09d}Z"


def legacy_payload(changes: list[_Change]) -> dict:
    """``{"eventNotifications": [...]}``: one item per realm, entities in change order."""
    by_realm: dict[str, list[dict]] = {}
    for c in changes:
        entity: dict[str, str] = {
            "name": c.entity,
            "id": c.entity_id,
            "operation": c.operation,
            "lastUpdated": legacy_time(c.occurred_at),
        }
        if c.operation == "Merge" and c.deleted_id:
            entity["deletedId"] = str(c.deleted_id)
        by_realm.setdefault(c.realm, []).append(entity)
    return {
        "eventNotifications": [
            {"realmId": realm, "dataChangeEvent": {"entities": entities}} for realm, entities in by_realm.items()
        ]
    }


def cloudevents_payload(changes: list[_Change], source: str) -> list[dict]:
    """A CloudEvents 1.0 array, one event per change (§9.4)."""
    events = []
    for c in changes:
        verb = VERB_BY_OPERATION.get(c.operation, c.operation.lower())
        data: dict[str, str] = {}
        if c.operation == "Merge" and c.deleted_id:
            data["deletedid"] = str(c.deleted_id)
        events.append(
            {
                "specversion": "1.0",
                # unique per event, shaped like Intuit's doc examples (<uuid>-<Entity>-<id>)
                "id": f"{uuid.uuid4()}-{c.entity}-{c.entity_id}",
                "source": source,
                "type": f"qbo.{c.entity.lower()}.{verb}.v1",
                "datacontenttype": "application/json",
                "time": cloudevents_time(c.occurred_at),
                "intuitentityid": c.entity_id,
                "intuitaccountid": c.realm,
                "data": data,
            }
        )
    return events


def _post(url: str, body: bytes, headers: dict[str, str], timeout: float) -> tuple[int | None, str | None]:
    """POST ``body`` with ``headers`` (sent with exactly these lower-case names).

    Returns:
        (HTTP status, None), or (None, error text) on a timeout or connection failure.
    """
    parts = urlsplit(url)
    conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn = conn_cls(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.putrequest("POST", target, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        response.read(65536)
        return response.status, None
    except (OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
