"""The query language's words and shapes: keywords, tokens, the parsed query, and the lexer.

:func:`tokenize` turns the text into tokens, or raises fault 4000 with JavaCC's lexical error
wording. Pure: no database, no emulator state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qb_pipelines.emulator import faults

if TYPE_CHECKING:
    pass


# Tokens QBO's JavaCC grammar treats as reserved words (shown quoted in parser errors).
KEYWORDS = frozenset(
    {
        "select", "from", "where", "and", "or", "not", "orderby", "order", "by", "asc", "desc",
        "startposition", "maxresults", "in", "like", "count", "true", "false", "null",
    }
)
OPERATORS = ("<=", ">=", "!=", "<>", "=", "<", ">")
_IDENT_START = re.compile(r"[A-Za-z_]")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")


@dataclass(frozen=True)
class Token:
    """One lexical token. ``kind`` is KEYWORD, IDENTIFIER, STRING, INTEGER, DECIMAL, OP, PUNCT or EOF."""

    kind: str
    text: str  # as written (strings: the unescaped content)
    raw: str  # the source image (for error messages)
    line: int
    column: int

    @property
    def word(self) -> str:
        return self.text.lower()


@dataclass(frozen=True)
class Value:
    """A literal in a WHERE clause: ``kind`` is ``str``, ``num`` or ``bool``; ``text`` as written."""

    kind: str
    text: str


@dataclass(frozen=True)
class Condition:
    """``prop op value`` (``op`` is ``=``, ``<``, ``>``, ``<=``, ``>=``, ``in`` or ``like``)."""

    prop: str
    op: str
    values: tuple[Value, ...]


@dataclass(frozen=True)
class Query:
    """A parsed QBO query (names as written; resolution happens in :func:`execute`).

    Attributes:
        entity: the entity after FROM, as written.
        count: ``SELECT COUNT(*)``.
        star: ``*`` was selected (full rows).
        fields: extra or projected fields after SELECT (``Sku`` in ``*, Sku``).
        where: conditions joined by AND.
        order: ``(property, descending)`` pairs.
        start: STARTPOSITION as written, None when absent.
        max_results: MAXRESULTS as written, None when absent.
    """

    entity: str
    count: bool = False
    star: bool = True
    fields: tuple[str, ...] = ()
    where: tuple[Condition, ...] = ()
    order: tuple[tuple[str, bool], ...] = ()
    start: int | None = None
    max_results: int | None = None


def escape(text: str) -> str:
    """JavaCC's ``add_escapes``: how token images appear inside parser error messages."""
    out = []
    for ch in text:
        if ch in "\"'\\":
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        else:
            out.append(ch)
    return "".join(out)


def _lexical_error(line: int, column: int, found: str, after: str) -> faults.QBOFault:
    shown = "<EOF>" if found == "" else f'"{escape(found)}" ({ord(found)}), '
    if found == "":
        return faults.query_parse(
            f'QueryParserError: Lexical error at line {line}, column {column}.  Encountered: {shown} after : "{escape(after)}"'
        )
    return faults.query_parse(
        f'QueryParserError: Lexical error at line {line}, column {column}.  Encountered: {shown}after : "{escape(after)}"'
    )


def tokenize(text: str) -> list[Token]:
    """Split a query into tokens, tracking line and column (1-based) for error messages.

    Raises:
        QBOFault: 4000 on a character no token can start with, or an unterminated string.
    """
    tokens: list[Token] = []
    i, n = 0, len(text)
    line, line_start = 1, 0
    while i < n:
        ch = text[i]
        if ch == "\n":
            line += 1
            i += 1
            line_start = i
            continue
        if ch.isspace():
            i += 1
            continue
        column = i - line_start + 1
        if ch == "'":
            # Backslash escapes the next character (QBO docs: 'Adam\'s Candy Shop').
            j, buf = i + 1, []
            while True:
                if j >= n:
                    raise _lexical_error(line, n - line_start + 1, "", text[i:])
                c = text[j]
                if c == "\\" and j + 1 < n:
                    buf.append(text[j + 1])
                    j += 2
                    continue
                if c == "'":
                    break
                buf.append(c)
                j += 1
            tokens.append(Token("STRING", "".join(buf), text[i : j + 1], line, column))
            i = j + 1
            continue
        if ch.isdigit() or (ch in "-." and i + 1 < n and text[i + 1].isdigit()):
            m = _NUMBER.match(text, i)
            assert m is not None
            image = m.group(0)
            kind = "DECIMAL" if "." in image else "INTEGER"
            tokens.append(Token(kind, image, image, line, column))
            i = m.end()
            continue
        if _IDENT_START.match(ch):
            m = _IDENT.match(text, i)
            assert m is not None
            image = m.group(0)
            kind = "KEYWORD" if image.lower() in KEYWORDS else "IDENTIFIER"
            tokens.append(Token(kind, image, image, line, column))
            i = m.end()
            continue
        for op in OPERATORS:
            if text.startswith(op, i):
                tokens.append(Token("OP", op, op, line, column))
                i += len(op)
                break
        else:
            if ch in "*,()":
                tokens.append(Token("PUNCT", ch, ch, line, column))
                i += 1
                continue
            raise _lexical_error(line, column, ch, "")
    end_col = max(n - line_start, 0) + 1
    tokens.append(Token("EOF", "", "", line, end_col))
    return tokens
