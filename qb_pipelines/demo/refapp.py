"""Fieldwise (the reference app) in the demo: its key, its callback, its process, and the loop measured.

* :func:`reference_app_environment`: the tenant's API key, made once and kept in ``secrets.env``
  as ``REFAPP_API_KEY`` (reused while it still opens the tenant, replaced otherwise), the callback
  secret ``REFAPP_CALLBACK_SECRET`` (made once), the callback registered with the integration
  (``http://127.0.0.1:<port>/hooks/quickbooks``), and the ``REFAPP_*`` environment of the child;
* :func:`measure_loop` (headless demo): a customer, an item and an invoice created through
  Fieldwise's forms until the invoice is ``synced`` (``push_latency_s``), a payment made in
  QuickBooks until Fieldwise shows the invoice paid (``payment_back_latency_s``), and the feed
  entries the integration's own writes caused meanwhile (``feed_echoes``: should be 0).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from qb_pipelines.demo.config import DEMO_TENANT, DemoError, Out
from qb_pipelines.demo.secrets_file import load_secrets, save_secrets

__all__ = ["LOOP_TIMEOUT_S", "LoopFigures", "measure_loop", "reference_app_environment"]

#: How long each step of the measured loop may take (daemon sensors, runs, the app's polling).
LOOP_TIMEOUT_S = 90.0


def reference_app_environment(env: Mapping[str, str], secrets_path: Path, root: Path, *, web_url: str, port: int,
                              tenant: str = DEMO_TENANT, poll_seconds: float = 1.0) -> dict[str, str]:
    """The child's environment: ``env`` plus every ``REFAPP_*`` (key and secret kept in ``secrets_path``)."""
    from qb_pipelines.sync.runtime import Runtime

    values, _ = load_secrets(secrets_path)
    runtime = Runtime.from_env(env)
    try:
        key = values.get("REFAPP_API_KEY")
        updates: dict[str, str] = {}
        if not key or runtime.api_keys.tenant_of(key) != tenant:
            key = runtime.api_keys.create(tenant, "reference app").key
            updates["REFAPP_API_KEY"] = key
        secret = values.get("REFAPP_CALLBACK_SECRET") or secrets.token_urlsafe(32)
        if "REFAPP_CALLBACK_SECRET" not in values:
            updates["REFAPP_CALLBACK_SECRET"] = secret
        if updates:
            save_secrets(secrets_path, updates)
        runtime.feed.set_callback(tenant, f"http://127.0.0.1:{port}/hooks/quickbooks", secret)
    finally:
        runtime.close()
    child = dict(env)
    child.update(REFAPP_DATABASE=str(root / "refapp.sqlite"), REFAPP_API_URL=web_url, REFAPP_API_KEY=key,
                 REFAPP_TENANT=tenant, REFAPP_POLL_SECONDS=f"{poll_seconds:g}", REFAPP_CALLBACK_SECRET=secret)
    return child


@dataclass
class LoopFigures:
    push_latency_s: float | None = None
    payment_back_latency_s: float | None = None
    feed_echoes: int | None = None


