"""A small QBO v3 HTTP client for the emulator's conformance tests (not the project's client).

The emulator's control API is driven through the project's own control client
(:class:`~qb_pipelines.qbo.emulator_control.EmulatorControl`); :func:`control`,
:func:`issue_tokens` and :func:`connect` are shorthands over it for the tests.

It speaks to the emulator exactly as a third-party client speaks to real QuickBooks Online
(reference §1.2-§1.6, §11b): ``Authorization: Bearer``, ``Accept: application/json``,
``minorversion=75`` on every call, entity paths lower-cased under ``/v3/company/{realmId}``. Every
method returns the raw :class:`requests.Response` so tests can assert status codes, headers and
envelopes; :meth:`QBOTestClient.ok` unwraps a successful single-entity envelope.
"""

from __future__ import annotations

from typing import Any

import requests

from qb_pipelines.qbo import registry
from qb_pipelines.qbo.emulator_control import EmulatorControl

MINORVERSION = "75"
_UNSET: Any = object()


class QBOTestClient:
    """One company's view of the emulator's v3 API, authenticated with a bearer token.

    Args:
        base_url: The emulator's base URL (``http://127.0.0.1:<port>``).
        realm: The company's realmId.
        access_token: A bearer access token for ``realm``.
        minorversion: Sent on every call unless a call overrides it (``None`` omits it).
    """

    def __init__(self, base_url: str, realm: str, access_token: str, minorversion: str | None = MINORVERSION) -> None:
        self.base_url = base_url.rstrip("/")
        self.realm = realm
        self.access_token = access_token
        self.minorversion = minorversion
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {access_token}", "Accept": "application/json"})

    # ------------------------------------------------------------------ plumbing
    def url(self, path: str) -> str:
        """Absolute URL of ``path`` under ``/v3/company/{realm}/``."""
        return f"{self.base_url}/v3/company/{self.realm}/{path.lstrip('/')}"

    def raw(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = _UNSET,
        data: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        minorversion: str | None = _UNSET,
        requestid: str | None = None,
    ) -> requests.Response:
        """Send one request under the company's base path, with the client's usual headers.

        Args:
            method: HTTP method.
            path: Path under ``/v3/company/{realm}/`` (e.g. ``"invoice"`` or ``"item/5"``).
            params: Extra query parameters.
            json: JSON body (sent with ``Content-Type: application/json``).
            data: Raw body (for ``POST /query`` with ``application/text``).
            headers: Extra or overriding headers.
            minorversion: Overrides the client's minorversion for this call (``None`` omits it).
            requestid: The idempotency key QBO replays on (§1.6).
        """
        query: dict[str, Any] = {}
        mv = self.minorversion if minorversion is _UNSET else minorversion
        if mv is not None:
            query["minorversion"] = mv
        if requestid is not None:
            query["requestid"] = requestid
        query.update(params or {})
        kwargs: dict[str, Any] = {"params": query, "headers": headers or {}, "timeout": 30}
        if json is not _UNSET:
            kwargs["json"] = json
        elif data is not None:
            kwargs["data"] = data
        return self.session.request(method, self.url(path), **kwargs)

    @staticmethod
    def ok(response: requests.Response, key: str) -> Any:
        """The object under ``key`` of a 200 envelope; fails the test with the body otherwise."""
        assert response.status_code == 200, f"expected 200, got {response.status_code}: {response.text[:2000]}"
        body = response.json()
        assert key in body, f"no {key!r} in response: {response.text[:2000]}"
        return body[key]

    # ------------------------------------------------------------------ operations (§1.2)
    def create(self, entity: str, body: dict, *, requestid: str | None = None) -> requests.Response:
        """``POST /{entity}`` without Id."""
        return self.raw("POST", entity.lower(), json=body, requestid=requestid)

    def read(self, entity: str, obj_id: str) -> requests.Response:
        """``GET /{entity}/{id}``."""
        return self.raw("GET", f"{entity.lower()}/{obj_id}")

    def update(self, entity: str, body: dict, *, sparse: bool = False, requestid: str | None = None
               ) -> requests.Response:
        """``POST /{entity}`` with Id and SyncToken: full update, or sparse with ``sparse=True``."""
        payload = {**body, "sparse": True} if sparse else body
        return self.raw("POST", entity.lower(), json=payload, requestid=requestid)

    def delete(self, entity: str, obj_id: str, sync_token: str | int) -> requests.Response:
        """``POST /{entity}?operation=delete`` with ``{"Id", "SyncToken"}``."""
        return self.raw("POST", entity.lower(), params={"operation": "delete"},
                        json={"Id": str(obj_id), "SyncToken": str(sync_token)})

    def void(self, entity: str, obj_id: str, sync_token: str | int) -> requests.Response:
        """Void the way QBO wants it for ``entity``: ``operation=void`` (Invoice) or
        ``operation=update&include=void`` with a sparse body (Payment, SalesReceipt, BillPayment...)."""
        ent = registry.get(entity)
        if ent.void is registry.Void.OPERATION:
            return self.raw("POST", ent.path, params={"operation": "void"},
                            json={"Id": str(obj_id), "SyncToken": str(sync_token)})
        return self.raw("POST", ent.path, params={"operation": "update", "include": "void"},
                        json={"Id": str(obj_id), "SyncToken": str(sync_token), "sparse": True})

    def query(self, statement: str, *, method: str = "GET") -> requests.Response:
        """``GET /query?query=...`` or ``POST /query`` with ``Content-Type: application/text``."""
        if method.upper() == "POST":
            return self.raw("POST", "query", data=statement.encode(),
                            headers={"Content-Type": "application/text"})
        return self.raw("GET", "query", params={"query": statement})

    def count(self, entity: str, where: str = "") -> int:
        """``SELECT COUNT(*) FROM entity [WHERE ...]`` -> ``QueryResponse.totalCount``."""
        statement = f"SELECT COUNT(*) FROM {entity}" + (f" WHERE {where}" if where else "")
        return int(self.ok(self.query(statement), "QueryResponse")["totalCount"])

    def batch(self, items: list[dict], *, requestid: str | None = None) -> requests.Response:
        """``POST /batch`` with ``{"BatchItemRequest": items}``."""
        return self.raw("POST", "batch", json={"BatchItemRequest": items}, requestid=requestid)

    # ------------------------------------------------------------------ conveniences
    def make(self, entity: str, body: dict) -> dict:
        """Create and return the stored entity (asserting success)."""
        return self.ok(self.create(entity, body), answer_key(entity))

    def get(self, entity: str, obj_id: str) -> dict:
        """Read and return the entity (asserting success)."""
        return self.ok(self.read(entity, obj_id), answer_key(entity))


