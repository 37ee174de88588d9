"""Fieldwise's pages: plain server-rendered HTML and forms, no JavaScript.

Every form writes the app's own database first (a new ``version`` of the record), then sends the
record to the records API (:func:`qb_pipelines.reference_app.feed.send`). A record's page asks the
records API where it is (``GET .../records/{entity}/{app_id}``) and shows it: ``pending``,
``synced`` (with its QuickBooks id), ``failed`` (QuickBooks' message and the next step),
``review`` (an admin decides in the integration's dashboard) or ``held``.
"""

from __future__ import annotations

import json
import uuid
from html import escape
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from qb_pipelines.reference_app.client import IntegrationError
from qb_pipelines.reference_app.feed import send

STYLE = ("body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem}table{border-collapse:collapse}"
         "td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:left}label{display:block;margin:.3rem 0}"
         ".status{font-weight:bold}.failed,.review{color:#b00}.synced,.paid{color:#070}")


def _e(value: Any) -> str:
    return escape("" if value is None else str(value))


def page(title: str, body: str) -> HTMLResponse:
    nav = " · ".join(f'<a href="{href}">{name}</a>' for href, name in (
        ("/", "Home"), ("/customers", "Customers"), ("/items", "Items"), ("/invoices", "Invoices"),
        ("/estimates", "Estimates"), ("/payments", "Payments")))
    return HTMLResponse(f"<!doctype html><html><head><meta charset=utf-8><title>{_e(title)} · Fieldwise</title>"
                        f"<style>{STYLE}</style></head><body><nav>Fieldwise · {nav}</nav>"
                        f"<h1 id=page-title>{_e(title)}</h1>{body}</body></html>")


def _money(value: Any) -> str:
    return "" if value is None else f"{float(value):,.2f}"


def _new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def _send(request: Request, entity: str, app_id: str) -> None:
    """Send after the local write; an unreachable integration only delays it (the worker resends)."""
    state = request.app.state
    try:
        await run_in_threadpool(send, state.db, state.client, entity, app_id)
    except IntegrationError:
        pass  # version > sent_version: the worker tries again every REFAPP_POLL_SECONDS


async def _sync_status(request: Request, entity: str, app_id: str) -> str:
    """The record's sync status from the records API, as a small block."""
    try:
        found = await run_in_threadpool(request.app.state.client.status, entity, app_id)
    except IntegrationError as exc:
        return f'<p id=sync>Sync status unavailable: {_e(exc)}</p>'
    if found is None:
        return '<p id=sync>Sync status: <span class="status pending" id=sync-status>not sent yet</span></p>'
    status = found["status"]
    out = (f'<p id=sync>Sync status: <span class="status {_e(status)}" id=sync-status>{_e(status)}</span> '
           f'({_e(found["detail_status"])}, version {_e(found["version"])})')
    if found.get("qbo_id"):
        out += f' · QuickBooks id <span id=qbo-id>{_e(found["qbo_id"])}</span>'
    out += "</p>"
    if found.get("reason"):
        out += f'<p id=sync-reason>{_e(found["reason"])}</p>'
    if found.get("error"):
        err = found["error"]
        out += (f'<p id=sync-error class=failed>{_e(err.get("code"))} {_e(err.get("message"))}</p>'
                f'<p id=next-step>Next step: {_e(err.get("next_step"))}</p>')
    return out


# ------------------------------------------------------------------------------------------------
async def home(request: Request) -> Response:
    db = request.app.state.db
    counts = {name: db.one(f"SELECT COUNT(*) AS n FROM {table}")["n"]
              for name, table in (("customers", "customers"), ("items", "items"), ("documents", "documents"),
                                  ("payments", "payments"))}
    return page("Fieldwise", f"<p>{counts['customers']} customers and jobs, {counts['items']} items, "
                             f"{counts['documents']} invoices and estimates, {counts['payments']} payments.</p>"
                             f"<p>Change feed cursor: <span id=cursor>{db.cursor()}</span></p>")