def _until(check: Callable[[], Any], what: str, still_possible: Callable[[], bool], timeout: float = LOOP_TIMEOUT_S
           ) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if not still_possible():
            raise DemoError(f"{what}: a process the demo needs stopped")
        if time.monotonic() > deadline:
            raise DemoError(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(0.1)


def measure_loop(refapp_url: str, web_url: str, env: Mapping[str, str], *, realm_id: str, emulator_url: str,
                 engine: Any, company_key: str, out: Out, still_possible: Callable[[], bool],
                 tenant: str = DEMO_TENANT) -> LoopFigures:
    """Fieldwise -> QuickBooks -> Fieldwise, through the daemon (see the module doc); raises DemoError."""
    from qb_pipelines.demo.warehouse import wait_for_row
    from qb_pipelines.qbo.emulator_control import EmulatorControl

    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {env['REFAPP_API_KEY']}"
    base = f"{web_url}/api/v1/tenants/{tenant}"
    app = requests.Session()
    figures = LoopFigures()

    def feed_head() -> int:
        cursor = 0
        while True:
            body = api.get(f"{base}/changes", params={"after": cursor, "limit": 1000}, timeout=30).json()
            if not body["changes"]:
                return cursor
            cursor = int(body["next"])

    def form(path: str, data: dict[str, str]) -> str:
        resp = app.post(refapp_url + path, data=data, allow_redirects=False, timeout=30)
        if resp.status_code != 303:
            raise DemoError(f"the reference app answered {resp.status_code} to POST {path}")
        return resp.headers["location"].rsplit("/", 1)[-1]

    before = feed_head()
    tag = secrets.token_hex(3)
    started = time.monotonic()
    form("/items", {"name": f"Hedge trimming {tag}", "unit_price": "80"})
    item_id = app.get(f"{refapp_url}/items", timeout=30).text.split(f"Hedge trimming {tag}")[0].rsplit('data-id="', 1)[1]
    item_id = item_id.split('"', 1)[0]
    customer_id = form("/customers", {"display_name": f"Fieldwise Customer {tag}", "phone": "555-0100"})
    invoice_id = form("/invoices", {"customer_id": customer_id, "number": f"FW-{tag}", "item_1": item_id,
                                    "qty_1": "3"})

    def synced() -> dict[str, Any] | None:
        resp = api.get(f"{base}/records/Invoice/{invoice_id}", timeout=30)
        body = resp.json() if resp.status_code == 200 else {}
        if body.get("status") == "failed":
            raise DemoError(f"the reference app's invoice failed to push: {body.get('error')}")
        return body if body.get("status") == "synced" else None

    status = _until(synced, "the reference app's invoice reaching QuickBooks", still_possible)
    figures.push_latency_s = round(time.monotonic() - started, 2)
    out(f"reference app: customer, item and invoice pushed to QuickBooks in {figures.push_latency_s:.1f} s "
        f"(invoice {status['qbo_id']})")

    # the pushed objects come back through webhooks and a landing run: none may reach the feed
    invoice_qbo_id = str(status["qbo_id"])
    if wait_for_row(engine, "Invoice", company_key, invoice_qbo_id, timeout=LOOP_TIMEOUT_S,
                    still_possible=still_possible) is None:
        raise DemoError("the reference app's invoice never landed in the warehouse")

    with EmulatorControl(emulator_url) as control:
        invoice = next(i for i in control.export(realm_id, "Invoice") if str(i["Id"]) == invoice_qbo_id)
        # the integration wrote these three objects and nobody changed them in QuickBooks since:
        # any entry about them before the payment is an echo of its own writes
        written = {("Invoice", invoice_qbo_id)}
        for entity, app_id in (("Customer", customer_id), ("Item", item_id)):
            written.add((entity, str(api.get(f"{base}/records/{entity}/{app_id}", timeout=30).json().get("qbo_id"))))
        changes = api.get(f"{base}/changes", params={"after": before, "limit": 1000}, timeout=30).json()["changes"]
        echoes = [c for c in changes if (c["entity"], str(c["qbo_id"])) in written]
        figures.feed_echoes = len(echoes)
        if echoes:
            out(f"reference app: echoed entries: {[(c['seq'], c['entity'], c['qbo_id']) for c in echoes]}")
        total = float(invoice["TotalAmt"])
        started = time.monotonic()
        control.act(realm_id, "Payment", "create", {
            "CustomerRef": invoice["CustomerRef"], "TotalAmt": total,
            "Line": [{"Amount": total, "LinkedTxn": [{"TxnId": invoice_qbo_id, "TxnType": "Invoice"}]}]})
        control.flush_webhooks()
    _until(lambda: 'id=doc-status class="paid"' in app.get(f"{refapp_url}/invoices/{invoice_id}", timeout=30).text,
           "the payment made in QuickBooks reaching the reference app", still_possible)
    figures.payment_back_latency_s = round(time.monotonic() - started, 2)
    out(f"reference app: the payment made in QuickBooks showed the invoice paid in "
        f"{figures.payment_back_latency_s:.1f} s; feed echoes of the integration's own writes: {figures.feed_echoes}")
    return figures
