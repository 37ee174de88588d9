"""Webhook intake: ``POST /webhooks/quickbooks``, where Intuit announces changes in QuickBooks.

What the route does, in this order, and why:

1. **Configured?** Without the app's webhook Verifier Token (``QBO_WEBHOOK_VERIFIER_TOKEN``)
   nothing can be verified: 503 with a message saying which variable to set, nothing stored.
   (503, not 500: Intuit retries it, so no event is lost while an operator fixes the setting.)
2. **Bounded body.** The raw body is read as bytes, at most :data:`MAX_BODY_BYTES` (5 MB; a QBO
   delivery of 1000 events is about 300 KB): more answers 413 without reading the rest.
3. **Signature.** ``intuit-signature`` must be the base64 HMAC-SHA256 of those exact bytes with
   the verifier token (:func:`qb_pipelines.qbo.webhooks.verify`, constant time): otherwise 401,
   nothing stored, nothing parsed. Anyone can reach this URL; only Intuit knows the token.
4. **Shape.** A legacy ``eventNotifications`` object or a CloudEvents array
   (:func:`qb_pipelines.qbo.webhooks.parse_notifications`); anything else (not JSON, wrong shape,
   a missing field, an unparseable time) answers 400 with the reason, nothing stored.
5. **Store**, idempotently, in one short transaction
   (:meth:`qb_pipelines.store.webhook_inbox.WebhookInbox.add_events`), and answer 200
   ``{"stored": n, "duplicates": m}``. A replayed delivery or a repeated event is stored once.
6. **Fast path** (``QB_DAGSTER_GRAPHQL_URL`` set): new events ask Dagster for their company's
   landing in a background thread (:class:`~qb_pipelines.web.dagster_launch.LandingLauncher`),
   after the answer is decided; the sensor skips what such a run covers and stays the backstop.

Intuit waits 3 seconds for the 200 and retries otherwise, holding every later delivery behind
the failing one. So the route does no QBO call and no sync work (a Dagster sensor drains the
inbox and runs the syncs), and the store step has a deadline (:data:`STORE_DEADLINE_S`): past it
the route answers 503 and Intuit's retry lands as duplicates if the slow write committed after
all. Events for companies no tenant has connected are stored too, flagged (see the inbox module).

The route is served by :class:`WebhookIntake`, an ASGI middleware placed *outside* the session
middleware of the admin app: Intuit is not a browser, so the request never touches the session
cookie, never gets one, and no CSRF check applies (the signature is its authentication).
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import anyio.to_thread
from sqlalchemy.exc import SQLAlchemyError
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from qb_pipelines.qbo.webhooks import WebhookPayloadError, parse_notifications, verify
from qb_pipelines.store.webhook_inbox import WebhookInbox, delivery_sha
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.web.dagster_launch import LandingLauncher

log = logging.getLogger(__name__)

#: Where Intuit is told to POST (developer portal > Webhooks > Endpoint URL: ``https://<host>/webhooks/quickbooks``).
WEBHOOK_PATH = "/webhooks/quickbooks"
#: Largest body accepted; larger answers 413.
MAX_BODY_BYTES = 5 * 1024 * 1024
#: Longest the store step may take before the route answers 503 (Intuit gives up at 3 s).
STORE_DEADLINE_S = 2.5
#: The header Intuit signs deliveries with.
SIGNATURE_HEADER = "intuit-signature"

NOT_CONFIGURED = (
    "Webhook intake is not configured: set QBO_WEBHOOK_VERIFIER_TOKEN to the Verifier Token shown in your "
    "Intuit app's Webhooks settings (developer.intuit.com) and restart the web app. Intuit will retry."
)


class _TooLarge(Exception):
    pass


class WebhookIntake:
    """ASGI middleware answering ``POST /webhooks/quickbooks`` before the admin app's middleware.

    Every other path goes to the wrapped app unchanged.

    Args:
        app: The admin app (its session middleware and routes) for every other request.
        inbox: Where verified events are stored.
        verifier_token: Intuit's webhook Verifier Token; ``None`` answers 503 to every delivery.
        path: The route's path.
        max_body_bytes: Largest body accepted (413 beyond).
        store_deadline_s: Longest the store step may take before answering 503.
        launcher: Asks Dagster for the landing at once after events were stored (the fast path,
            :class:`~qb_pipelines.web.dagster_launch.LandingLauncher`); ``None``: the sensor alone.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        inbox: WebhookInbox,
        verifier_token: str | None,
        path: str = WEBHOOK_PATH,
        max_body_bytes: int = MAX_BODY_BYTES,
        store_deadline_s: float = STORE_DEADLINE_S,
        launcher: LandingLauncher | None = None,
    ) -> None:
        self.app = app
        self.inbox = inbox
        self.verifier_token = verifier_token or None
        self.path = path.rstrip("/")
        self.max_body_bytes = max_body_bytes
        self.store_deadline_s = store_deadline_s
        self.launcher = launcher

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope.get("path", "")).rstrip("/") == self.path:
            response = await self.handle(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    async def handle(self, request: Request) -> Response:
        """Verify, parse and store one delivery; the response Intuit sees."""
        if request.method != "POST":
            return _error(405, "Only POST: this is QuickBooks Online's webhook endpoint.", headers={"allow": "POST"})
        if self.verifier_token is None:
            log.error("webhook delivery refused: QBO_WEBHOOK_VERIFIER_TOKEN is not set")
            return _error(503, NOT_CONFIGURED)
        t_id = request.headers.get("intuit-t-id", "-")
        try:
            body = await self._read_body(request)
        except _TooLarge:
            log.warning("webhook delivery %s refused: body larger than %d bytes", t_id, self.max_body_bytes)
            return _error(413, f"Webhook body larger than {self.max_body_bytes} bytes.")
        except ClientDisconnect:
            return _error(400, "The request body ended early.")
        if not verify(body, request.headers.get(SIGNATURE_HEADER), self.verifier_token):
            # Never say which part failed: a forger learns nothing.
            log.warning("webhook delivery %s refused: missing or invalid %s", t_id, SIGNATURE_HEADER)
            return _error(401, f"Missing or invalid {SIGNATURE_HEADER}: it must be the base64 HMAC-SHA256 of the "
                               "raw body with the app's webhook verifier token.")
        try:
            events = parse_notifications(body)
        except WebhookPayloadError as exc:
            log.warning("webhook delivery %s refused: %s", t_id, exc)
            return _error(400, f"Malformed webhook body: {exc}")
        if not events:
            return JSONResponse({"stored": 0, "duplicates": 0})
        sha = delivery_sha(body)
        result: tuple[int, int] | None = None
        try:
            with anyio.move_on_after(self.store_deadline_s):
                # abandon_on_cancel: past the deadline, answer now; the write finishes (or not) on
                # its own and Intuit's retry is then stored as duplicates.
                result = await anyio.to_thread.run_sync(
                    lambda: self.inbox.add_events(events, delivery_sha=sha), abandon_on_cancel=True
                )
        except WebhookPayloadError as exc:
            log.warning("webhook delivery %s refused: %s", t_id, exc)
            return _error(400, f"Malformed webhook body: {exc}")
        except SQLAlchemyError as exc:
            log.error("webhook delivery %s not stored: %s", t_id, type(exc).__name__)
            return _error(503, "The webhook inbox is unavailable right now; the delivery was not stored. "
                               "Intuit retries it.")
        if result is None:
            log.error("webhook delivery %s: store took longer than %.1f s, answered 503", t_id, self.store_deadline_s)
            return _error(503, "The webhook inbox is busy; Intuit retries the delivery.")
        stored, duplicates = result
        log.info("webhook delivery %s: %d events stored, %d duplicates", t_id, stored, duplicates)
        if stored and self.launcher is not None:
            self.launcher.webhooks_stored(list(events))  # in the background; the sensor is the backstop
        return JSONResponse({"stored": stored, "duplicates": duplicates})

    async def _read_body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _TooLarge
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:  # chunked or lying Content-Length: stop reading
                raise _TooLarge
            chunks.append(chunk)
        return b"".join(chunks)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def intake_middleware(settings: Any, runtime: Runtime) -> Middleware:
    """The :class:`WebhookIntake` middleware for the admin app (:func:`qb_pipelines.web.app.create_app`).

    Args:
        settings: The web settings; ``webhook_verifier_token`` (``QBO_WEBHOOK_VERIFIER_TOKEN``) keys the signature.
        runtime: The integration's runtime; its webhook inbox stores the events.

    With ``settings.dagster_graphql_url`` (``QB_DAGSTER_GRAPHQL_URL``) stored events ask Dagster
    for their landing at once (:class:`~qb_pipelines.web.dagster_launch.LandingLauncher`).
    """
    url = getattr(settings, "dagster_graphql_url", None)
    launcher = (LandingLauncher(url, lambda realm: [c.key for c in runtime.companies_for_realm(realm)],
                                runtime.inbox.latest_seq) if url else None)
    return Middleware(WebhookIntake, inbox=runtime.inbox, verifier_token=getattr(settings, "webhook_verifier_token", None),
                      launcher=launcher)