async def customers(request: Request) -> Response:
    db = request.app.state.db
    if request.method == "POST":
        form = await request.form()
        app_id = _new_id("cust")
        with db.begin() as conn:
            conn.execute("INSERT INTO customers (id, parent_id, display_name, email, phone) VALUES (?, ?, ?, ?, ?)",
                         (app_id, form.get("parent_id") or None, str(form["display_name"]).strip(),
                          form.get("email") or None, form.get("phone") or None))
        await _send(request, "Customer", app_id)
        return RedirectResponse(f"/customers/{app_id}", status_code=303)
    rows = db.all("SELECT * FROM customers WHERE deleted = 0 ORDER BY display_name")
    table = "".join(f'<tr data-id="{_e(r["id"])}"><td><a href="/customers/{_e(r["id"])}">{_e(r["display_name"])}</a>'
                    f'</td><td>{"job" if r["parent_id"] else "customer"}</td><td>{_e(r["email"])}</td>'
                    f'<td>{_e(r["phone"])}</td></tr>' for r in rows)
    parents = "".join(f'<option value="{_e(r["id"])}">{_e(r["display_name"])}</option>'
                      for r in rows if not r["parent_id"])
    form = ('<form method=post id=new-customer><h2>New customer or job</h2>'
            '<label>Name <input name=display_name id=display_name required></label>'
            '<label>E-mail <input name=email id=email type=email></label>'
            '<label>Phone <input name=phone id=phone></label>'
            f'<label>Job of <select name=parent_id id=parent_id><option value="">(a customer)</option>{parents}'
            '</select></label><button id=create>Create</button></form>')
    return page("Customers", f"<table id=customers><tr><th>Name</th><th>Kind</th><th>E-mail</th><th>Phone</th></tr>"
                             f"{table}</table>{form}")


async def customer(request: Request) -> Response:
    db, app_id = request.app.state.db, request.path_params["app_id"]
    if request.method == "POST":  # an edit: a new version of the whole record
        form = await request.form()
        with db.begin() as conn:
            conn.execute("UPDATE customers SET display_name = ?, email = ?, phone = ?, version = version + 1 "
                         "WHERE id = ?", (str(form["display_name"]).strip(), form.get("email") or None,
                                          form.get("phone") or None, app_id))
        await _send(request, "Customer", app_id)
        return RedirectResponse(f"/customers/{app_id}", status_code=303)
    row = db.one("SELECT * FROM customers WHERE id = ?", app_id)
    if row is None:
        return page("Not found", "<p>No such customer.</p>")
    docs = db.all("SELECT * FROM documents WHERE customer_id = ? ORDER BY rowid", app_id)
    jobs = db.all("SELECT * FROM customers WHERE parent_id = ?", app_id)
    body = (f'<dl><dt>E-mail</dt><dd id=customer-email>{_e(row["email"])}</dd>'
            f'<dt>Phone</dt><dd id=customer-phone>{_e(row["phone"])}</dd></dl>'
            + await _sync_status(request, "Customer", app_id)
            + "".join(f'<p>Job: <a href="/customers/{_e(j["id"])}">{_e(j["display_name"])}</a></p>' for j in jobs)
            + "".join(f'<p>{_e(d["kind"])} <a href="/{d["kind"].lower()}s/{_e(d["id"])}">{_e(d["number"] or d["id"])}'
                      f'</a> {_money(d["total"])} {_e(d["status"])}</p>' for d in docs)
            + f'<form method=post id=edit-customer><h2>Edit</h2>'
              f'<label>Name <input name=display_name id=display_name value="{_e(row["display_name"])}" required></label>'
              f'<label>E-mail <input name=email id=email type=email value="{_e(row["email"])}"></label>'
              f'<label>Phone <input name=phone id=phone value="{_e(row["phone"])}"></label>'
              '<button id=save>Save</button></form>')
    return page(row["display_name"], body)