def answer_key(entity: str) -> str:
    """The key QBO wraps ``entity`` in (``CreditCardPayment`` answers as ``CreditCardPaymentTxn``)."""
    found = registry.find(entity)
    return found.json_key if found is not None else entity


def control(running: Any, method: str, path: str, **kwargs: Any) -> requests.Response:
    """The raw answer of a control request (``/_emulator/<path>``), for tests that assert its status.

    Sent by the project's one control client (:class:`EmulatorControl`), not by a second one.

    Args:
        running: the running emulator, or its base URL.
        method: the HTTP method.
        path: the path under ``/_emulator/``.
        **kwargs: ``json``, ``params``, ``data``, ``headers``, ``timeout`` of the request.
    """
    with EmulatorControl(running if isinstance(running, str) else running.url) as client:
        return client.response(method, path, **kwargs)


def issue_tokens(running: Any, realm: str) -> dict:
    """Tokens for ``realm`` through ``POST /_emulator/companies/{realm}/tokens``."""
    with EmulatorControl(running.url) as client:
        return client.tokens(realm)


def connect(running: Any, name: str = "Craig's Design and Landscaping Services") -> QBOTestClient:
    """Create a fresh company over the control API and return a v3 test client authenticated to it."""
    with EmulatorControl(running.url) as client:
        realm = client.create_company(name)["realmId"]
        tokens = client.tokens(realm)
    return QBOTestClient(running.url, realm, tokens["access_token"])


# ---------------------------------------------------------------------- payload shape comparison
def json_type(value: Any) -> str:
    """The JSON type of a decoded value (ints and floats are both JSON numbers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _is_ref(obj: dict) -> bool:
    return "value" in obj and set(obj) <= {"value", "name", "type"}


def _ignored(path: str, key: str, ignore: frozenset[str]) -> bool:
    full = f"{path}.{key}"
    return key in ignore or any(full.endswith("." + entry) for entry in ignore if "." in entry)


def shape_diff(sample: Any, actual: Any, *, ignore: frozenset[str] | set[str] = frozenset(), path: str = "$"
               ) -> list[str]:
    """Where ``actual`` differs from a real QBO payload ``sample`` in keys or JSON types, recursively.

    Values are not compared (the data differs); only which keys exist and what JSON type each has.
    Array elements are compared pairwise when both arrays have the same length, else each element
    of ``actual`` against the first of ``sample``; empty arrays have no element shapes to compare.

    Args:
        sample: The real payload (from ``shared/reference/samples``).
        actual: The emulator's payload.
        ignore: Key names (``"Lat"``) or dotted path suffixes (``"BillAddr.Id"``, array indices
            written ``[]``) left out of the comparison; callers document why for each one.
        path: Where we are (for messages).

    Returns:
        One line per difference; empty when the shapes agree. A reference's ``name`` is never
        reported missing or extra: QBO fills it "usually, not always" (reference §4.1).
    """
    ignore = frozenset(ignore)
    problems: list[str] = []
    if json_type(sample) != json_type(actual):
        return [f"{path}: type {json_type(actual)} (real QBO: {json_type(sample)})"]
    if isinstance(sample, dict):
        ref = _is_ref(sample) or _is_ref(actual)
        for key in sorted(set(sample) - set(actual)):
            if not _ignored(path, key, ignore) and not (ref and key == "name"):
                problems.append(f"{path}.{key}: missing (real QBO has it)")
        for key in sorted(set(actual) - set(sample)):
            if not _ignored(path, key, ignore) and not (ref and key == "name"):
                problems.append(f"{path}.{key}: extra (real QBO does not send it)")
        for key in sorted(set(sample) & set(actual)):
            if not _ignored(path, key, ignore):
                problems += shape_diff(sample[key], actual[key], ignore=ignore, path=f"{path}.{key}")
    elif isinstance(sample, list) and sample and actual:
        if len(sample) == len(actual):
            pairs = list(zip(sample, actual, strict=True))
        else:
            pairs = [(sample[0], a) for a in actual]
        for s, a in pairs:
            problems += shape_diff(s, a, ignore=ignore, path=f"{path}[]")
    return sorted(set(problems))


def fault_of(response: Any, code: str, status: int = 400) -> dict:
    """The single error of a fault response, asserting its HTTP status and code."""
    assert response.status_code == status, f"expected {status}/{code}, got {response.status_code}: {response.text}"
    body = response.json()
    assert set(body) == {"Fault", "time"}, body
    error = body["Fault"]["Error"][0]
    assert error["code"] == code, body
    return error
