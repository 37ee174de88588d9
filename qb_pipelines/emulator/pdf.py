"""A small, real PDF of a sales form (``GET /{entity}/{id}/pdf``), written by hand.

QBO renders a branded document; the emulator renders a one-page PDF 1.4 with the header,
lines and totals, valid enough for any PDF reader and for clients that store or forward it.
"""

from __future__ import annotations


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def _ascii(text: object) -> str:
    return str(text).encode("latin-1", errors="replace").decode("latin-1")


def render(entity: str, body: dict, company: dict) -> bytes:
    """Render ``body`` (an Invoice, Estimate, SalesReceipt, PurchaseOrder...) to PDF bytes."""
    lines: list[tuple[int, str]] = [
        (16, company.get("CompanyName", "")),
        (14, f"{entity} {body.get('DocNumber', body.get('Id', ''))}"),
        (10, f"Date: {body.get('TxnDate', '')}" + (f"    Due: {body['DueDate']}" if body.get("DueDate") else "")),
        (10, f"Vendor: {body['VendorRef'].get('name', '')}" if isinstance(body.get("VendorRef"), dict)
         else f"Bill to: {(body.get('CustomerRef') or {}).get('name', '')}"),
        (10, ""),
    ]
    for line in body.get("Line") or []:
        detail = line.get("SalesItemLineDetail") or line.get("ItemBasedExpenseLineDetail")
        expense = line.get("AccountBasedExpenseLineDetail")
        if expense:  # a purchase order's account line
            account = (expense.get("AccountRef") or {}).get("name", "")
            lines.append((10, f"{account:<28.28} {line.get('Description', ''):<34.34} {'':>20}  "
                              f"{line.get('Amount', 0):>11.2f}"))
        elif detail:
            item = (detail.get("ItemRef") or {}).get("name", "")
            desc = line.get("Description", "")
            lines.append((10, f"{item:<28.28} {desc:<34.34} {detail.get('Qty', '')!s:>6} x "
                              f"{detail.get('UnitPrice', '')!s:>9}  {line.get('Amount', 0):>11.2f}"))
        elif line.get("DetailType") == "SubTotalLineDetail":
            lines.append((10, f"{'Subtotal':>84}  {line.get('Amount', 0):>11.2f}"))
        elif line.get("DetailType") == "DiscountLineDetail":
            lines.append((10, f"{'Discount':>84} -{line.get('Amount', 0):>10.2f}"))
    tax = (body.get("TxnTaxDetail") or {}).get("TotalTax", 0) or 0
    lines.append((10, f"{'Tax':>84}  {float(tax):>11.2f}"))
    lines.append((12, f"{'Total':>70}  {float(body.get('TotalAmt', 0)):>11.2f}"))
    if "Balance" in body:
        lines.append((12, f"{'Balance due':>70}  {float(body.get('Balance', 0)):>11.2f}"))

    y = 800
    ops = []
    for size, text in lines:
        ops.append(f"BT /F1 {size} Tf 40 {y} Td ({_escape(_ascii(text))}) Tj ET")
        y -= size + 8
    stream = "\n".join(ops).encode("latin-1")
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 842] /Resources << /Font << /F1 4 0 R >> >> "
        b"/Contents 5 0 R >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for i, obj in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n".encode() + obj + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for off in offsets:
        out += f"{off:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)