async def items(request: Request) -> Response:
    db = request.app.state.db
    if request.method == "POST":
        form = await request.form()
        app_id = _new_id("item")
        with db.begin() as conn:
            conn.execute("INSERT INTO items (id, name, unit_price) VALUES (?, ?, ?)",
                         (app_id, str(form["name"]).strip(), float(form.get("unit_price") or 0)))
        await _send(request, "Item", app_id)
        return RedirectResponse("/items", status_code=303)
    rows = db.all("SELECT * FROM items ORDER BY name")
    table = "".join(f'<tr data-id="{_e(r["id"])}"><td>{_e(r["name"])}</td><td>{_money(r["unit_price"])}</td>'
                    f'<td>{"sent" if r["sent_version"] >= r["version"] else "not sent yet"}</td></tr>' for r in rows)
    form = ('<form method=post id=new-item><h2>New service</h2><label>Name <input name=name id=name required></label>'
            '<label>Unit price <input name=unit_price id=unit_price type=number step=0.01 min=0></label>'
            '<button id=create>Create</button></form>')
    return page("Items", f"<table id=items><tr><th>Name</th><th>Price</th><th></th></tr>{table}</table>{form}")


def _kind(request: Request) -> str:
    return "Estimate" if request.url.path.startswith("/estimates") else "Invoice"


async def documents(request: Request) -> Response:
    """Invoices (``/invoices``) and estimates (``/estimates``): the list and the form of a new one."""
    db, kind = request.app.state.db, _kind(request)
    base = f"/{kind.lower()}s"
    if request.method == "POST":
        form = await request.form()
        app_id = _new_id(kind[:3].lower())
        lines = []
        for n in range(1, 4):
            item, qty = form.get(f"item_{n}"), form.get(f"qty_{n}")
            if item and qty:
                price = form.get(f"price_{n}") or db.one("SELECT unit_price FROM items WHERE id = ?", item)["unit_price"]
                lines.append((app_id, n, item, form.get(f"description_{n}") or None, float(qty), float(price)))
        with db.begin() as conn:
            conn.execute("INSERT INTO documents (id, kind, number, customer_id, txn_date, total) VALUES (?, ?, ?, ?, ?, ?)",
                         (app_id, kind, form.get("number") or None, form["customer_id"], form.get("txn_date") or None,
                          round(sum(ln[4] * ln[5] for ln in lines), 2)))
            conn.executemany("INSERT INTO lines (document_id, n, item_id, description, qty, unit_price) "
                             "VALUES (?, ?, ?, ?, ?, ?)", lines)
        await _send(request, kind, app_id)
        return RedirectResponse(f"{base}/{app_id}", status_code=303)
    rows = db.all("SELECT d.*, c.display_name FROM documents d JOIN customers c ON c.id = d.customer_id "
                  "WHERE d.kind = ? ORDER BY d.rowid", kind)
    table = "".join(f'<tr data-id="{_e(r["id"])}"><td><a href="{base}/{_e(r["id"])}">{_e(r["number"] or r["id"])}</a>'
                    f'</td><td>{_e(r["display_name"])}</td><td>{_money(r["total"])}</td><td>{_money(r["balance"])}</td>'
                    f'<td class="{_e(r["status"])}">{_e(r["status"])}</td></tr>' for r in rows)
    customers_ = "".join(f'<option value="{_e(r["id"])}">{_e(r["display_name"])}</option>'
                         for r in db.all("SELECT * FROM customers WHERE deleted = 0 ORDER BY display_name"))
    items_ = '<option value=""></option>' + "".join(
        f'<option value="{_e(r["id"])}">{_e(r["name"])}</option>' for r in db.all("SELECT * FROM items ORDER BY name"))
    line_rows = "".join(f'<tr><td><select name=item_{n} id=item_{n}>{items_}</select></td>'
                        f'<td><input name=qty_{n} id=qty_{n} type=number step=any min=0></td>'
                        f'<td><input name=price_{n} id=price_{n} type=number step=0.01 placeholder="item price"></td>'
                        f'<td><input name=description_{n}></td></tr>' for n in range(1, 4))
    form = (f'<form method=post id=new-document><h2>New {kind.lower()}</h2>'
            f'<label>Customer or job <select name=customer_id id=customer_id required>{customers_}</select></label>'
            '<label>Number <input name=number id=number maxlength=21></label>'
            '<label>Date <input name=txn_date id=txn_date type=date></label>'
            f'<table><tr><th>Item</th><th>Qty</th><th>Unit price</th><th>Description</th></tr>{line_rows}</table>'
            '<button id=create>Create</button></form>')
    return page(f"{kind}s", f'<table id=documents><tr><th>Number</th><th>Customer</th><th>Total</th><th>Balance</th>'
                            f'<th>Status</th></tr>{table}</table>{form}')


