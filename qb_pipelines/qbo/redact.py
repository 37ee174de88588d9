"""Remove secrets from text before it is stored, logged or shown.

Errors travel far: an HTTP answer's detail becomes an exception message, then a log line, a
stored ``last_error``, a page, a Dagster event. Anything shaped like an OAuth credential is cut
out wherever the text came from, and the caller may name the exact secrets it holds (a
connection's current tokens) so they go even when they have no recognisable shape.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

__all__ = ["REDACTED", "RedactingFilter", "install_redaction", "redact"]

REDACTED = "[redacted]"

_TOKEN_CHARS = r"[A-Za-z0-9._~+/=-]"
_PATTERNS = (
    # Authorization headers (Bearer or Basic credentials), quoted in messages or dumped dicts
    re.compile(r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?(?:bearer\s+|basic\s+)?)" + _TOKEN_CHARS + "{8,}"),
    # "Bearer <token>" anywhere else
    re.compile(r"(?i)(\bbearer\s+)" + _TOKEN_CHARS + "{8,}"),
    # key=value / "key": "value" for the OAuth fields (URLs, form bodies, JSON)
    re.compile(r"(?i)(\b(?:access_token|refresh_token|id_token|client_secret|code)[\"']?\s*[:=]\s*[\"']?)"
               + _TOKEN_CHARS + "{8,}"),
    # JWTs and JWEs (Intuit's access tokens are JWEs: header..iv.ciphertext.tag), the first part a JSON header
    re.compile(r"()\beyJ[A-Za-z0-9_-]{8,}(?:\.[A-Za-z0-9_-]*){2,4}"),
    # Intuit's refresh tokens (RT1-<n>-H0-<epoch><random>) and authorization codes / legacy tokens (AB11...)
    re.compile(r"()\bRT1-\d+-H0-[A-Za-z0-9]{10,}"),
    re.compile(r"()\bAB11[A-Za-z0-9]{20,}"),
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


class RedactingFilter(logging.Filter):
    """A logging filter that rewrites every record it sees without token-shaped text.

    The formatted message (``msg % args``) and the exception text are redacted and the record
    keeps only the result, so whichever handler formats it later (a terminal, a file, Dagster's
    event log) never sees a token. It never drops a record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def redact_record(record: logging.LogRecord) -> logging.LogRecord:
    """Redact ``record`` in place (its message, arguments and exception text); returns it."""
    if getattr(record, "_qb_redacted", False):
        return record
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: leave it to logging's own error handling
        return record
    cleaned = redact(message) or ""
    if cleaned != message:
        # Keep the arguments' shape where redacting them one by one is enough: formatters such as
        # uvicorn's access log unpack ``record.args``.
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
            record.msg = redact(record.msg) if isinstance(record.msg, str) else record.msg
            try:
                ok = redact(record.getMessage()) == record.getMessage()
            except Exception:
                ok = False
            if not ok:
                record.msg, record.args = cleaned, None
        else:
            record.msg, record.args = cleaned, None
    if record.exc_info and not record.exc_text:
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    elif record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    record._qb_redacted = True  # type: ignore[attr-defined]
    return record


_FILTER = RedactingFilter()
_installed_factory: Callable[..., logging.LogRecord] | None = None


def install_redaction(*logger_names: str) -> RedactingFilter:
    """Redact every log record of this process, whoever logs it and wherever it goes (idempotent).

    Installs :class:`RedactingFilter` on the root logger's handlers, on the named loggers and
    their handlers, and as a step of the log-record factory, so records created by any library
    (uvicorn, Dagster, requests) and handlers added later are covered too.

    Returns:
        The filter, for callers that attach it to handlers of their own.
    """
    global _installed_factory
    for name in ("", *logger_names):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
        for handler in logger.handlers:
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
    current = logging.getLogRecordFactory()
    if current is not _installed_factory:
        def factory(*args: object, **kwargs: object) -> logging.LogRecord:
            return redact_record(current(*args, **kwargs))

        _installed_factory = factory
        logging.setLogRecordFactory(factory)
    return _FILTER
