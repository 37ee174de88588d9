"""QBO faults as the emulator raises and renders them (reference §4.6-§4.8, samples/faults.json)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FaultError:
    message: str
    detail: str
    code: str
    element: str | None = ""

    def to_json(self) -> dict:
        out = {"Message": self.message, "Detail": self.detail, "code": self.code}
        if self.element is not None:
            out["element"] = self.element
        return out


@dataclass
class QBOFault(Exception):
    """A fault QBO would return: HTTP status, fault type and one or more errors."""

    status: int
    type: str
    errors: list[FaultError] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:  # pragma: no cover - debugging aid
        return f"{self.status} {self.type}: " + "; ".join(f"{e.code} {e.message}" for e in self.errors)

    def fault_json(self) -> dict:
        """The ``Fault`` object (without envelope), as inside a batch item."""
        return {"Error": [e.to_json() for e in self.errors], "type": self.type}


def validation(code: str, message: str, detail: str, element: str | None = "") -> QBOFault:
    return QBOFault(400, "ValidationFault", [FaultError(message, detail, code, element)])


def required(element: str) -> QBOFault:
    """2020: a required field is missing (element names it, e.g. ``Line.DetailType``)."""
    return validation(
        "2020",
        "Required param missing, need to supply the required value for the API",
        f"Required parameter {element} is missing in the request",
        element,
    )


def invalid_reference(element: str, value: str, entity: str) -> QBOFault:
    """2500: a reference that points at nothing (or at an inactive object)."""
    return validation(
        "2500",
        "Invalid Reference Id",
        f"Invalid Reference Id : {entity} assigned to this transaction has been deleted or "
        f"does not exist. Id={value}",
        element,
    )


def not_found() -> QBOFault:
    """610: unknown Id (HTTP 400, as QBO answers it)."""
    return validation(
        "610",
        "Object Not Found",
        "Object Not Found : Something you're trying to use has been made inactive. Check the "
        "fields with accounts, customers, items, vendors or employees.",
    )


def stale(user: str = "Emulator User") -> QBOFault:
    """5010: the SyncToken sent is not the current one."""
    return validation(
        "5010",
        "Stale Object Error",
        f"Stale Object Error : You and {user} were working on this at the same time. {user} "
        "finished before you did, so your work was not saved.",
    )


def duplicate_name() -> QBOFault:
    """6240: DisplayName/Name already used (Customer, Vendor, Employee share one namespace)."""
    return validation(
        "6240",
        "Duplicate Name Exists Error",
        "The name supplied already exists. : Another customer, vendor or employee is already "
        "using this \nname. Please use a different name.",
    )


def business(detail: str, element: str = "") -> QBOFault:
    """6000: generic business rule, Detail starts "Business Validation Error: "."""
    return validation(
        "6000",
        "A business validation error has occurred while processing your request",
        f"Business Validation Error: {detail}",
        element,
    )


def unsupported(detail: str) -> QBOFault:
    """500: Unsupported Operation (e.g. delete on a name list)."""
    return validation("500", "Unsupported Operation", f"Operation {detail} is not supported.")


def invalid_value(element: str, detail: str, code: str = "2010") -> QBOFault:
    return validation(code, "Request has invalid or unsupported property", detail, element)


def query_parse(detail: str) -> QBOFault:
    """4000: the query did not parse."""
    return QBOFault(400, "ValidationFault", [FaultError("Error parsing query", detail, "4000", None)])


def query_invalid(detail: str) -> QBOFault:
    """4001: the query parsed but is invalid (range, unknown property)."""
    return QBOFault(400, "ValidationFault", [FaultError("Invalid query", detail, "4001", None)])


def throttled() -> QBOFault:
    """3001 with HTTP 429 (type SERVICE, two spaces in the Detail as QBO writes it)."""
    return QBOFault(
        429,
        "SERVICE",
        [FaultError("message=ThrottleExceeded; errorCode=003001; statusCode=429",
                    "The request limit was reached.  Try again later", "3001", None)],
    )


def system_error(detail: str = "System Failure Error: An unexpected error occurred") -> QBOFault:
    """10000 SystemFault, HTTP 500."""
    return QBOFault(
        500,
        "SystemFault",
        [FaultError("An application error has occurred while processing your request", detail, "10000", None)],
    )


def app_authorization_failed() -> QBOFault:
    """3100, HTTP 403: the token is valid but not for this company."""
    return QBOFault(
        403,
        "AuthorizationFault",
        [FaultError("message=ApplicationAuthorizationFailed; errorCode=003100; statusCode=403",
                    "", "3100", None)],
    )


class AuthFailure(Exception):
    """HTTP 401 with the gateway's lower-case ``fault`` envelope (3200)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def body(self, epoch_ms: int) -> dict:
        return {
            "warnings": None,
            "intuitObject": None,
            "fault": {
                "error": [
                    {
                        "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                        "detail": self.detail,
                        "code": "3200",
                        "element": None,
                    }
                ],
                "type": "AUTHENTICATION",
            },
            "report": None,
            "queryResponse": None,
            "batchItemResponse": [],
            "attachableResponse": [],
            "syncErrorResponse": None,
            "requestId": None,
            "time": epoch_ms,
            "status": None,
            "cdcresponse": [],
        }


def token_expired(token_id: str) -> AuthFailure:
    """The gateway's 401 for an expired access token.

    It names the token by Intuit's internal token id (``AB0<expiry epoch><random>``), never by the
    bearer value, so a client that prints the detail leaks nothing usable.
    """
    return AuthFailure(f"Token expired: {token_id}")


def token_revoked(token_id: str) -> AuthFailure:
    """The gateway's 401 for a revoked access token (named by its id, like :func:`token_expired`)."""
    return AuthFailure(f"Token revoked: {token_id}")