async def document(request: Request) -> Response:
    db, kind, app_id = request.app.state.db, _kind(request), request.path_params["app_id"]
    row = db.one("SELECT d.*, c.display_name FROM documents d JOIN customers c ON c.id = d.customer_id "
                 "WHERE d.id = ? AND d.kind = ?", app_id, kind)
    if row is None:
        return page("Not found", f"<p>No such {kind.lower()}.</p>")
    lines = db.all("SELECT l.*, i.name FROM lines l LEFT JOIN items i ON i.id = l.item_id WHERE document_id = ? "
                   "ORDER BY n", app_id)
    paid_by = [p for p in db.all("SELECT * FROM payments WHERE voided = 0 ORDER BY date")
               if any(a.get("invoice_app_id") == app_id for a in json.loads(p["applied"]))]
    body = (f'<p>Customer: <a href="/customers/{_e(row["customer_id"])}">{_e(row["display_name"])}</a></p>'
            f'<p>Status: <span id=doc-status class="{_e(row["status"])}">{_e(row["status"])}</span> · '
            f'total <span id=doc-total>{_money(row["total"])}</span> · balance '
            f'<span id=doc-balance>{_money(row["balance"])}</span></p>'
            + await _sync_status(request, kind, app_id)
            + "<table id=lines><tr><th>Item</th><th>Qty</th><th>Unit price</th></tr>"
            + "".join(f'<tr><td>{_e(ln["name"] or ln["item_id"])}</td><td>{ln["qty"]:g}</td>'
                      f'<td>{_money(ln["unit_price"])}</td></tr>' for ln in lines) + "</table>"
            + ("<h2>Payments (made in QuickBooks)</h2><ul id=payments>" + "".join(
                f'<li>{_e(p["date"])}: {_money(p["amount"])} {_e(p["method"] or "")} {_e(p["reference"] or "")}</li>'
                for p in paid_by) + "</ul>" if paid_by else ""))
    return page(f"{kind} {row['number'] or app_id}", body)


async def payments(request: Request) -> Response:
    rows = request.app.state.db.all("SELECT * FROM payments ORDER BY date DESC")
    table = "".join(f'<tr data-qbo-id="{_e(r["qbo_id"])}"><td>{_e(r["date"])}</td><td>{_money(r["amount"])}</td>'
                    f'<td>{_e(r["method"])}</td><td>{_e(", ".join(a.get("invoice_app_id") or "?" for a in json.loads(r["applied"])))}'
                    f'</td><td>{"voided" if r["voided"] else ""}</td></tr>' for r in rows)
    return page("Payments", "<p>Payments are taken in QuickBooks; Fieldwise hears of them through the change feed.</p>"
                            f"<table id=payments><tr><th>Date</th><th>Amount</th><th>Method</th><th>Invoices</th>"
                            f"<th></th></tr>{table}</table>")
