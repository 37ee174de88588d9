"""Remove secrets from text before it is stored, logged or shown.

Errors travel far: an HTTP answer's detail becomes an exception message, then a log line, a
stored ``last_error``, a page, a Dagster event. Anything shaped like an OAuth credential is cut
out wherever the text came from, and the caller may name the exact secrets it holds (a
connection's current tokens) so they go even when they have no recognisable shape.
"""

from __future__ import annotations

import re

__all__ = ["REDACTED", "redact"]

REDACTED = "[redacted]"

_PATTERNS = (
    # Authorization headers and "Bearer <token>" quoted in messages
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    # key=value / "key": "value" for the OAuth fields
    re.compile(r"(?i)(\b(?:access_token|refresh_token|id_token|client_secret|code)[\"']?\s*[:=]\s*[\"']?)"
               r"[A-Za-z0-9._~+/=-]{8,}"),
    # JWTs (access and id tokens): three base64url parts, the first one a JSON header
    re.compile(r"()\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
)


def redact(text: str | None, *secrets: str | None, limit: int | None = None) -> str | None:
    """``text`` without the given secrets nor anything shaped like a token, cut to ``limit`` characters.

    Args:
        text: the message (``None`` passes through).
        *secrets: exact values to remove (at least 8 characters long; shorter ones are ignored so
            that a short value cannot blank out ordinary words).
        limit: keep at most this many characters (an HTML error page is not an error message).
    """
    if text is None:
        return None
    for secret in secrets:
        if secret and len(secret) >= 8:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + REDACTED, text)
    return text[:limit] if limit is not None else text
