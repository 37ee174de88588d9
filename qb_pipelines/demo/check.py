"""Check a running emulator answers as QuickBooks does: companies, tokens, v3 queries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from qb_pipelines.demo.config import DemoError, Out
from qb_pipelines.qbo.emulator_control import EmulatorControl, EmulatorControlError

__all__ = ["DemoCheck", "check_emulator", "print_connection_help"]


@dataclass
class DemoCheck:
    """What the demo verified about the running emulator."""

    url: str
    realm: str
    company_name: str
    counts: dict[str, int]
    token_keys: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {
            "emulator_url": self.url,
            "realmId": self.realm,
            "company_name": self.company_name,
            "counts": self.counts,
            "token_keys": self.token_keys,
        }


def check_emulator(url: str) -> DemoCheck:
    """Check a running emulator answers as QBO: companies, tokens, and v3 queries with those tokens.

    Raises:
        DemoError: any step fails (the message names the step).
    """
    with EmulatorControl(url) as control:
        try:
            companies = control.companies()
            if not companies:
                raise DemoError(f"the emulator at {url} has no company; expected the seeded demo company")
            realm = str(companies[0]["realmId"])
            creds = control.tokens(realm)
        except EmulatorControlError as exc:
            raise DemoError(str(exc)) from None
    missing = {"access_token", "refresh_token", "client_id", "client_secret"} - set(creds)
    if missing:
        raise DemoError(f"POST /_emulator/companies/{realm}/tokens lacks {sorted(missing)}")
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {creds['access_token']}", "Accept": "application/json"})

    def query(sql: str) -> dict[str, Any]:
        # QuickBooks' own v3 API, as any client reads it (not the control API)
        resp = session.get(f"{url}/v3/company/{realm}/query", params={"query": sql, "minorversion": "75"}, timeout=30)
        if resp.status_code != 200:
            raise DemoError(f"query {sql!r} answered {resp.status_code}: {resp.text[:2000]}")
        return resp.json()["QueryResponse"]

    with session:
        info = query("select * from CompanyInfo").get("CompanyInfo", [{}])[0]
        counts = {
            entity: int(query(f"select count(*) from {entity}").get("totalCount", 0))
            for entity in ("Customer", "Item", "Invoice", "Payment")
        }
    return DemoCheck(
        url=url,
        realm=realm,
        company_name=str(info.get("CompanyName", companies[0].get("name", ""))),
        counts=counts,
        token_keys=sorted(creds),
    )


def print_connection_help(check: DemoCheck, out: Out) -> None:
    """How to reach the demo company as a QBO client would."""
    out(f"QBO emulator:      {check.url}")
    out(f"Demo company:      {check.company_name} (realmId {check.realm})")
    out(f"Records:           {', '.join(f'{n} {e}' for e, n in check.counts.items())}")
    out("Get tokens:        " f"qb-pipelines emulator tokens {check.realm} --url {check.url}")
    out(f"                   (or: curl -X POST {check.url}/_emulator/companies/{check.realm}/tokens)")
    out(f"Query it as QBO:   GET {check.url}/v3/company/{check.realm}/query?query=select * from Invoice")
    out("                   with header `Authorization: Bearer <access_token>`")
