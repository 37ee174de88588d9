"""The authorize pages (appcenter.intuit.com): sign in, choose a company, consent, redirect with a code.

The half-filled flow travels signed in the page (never stored); the code is stored hashed, single
use, for 5 minutes. May touch: ``oauth_codes``; reads apps and users; renders ``emulator/templates``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from itsdangerous import BadSignature
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from qb_pipelines.emulator.oauth.common import (
    AUTH_CODE_LIFETIME_S,
    AUTHORIZE_FLOW_MAX_AGE_S,
    KNOWN_SCOPES,
    SCOPE_WORDING,
    OAuthRoom,
    alnum,
    sha256_hex,
    with_query,
)

_TEMPLATES = Environment(
    loader=FileSystemLoader(str(Path(__file__).parent.parent / "templates")),
    autoescape=select_autoescape(["html"]),
)


class AuthorizePages(OAuthRoom):
    """The browser side of the authorization code flow."""

    def _page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(_TEMPLATES.get_template(template).render(**context), status)

    def _error_page(self, code: str, message: str) -> HTMLResponse:
        return self._page("error.html", 400, error_code=code, error_message=message)

    def _flow_load(self, value: str | None) -> dict | None:
        if not value:
            return None
        try:
            data = self._flows.loads(value, max_age=AUTHORIZE_FLOW_MAX_AGE_S)
        except BadSignature:
            return None
        return data if isinstance(data, dict) else None

    def _expired_flow_page(self) -> HTMLResponse:
        return self._error_page(
            "session_expired", "This sign-in session has expired or is invalid. Go back to the app and try again."
        )

    async def authorize(self, request: Request) -> Response:
        q = request.query_params
        app = self._app(q.get("client_id"))
        if app is None:
            return self._error_page("invalid_client", "The client_id query parameter value is invalid.")
        redirect_uri = q.get("redirect_uri", "")
        if redirect_uri not in app["redirect_uris"]:
            # never redirect to a URI the app did not register: that would leak codes
            return self._error_page(
                "invalid_redirect_uri",
                "The redirect_uri query parameter value is invalid. Make sure it is listed in the Redirect URIs "
                "section on your app's keys tab and matches it exactly.",
            )
        state = q.get("state", "")
        if q.get("response_type") != "code":
            return RedirectResponse(
                with_query(redirect_uri, {"error": "unsupported_response_type", "state": state}), 302
            )
        scopes = q.get("scope", "").split()
        if not scopes or any(s not in KNOWN_SCOPES for s in scopes):
            return RedirectResponse(with_query(redirect_uri, {"error": "invalid_scope", "state": state}), 302)
        if not state:
            return RedirectResponse(
                with_query(redirect_uri, {"error": "invalid_request", "error_description": "state is required"}), 302
            )
        flow = {"client_id": app["client_id"], "redirect_uri": redirect_uri, "scope": " ".join(scopes), "state": state}
        return self._page("signin.html", app=app, flow=self._flows.dumps(flow), email="", error=None)

    async def authorize_signin(self, request: Request) -> Response:
        form = await request.form()
        flow = self._flow_load(str(form.get("flow", "")))
        if flow is None:
            return self._expired_flow_page()
        app = self._app(flow["client_id"])
        email = str(form.get("email", "")).strip()
        if app is None:
            return self._expired_flow_page()
        if not self._check_password(email, str(form.get("password", ""))):
            return self._page(
                "signin.html",
                200,
                app=app,
                flow=self._flows.dumps(flow),
                email=email,
                error="The email or password you entered is incorrect.",
            )
        user = self._user(email)
        assert user is not None
        flow.update(email=user["email"], auth_time=self.emu.clock.timestamp())
        realms = user["realmIds"]
        if not realms:
            return self._error_page("no_company", "Your Intuit account does not have access to any QuickBooks company.")
        if len(realms) == 1:
            return self._consent_page(app, {**flow, "realm": realms[0]})
        names = self._company_names(realms)
        companies = sorted(({"realmId": r, "name": n} for r, n in names.items()), key=lambda x: x["name"])
        return self._page("choose_company.html", app=app, flow=self._flows.dumps(flow), companies=companies, user=user)

    def _consent_page(self, app: dict, flow: dict) -> HTMLResponse:
        wording = [SCOPE_WORDING.get(s, s) for s in flow["scope"].split()]
        return self._page(
            "consent.html",
            app=app,
            flow=self._flows.dumps(flow),
            company_name=self._company_names([flow["realm"]])[flow["realm"]],
            realm=flow["realm"],
            permissions=wording,
            email=flow["email"],
        )

    async def authorize_company(self, request: Request) -> Response:
        form = await request.form()
        flow = self._flow_load(str(form.get("flow", "")))
        app = self._app(flow["client_id"]) if flow and "email" in flow else None
        if flow is None or app is None:
            return self._expired_flow_page()
        user = self._user(flow["email"])
        realm = str(form.get("realmId", ""))
        if user is None or realm not in user["realmIds"]:
            names = self._company_names(user["realmIds"]) if user else {}
            companies = sorted(({"realmId": r, "name": n} for r, n in names.items()), key=lambda x: x["name"])
            return self._page(
                "choose_company.html",
                app=app,
                flow=self._flows.dumps(flow),
                companies=companies,
                user=user,
                error="Choose a company to connect.",
            )
        return self._consent_page(app, {**flow, "realm": realm})

    async def authorize_consent(self, request: Request) -> Response:
        form = await request.form()
        flow = self._flow_load(str(form.get("flow", "")))
        if flow is None or "realm" not in flow or "email" not in flow:
            return self._expired_flow_page()
        app = self._app(flow["client_id"])
        if app is None or flow["redirect_uri"] not in app["redirect_uris"]:
            return self._expired_flow_page()
        if form.get("action") != "connect":
            return RedirectResponse(
                with_query(flow["redirect_uri"], {"error": "access_denied", "state": flow["state"]}), 302
            )
        user = self._user(flow["email"])
        if user is None or flow["realm"] not in user["realmIds"]:
            return self._error_page("access_denied", "You no longer have access to this company.")
        code = f"AB11{int(self.emu.clock.timestamp())}{alnum(36)}"
        with self.emu.db.tx() as c:
            c.execute(
                "INSERT INTO oauth_codes(code_hash, client_id, redirect_uri, scope, email, realm, auth_time, "
                "expires_at) VALUES (?,?,?,?,?,?,?,?)",
                (
                    sha256_hex(code),
                    flow["client_id"],
                    flow["redirect_uri"],
                    flow["scope"],
                    flow["email"],
                    flow["realm"],
                    flow["auth_time"],
                    self.emu.clock.lifetime_now() + AUTH_CODE_LIFETIME_S,
                ),
            )
        return RedirectResponse(
            with_query(flow["redirect_uri"], {"code": code, "state": flow["state"], "realmId": flow["realm"]}), 302
        )
