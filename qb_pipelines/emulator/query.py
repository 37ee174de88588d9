"""The QBO query language (reference §2): parser, validation and a SQL compiler over ``objects``.

What clients send (``GET /query?query=...`` or ``POST /query`` with an ``application/text`` body)
is a small SQL dialect::

    SELECT * | COUNT(*) | *, Sku | Id, Name FROM <Entity>
      [WHERE <prop> <op> <value> [AND ...]]
      [ORDERBY | ORDER BY <prop> [ASC|DESC] [, ...]]
      [STARTPOSITION n] [MAXRESULTS m]

Behaviour, as QBO does it (reference §2 and §11 items 1, 3, 7):

* keywords, entity names and property names are case-insensitive; any whitespace separates
  tokens (doubled spaces, newlines); ``ORDERBY`` and ``ORDER BY``; ``Metadata``/``MetaData``;
* values: ``'quoted'`` strings with ``\\'`` escapes, numbers quoted or not, ``true``/``false``,
  dates and datetimes with any offset (``Z``, ``-07:00``, and a ``+`` that arrived URL-decoded
  as a space); MetaData times compare as instants, string comparisons ignore case;
* a syntax error is fault 4000 with a JavaCC ``QueryParserError: Encountered ... at line 1,
  column N.`` Detail (samples/faults.json); an unknown entity is 4001
  ``QueryValidationError: invalid context declaration: <Entity>`` (what production QBO answers
  for ``SELECT * FROM Check``, captured by a public client) and an unknown property is 4001
  ``QueryValidationError: Property <P> not found for Entity <E>`` (captured from a sandbox);
* STARTPOSITION is 1-based (``0`` is accepted as 1: clients send it), MAXRESULTS defaults to 100
  and is bounded 1..1000, out of range is 4001 ``QueryValidationError: value 1500 is too large.
  Max allowed value is 1000``; ``Id`` accepts only ``=`` and ``IN`` (4001 otherwise);
* name lists return active rows only unless the WHERE mentions ``Active``; deleted objects
  (tombstones) never appear; default order is Id ascending;
* the response object is ``{"<Entity>": [...], "startPosition": s, "maxResults": <rows
  returned>}``, ``{}`` when nothing matches, ``{"totalCount": n}`` for ``COUNT(*)``;
* ``SELECT *`` without a minorversion (the "base version") hides ``Item.Sku``, which needs
  minorversion 4; ``SELECT *, Sku`` asks for it explicitly (python-quickbooks 0.9.12 sends it).
  A projection ``SELECT Id, Name`` returns the listed fields with ``sparse: true``
  **[uncertain: shape of projected rows]**.

Speed: the bodies in ``objects`` are the exact JSON QBO returns, so a page is the stored bytes
joined with commas, never decoded. Paging a million rows with ``OFFSET`` is quadratic, so a
small keyset cache remembers, per query and database version, the sort key of the last row of
each page served: the next sequential page becomes ``WHERE (key) > (last)`` with no OFFSET.
The engine bumps ``emu.db.version`` on every write, which retires stale positions.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import orjson

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.clock import parse_instant
from qb_pipelines.qbo import registry
from qb_pipelines.qbo.registry import EntityDef, Kind

if TYPE_CHECKING:
    from qb_pipelines.emulator.core import Emulator

DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000

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
# A datetime whose '+' offset arrived URL-decoded as a space (any fractional seconds).
_PLUS_AS_SPACE = re.compile(r"^(\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) (\d\d(?::?\d\d)?)$")


# --------------------------------------------------------------------------------------------
# Tokens and the parsed query
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Lexer
# --------------------------------------------------------------------------------------------


def _escape(text: str) -> str:
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
    shown = "<EOF>" if found == "" else f'"{_escape(found)}" ({ord(found)}), '
    if found == "":
        return faults.query_parse(
            f'QueryParserError: Lexical error at line {line}, column {column}.  Encountered: {shown} after : "{_escape(after)}"'
        )
    return faults.query_parse(
        f'QueryParserError: Lexical error at line {line}, column {column}.  Encountered: {shown}after : "{_escape(after)}"'
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


# --------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------


def _image(tok: Token) -> str:
    """How JavaCC names a token kind: ``"from"`` for literals, ``<IDENTIFIER>`` otherwise."""
    if tok.kind in ("KEYWORD", "OP", "PUNCT"):
        return f'"{tok.word}"'
    return f"<{tok.kind}>"


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.pos = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.pos]

    def advance(self) -> Token:
        tok = self.tokens[self.pos]
        if tok.kind != "EOF":
            self.pos += 1
        return tok

    def error(self, *expected: str) -> faults.QBOFault:
        tok = self.tok
        if tok.kind == "EOF":
            encountered = "<EOF>"
        else:
            encountered = f' {_image(tok)} "{_escape(tok.raw)} "'
        detail = f'QueryParserError: Encountered "{encountered}" at line {tok.line}, column {tok.column}.\n'
        detail += "Was expecting:\n    " if len(expected) == 1 else "Was expecting one of:\n    "
        detail += "".join(f"{e} ...\n    " for e in expected)
        return faults.query_parse(detail)

    def is_kw(self, *words: str) -> bool:
        return self.tok.kind == "KEYWORD" and self.tok.word in words

    def is_punct(self, ch: str) -> bool:
        return self.tok.kind == "PUNCT" and self.tok.text == ch

    def expect_kw(self, word: str) -> Token:
        if not self.is_kw(word):
            raise self.error(f'"{word}"')
        return self.advance()

    def expect_punct(self, ch: str) -> Token:
        if not self.is_punct(ch):
            raise self.error(f'"{ch}"')
        return self.advance()

    def identifier(self) -> str:
        if self.tok.kind != "IDENTIFIER":
            raise self.error("<IDENTIFIER>")
        return self.advance().text

    def integer(self) -> int:
        if self.tok.kind != "INTEGER":
            raise self.error("<INTEGER>")
        return int(self.advance().text)

    def value(self) -> Value:
        tok = self.tok
        if tok.kind == "STRING":
            self.advance()
            return Value("str", tok.text)
        if tok.kind in ("INTEGER", "DECIMAL"):
            self.advance()
            return Value("num", tok.text)
        if tok.kind == "KEYWORD" and tok.word in ("true", "false"):
            self.advance()
            return Value("bool", tok.word)
        if tok.kind == "IDENTIFIER" and tok.word == "current_date":
            self.advance()
            return Value("current_date", tok.text)
        raise self.error("<STRING>", "<INTEGER>", "<DECIMAL>", '"true"', '"false"')

    def parse(self) -> Query:
        self.expect_kw("select")
        count, star, fields = False, False, []
        if self.is_kw("count"):
            self.advance()
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            count = True
        elif self.is_punct("*"):
            self.advance()
            star = True
            while self.is_punct(","):
                self.advance()
                fields.append(self.identifier())
        elif self.tok.kind == "IDENTIFIER":
            fields.append(self.identifier())
            while self.is_punct(","):
                self.advance()
                fields.append(self.identifier())
        else:
            raise self.error('"*"', '"count"', "<IDENTIFIER>")
        if not self.is_kw("from"):
            raise self.error('","', '"from"') if not count else self.error('"from"')
        self.advance()
        entity = self.identifier()

        where: list[Condition] = []
        if self.is_kw("where"):
            self.advance()
            where.append(self.condition())
            while self.is_kw("and"):
                self.advance()
                where.append(self.condition())

        order: list[tuple[str, bool]] = []
        if self.is_kw("orderby", "order"):
            if self.advance().word == "order":
                self.expect_kw("by")
            while True:
                prop = self.identifier()
                desc = False
                if self.is_kw("asc", "desc"):
                    desc = self.advance().word == "desc"
                order.append((prop, desc))
                if not self.is_punct(","):
                    break
                self.advance()

        start: int | None = None
        max_results: int | None = None
        # Clients put the two paging clauses in either order; each at most once.
        while self.is_kw("startposition", "maxresults"):
            word = self.advance().word
            if word == "startposition" and start is None:
                start = self.integer()
            elif word == "maxresults" and max_results is None:
                max_results = self.integer()
            else:
                self.pos -= 1
                raise self.error("<EOF>")

        if self.tok.kind != "EOF":
            expected = []
            if not where and not order:
                expected.append('"where"')
            if where and not order:
                expected.append('"and"')
            if not order:
                expected.append('"orderby"')
            if start is None:
                expected.append('"startposition"')
            if max_results is None:
                expected.append('"maxresults"')
            expected.append("<EOF>")
            raise self.error(*expected)
        return Query(
            entity=entity,
            count=count,
            star=star,
            fields=tuple(fields),
            where=tuple(where),
            order=tuple(order),
            start=start,
            max_results=max_results,
        )

    def condition(self) -> Condition:
        prop = self.identifier()
        tok = self.tok
        if tok.kind == "OP" and tok.text in ("=", "<", ">", "<=", ">="):
            self.advance()
            return Condition(prop, tok.text, (self.value(),))
        if self.is_kw("in"):
            self.advance()
            self.expect_punct("(")
            values = [self.value()]
            while self.is_punct(","):
                self.advance()
                values.append(self.value())
            self.expect_punct(")")
            return Condition(prop, "in", tuple(values))
        if self.is_kw("like"):
            self.advance()
            if self.tok.kind != "STRING":
                raise self.error("<STRING>")
            return Condition(prop, "like", (Value("str", self.advance().text),))
        raise self.error('"="', '"<"', '">"', '"<="', '">="', '"in"', '"like"')


@lru_cache(maxsize=512)
def parse(text: str) -> Query:
    """Parse a QBO query (case-insensitive keywords, any whitespace).

    Cached: a sync pages through the same query text a thousand times.

    Raises:
        QBOFault: 4000 "Error parsing query" with a JavaCC-style ``QueryParserError`` Detail.
    """
    return _Parser(text).parse()


# --------------------------------------------------------------------------------------------
# Property names: QBO matches them case-insensitively, JSON paths are case-sensitive
# --------------------------------------------------------------------------------------------

# Field names every client uses; entity bodies teach the rest (see _PropertyNames).
_COMMON_FIELDS = (
    "Id", "SyncToken", "MetaData", "MetaData.CreateTime", "MetaData.LastUpdatedTime", "Active",
    "Name", "DisplayName", "GivenName", "FamilyName", "MiddleName", "CompanyName", "Title",
    "FullyQualifiedName", "PrintOnCheckName", "PrimaryEmailAddr", "PrimaryEmailAddr.Address",
    "PrimaryPhone", "PrimaryPhone.FreeFormNumber", "Job", "ParentRef", "Level", "Balance",
    "BalanceWithJobs", "Taxable", "Sku", "Type", "Description", "UnitPrice", "PurchaseCost",
    "QtyOnHand", "TrackQtyOnHand", "DocNumber", "TxnDate", "DueDate", "TotalAmt", "PrivateNote",
    "CustomerRef", "VendorRef", "EmployeeRef", "ItemRef", "AccountRef", "ClassRef", "DepartmentRef",
    "CurrencyRef", "SalesTermRef", "TermRef", "DepositToAccountRef", "PaymentMethodRef",
    "AccountType", "AccountSubType", "Classification", "AcctNum", "CurrentBalance", "EmailStatus",
    "PrintStatus", "TxnStatus", "PaymentType", "PayType", "Credit", "DueDays", "RateValue",
    "UnappliedAmt", "RemainingCredit", "ExpirationDate", "Hours", "Minutes", "NameOf",
    "BillableStatus", "Adjustment", "PaymentRefNum", "CustomerMemo", "BillEmail", "ShipDate",
)


def _static_names() -> dict[str, str]:
    names: dict[str, str] = {}
    for entity in registry.ENTITIES:
        for path in entity.typed_fields:
            names.setdefault(path.lower(), path)
            head = path.split(".")[0]
            names.setdefault(head.lower(), head)
    for path in _COMMON_FIELDS:
        names[path.lower()] = path
    # "Metadata" is a spelling clients send; the body key is always "MetaData".
    return names


_STATIC_NAMES = _static_names()


def _collect_paths(obj: dict, prefix: str, out: dict[str, str], depth: int = 0) -> None:
    for key, val in obj.items():
        path = f"{prefix}{key}"
        out.setdefault(path.lower(), path)
        if isinstance(val, dict) and depth < 2:
            _collect_paths(val, path + ".", out, depth + 1)


class _PropertyNames:
    """Learned, case-preserving property paths per (realm, entity), grown from stored bodies."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.learned: dict[tuple[str, str], dict[str, str]] = {}
        # (realm, entity, property, db version) already searched for in vain: a client that
        # repeats a faulting query must not rescan a large table every time.
        self.missing: OrderedDict[tuple, bool] = OrderedDict()

    def resolve(self, emu: Emulator, realm: str, entity: EntityDef, prop: str) -> str:
        """The canonical dotted path for ``prop`` (any case) on ``entity``.

        Raises:
            QBOFault: 4001 when the entity has rows and none carries the property.
        """
        low = prop.lower()
        found = _STATIC_NAMES.get(low)
        if found:
            return found
        key = (realm, entity.name)
        with self.lock:
            learned = self.learned.get(key)
        if learned and low in learned:
            return learned[low]
        version = getattr(emu.db, "version", 0)
        with self.lock:
            if (realm, entity.name, low, version) in self.missing:
                raise faults.query_invalid(
                    f"QueryValidationError: Property {prop} not found for Entity {entity.name}")
        # Unknown so far: find a row that carries the last segment (any case), learn its paths.
        last = low.rsplit(".", 1)[-1]
        with emu.db.read() as conn:
            row = conn.execute(
                "SELECT body FROM objects WHERE realm=? AND entity=? AND IFNULL(status,'')<>'Deleted' "
                "AND instr(lower(CAST(body AS TEXT)), ?) > 0 LIMIT 1",
                (realm, entity.name, f'"{last}":'),
            ).fetchone()
            any_row = row is not None or conn.execute(
                "SELECT 1 FROM objects WHERE realm=? AND entity=? LIMIT 1", (realm, entity.name)
            ).fetchone() is not None
        if row is not None:
            paths: dict[str, str] = {}
            _collect_paths(orjson.loads(row[0]), "", paths)
            with self.lock:
                self.learned.setdefault(key, {}).update(paths)
            if low in paths:
                return paths[low]
        if any_row:
            with self.lock:
                self.missing[(realm, entity.name, low, version)] = True
                while len(self.missing) > 256:
                    self.missing.popitem(last=False)
            raise faults.query_invalid(f"QueryValidationError: Property {prop} not found for Entity {entity.name}")
        # Nothing stored yet: the filter matches nothing whatever it names.
        return prop


_NAMES = _PropertyNames()


# --------------------------------------------------------------------------------------------
# Compiling WHERE / ORDER BY to SQL
# --------------------------------------------------------------------------------------------

_TIME_COLUMNS = {"metadata.lastupdatedtime": "updated_at", "metadata.createtime": "created_at"}


def _instant(value: Value, emu: Emulator, prop: str) -> float:
    text = value.text.strip()
    if value.kind == "current_date":
        text = emu.clock.today()
    m = _PLUS_AS_SPACE.match(text)
    if m:
        text = f"{m.group(1)}+{m.group(2)}"
    try:
        return parse_instant(text)
    except ValueError:
        raise faults.query_invalid(
            f"QueryValidationError: value {value.text} is not a valid date/time for property {prop}"
        ) from None


def _as_number(value: Value) -> float | None:
    if value.kind in ("num", "str"):
        try:
            return float(value.text)
        except ValueError:
            return None
    return None


def _as_bool(value: Value) -> int | None:
    if value.kind in ("bool", "str") and value.text.lower() in ("true", "false"):
        return 1 if value.text.lower() == "true" else 0
    return None


def _as_int_id(value: Value) -> int | None:
    try:
        return int(value.text.strip())
    except ValueError:
        return None


#: Contact objects filter on their one value: ``PrimaryEmailAddr = 'a@b.co'`` compares the address.
_CONTACT_LEAVES = {"PrimaryEmailAddr": "Address", "BillEmail": "Address", "PrimaryPhone": "FreeFormNumber",
                   "Mobile": "FreeFormNumber", "Fax": "FreeFormNumber", "AlternatePhone": "FreeFormNumber",
                   "WebAddr": "URI"}


def _json_path(path: str) -> str:
    # Reference fields (CustomerRef, ParentRef...) filter on their id: '$.CustomerRef.value'.
    last = path.split(".")[-1]
    if last.endswith("Ref"):
        path += ".value"
    elif last in _CONTACT_LEAVES:
        path += "." + _CONTACT_LEAVES[last]
    return "$." + path


def _generic_compare(path: str, op: str, value: Value, emu: Emulator, params: list[Any]) -> str:
    """Compare a body field with a literal the way QBO does: numbers numerically, text ignoring case."""
    text = emu.clock.today() if value.kind == "current_date" else value.text
    num = _as_number(value)
    flag = _as_bool(value)
    jp = _json_path(path)
    parts = ["CASE json_type(body, ?)"]
    params.append(jp)
    if num is not None:
        parts.append(f"WHEN 'integer' THEN json_extract(body, ?) {op} ? WHEN 'real' THEN json_extract(body, ?) {op} ?")
        params.extend([jp, num, jp, num])
    if flag is not None:
        parts.append(f"WHEN 'true' THEN 1 {op} ? WHEN 'false' THEN 0 {op} ?")
        params.extend([flag, flag])
    parts.append(f"WHEN 'text' THEN json_extract(body, ?) {op} ? COLLATE NOCASE END")
    params.extend([jp, text])
    return " ".join(parts)


class _Compiled:
    """SQL pieces for one query against one entity."""

    def __init__(self) -> None:
        self.where: list[str] = []
        self.params: list[Any] = []
        self.mentions_active = False


def _compile_where(q: Query, emu: Emulator, realm: str, entity: EntityDef) -> _Compiled:
    out = _Compiled()
    for cond in q.where:
        low = cond.prop.lower()
        op = cond.op
        if low == "id":
            if op not in ("=", "in"):
                raise faults.query_invalid(
                    f"QueryValidationError: operator '{op}' is not supported for property 'Id'"
                )
            ints = [_as_int_id(v) for v in cond.values]
            if all(i is not None for i in ints):
                out.where.append(f"id IN ({','.join('?' * len(ints))})")
                out.params.extend(ints)
            else:  # non-numeric Ids (e.g. TaxCode "TAX") live only in the body
                out.where.append(f"json_extract(body, '$.Id') IN ({','.join('?' * len(ints))})")
                out.params.extend(v.text for v in cond.values)
            continue
        if low in _TIME_COLUMNS:
            column = _TIME_COLUMNS[low]
            instants = [_instant(v, emu, cond.prop) for v in cond.values]
            if op == "in":
                out.where.append(f"{column} IN ({','.join('?' * len(instants))})")
            elif op == "like":
                raise faults.query_invalid(f"QueryValidationError: operator 'like' is not supported for property '{cond.prop}'")
            else:
                out.where.append(f"{column} {op} ?")
            out.params.extend(instants)
            continue
        if low == "type" and entity.wraps:
            # a RecurringTransaction is filtered on the type it wraps ({"Invoice": {...}})
            kinds = [v.text for v in cond.values]
            if op not in ("=", "in") or any(k not in entity.wraps for k in kinds):
                raise faults.query_invalid(f"QueryValidationError: value {cond.values[0].text} is invalid for "
                                           "property 'Type'")
            out.where.append("(" + " OR ".join("json_type(body, ?) IS NOT NULL" for _ in kinds) + ")")
            out.params.extend(f"$.{k}" for k in kinds)
            continue
        if low == "active":
            out.mentions_active = True
            flags = [_as_bool(v) for v in cond.values]
            if any(f is None for f in flags) or op == "like":
                raise faults.query_invalid(f"QueryValidationError: value {cond.values[0].text} is invalid for property 'Active'")
            if op == "in":
                out.where.append(f"active IN ({','.join('?' * len(flags))})")
            else:
                out.where.append(f"active {op} ?")
            out.params.extend(flags)
            continue
        path = _NAMES.resolve(emu, realm, entity, cond.prop)
        if op == "like":
            pattern = cond.values[0].text.replace("\\", "\\\\").replace("_", "\\_")
            out.where.append("json_extract(body, ?) LIKE ? ESCAPE '\\'")
            out.params.extend([_json_path(path), pattern])
        elif op == "in":
            ors = [_generic_compare(path, "=", v, emu, out.params) for v in cond.values]
            out.where.append("(" + " OR ".join(f"({o})" for o in ors) + ")")
        else:
            out.where.append(_generic_compare(path, op, cond.values[0], emu, out.params))
    return out


def _order_terms(q: Query, emu: Emulator, realm: str, entity: EntityDef) -> tuple[list[tuple[str, bool]], bool]:
    """ORDER BY terms as (sql expression, descending); the bool says whether keyset paging applies.

    Keyset paging needs every term to be a plain column sorted the same way; ``id`` is always
    the final tie-breaker so pages never overlap.
    """
    terms: list[tuple[str, bool]] = []
    keyset = True
    for prop, desc in q.order:
        low = prop.lower()
        if low == "id":
            terms.append(("id", desc))
        elif low in _TIME_COLUMNS:
            terms.append((_TIME_COLUMNS[low], desc))
        elif low == "active":
            terms.append(("active", desc))
        else:
            path = _NAMES.resolve(emu, realm, entity, prop)
            terms.append((f"json_extract(body, '{_json_path(path)}') COLLATE NOCASE", desc))
            keyset = False
    if not any(expr == "id" for expr, _ in terms):
        terms.append(("id", terms[-1][1] if terms else False))
    if len({desc for _, desc in terms}) > 1:
        keyset = False
    return terms, keyset


# --------------------------------------------------------------------------------------------
# Keyset cache
# --------------------------------------------------------------------------------------------


class _KeysetCache:
    """(realm, query shape, db version) -> {next STARTPOSITION: sort key of the row before it}."""

    MAX_QUERIES = 256
    MAX_POSITIONS = 32

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.entries: OrderedDict[tuple, OrderedDict[int, tuple]] = OrderedDict()

    def get(self, key: tuple, position: int) -> tuple | None:
        with self.lock:
            positions = self.entries.get(key)
            if positions is None:
                return None
            self.entries.move_to_end(key)
            return positions.get(position)

    def put(self, key: tuple, position: int, sort_key: tuple) -> None:
        with self.lock:
            positions = self.entries.get(key)
            if positions is None:
                positions = self.entries[key] = OrderedDict()
                while len(self.entries) > self.MAX_QUERIES:
                    self.entries.popitem(last=False)
            self.entries.move_to_end(key)
            positions[position] = sort_key
            while len(positions) > self.MAX_POSITIONS:
                positions.popitem(last=False)


_CACHES: weakref.WeakKeyDictionary[Any, _KeysetCache] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _cache_for(emu: Emulator) -> _KeysetCache:
    with _CACHES_LOCK:
        cache = _CACHES.get(emu.db)
        if cache is None:
            cache = _CACHES[emu.db] = _KeysetCache()
        return cache


# --------------------------------------------------------------------------------------------
# Execution
# --------------------------------------------------------------------------------------------


def resolve_entity(name: str) -> EntityDef:
    """The registry entry for a queried entity name (any case).

    Raises:
        QBOFault: 4001 ``QueryValidationError: invalid context declaration: <name>``.
    """
    entity = registry.find(name)
    if entity is None:
        raise faults.query_invalid(f"QueryValidationError: invalid context declaration: {name}")
    return entity


def _paging(q: Query) -> tuple[int, int]:
    start = 1 if q.start is None else q.start
    if start < 0:
        raise faults.query_invalid(f"QueryValidationError: value {start} is too small. Min allowed value is 1")
    start = max(start, 1)  # STARTPOSITION 0 is sent by real clients and served as 1
    max_results = DEFAULT_MAX_RESULTS if q.max_results is None else q.max_results
    if max_results < 1:
        raise faults.query_invalid(f"QueryValidationError: value {max_results} is too small. Min allowed value is 1")
    if max_results > MAX_MAX_RESULTS:
        raise faults.query_invalid(
            f"QueryValidationError: value {max_results} is too large. Max allowed value is {MAX_MAX_RESULTS}"
        )
    return start, max_results


def _base_version(minorversion: str | None) -> bool:
    """True when the request gets QBO's base version (no minorversion, or one below 4)."""
    if minorversion is None or str(minorversion).strip() == "":
        return True
    try:
        return int(str(minorversion).strip()) < 4
    except ValueError:
        return False


def _shape_rows(
    bodies: list[bytes], q: Query, entity: EntityDef, emu: Emulator, realm: str, minorversion: str | None
) -> list[bytes]:
    """Apply projections and field visibility; full ``SELECT *`` rows pass through untouched."""
    if not q.star:
        paths = [_NAMES.resolve(emu, realm, entity, f) for f in q.fields]
        out = []
        for body in bodies:
            obj = orjson.loads(body)
            row: dict[str, Any] = {"domain": obj.get("domain", "QBO"), "sparse": True, "Id": obj.get("Id")}
            for path in paths:
                head = path.split(".")[0]
                if head in obj:
                    row[head] = obj[head]
            out.append(orjson.dumps(row))
        return out
    if (
        entity.name == "Item"
        and _base_version(minorversion)
        and not any(f.lower() == "sku" for f in q.fields)
    ):
        out = []
        for body in bodies:
            if b'"Sku"' in body:
                obj = orjson.loads(body)
                obj.pop("Sku", None)
                body = orjson.dumps(obj)
            out.append(body)
        return out
    return bodies


def execute(emu: Emulator, realm: str, text: str, minorversion: str | None = "75") -> bytes:
    """Run a QBO query for one company and return the ``QueryResponse`` object as JSON bytes.

    Args:
        emu: the emulator (its ``db`` and ``clock`` are used).
        realm: the company's realmId.
        text: the query as the client sent it.
        minorversion: the request's ``minorversion``; ``None`` when absent (QBO's base version
            hides fields introduced later, e.g. ``Item.Sku``). Defaults to a modern client.

    Returns:
        The bytes of the object under ``"QueryResponse"``: ``{"Invoice":[...],"startPosition":1,
        "maxResults":2}``, ``{}`` when nothing matches, ``{"totalCount":n}`` for ``COUNT(*)``.

    Raises:
        QBOFault: 4000 on a syntax error, 4001 on an invalid entity, property or paging value.
    """
    q = parse(text)
    entity = resolve_entity(q.entity)
    start, max_results = _paging(q)
    compiled = _compile_where(q, emu, realm, entity)
    clauses = ["realm = ?", "entity = ?", "IFNULL(status, '') <> 'Deleted'"]
    params: list[Any] = [realm, entity.name]
    if entity.kind is Kind.NAME_LIST and not compiled.mentions_active:
        clauses.append("active = 1")  # name lists answer with active rows unless asked
    clauses.extend(compiled.where)
    params.extend(compiled.params)

    if q.count:
        with emu.db.read() as conn:
            (total,) = conn.execute(f"SELECT COUNT(*) FROM objects WHERE {' AND '.join(clauses)}", params).fetchone()
        return b'{"totalCount":%d}' % total

    terms, keyset = _order_terms(q, emu, realm, entity)
    order_sql = ", ".join(f"{expr} {'DESC' if desc else 'ASC'}" for expr, desc in terms)
    key_cols = [expr for expr, _ in terms]
    cache = _cache_for(emu) if keyset else None
    cache_key = (realm, entity.name, q.fields, q.where, q.order, getattr(emu.db, "version", 0))
    offset = start - 1
    after = cache.get(cache_key, start) if cache is not None and start > 1 else None
    if after is not None:
        # The plain bound on the leading column goes first: SQLite's planner takes the first
        # range it sees on an indexed column, and the row value alone is not used as a range.
        desc = terms[0][1]
        keyset_sql = (
            f"{key_cols[0]} {'<=' if desc else '>='} ? AND "
            f"({', '.join(key_cols)}) {'<' if desc else '>'} ({', '.join('?' * len(after))})"
        )
        clauses.insert(2, keyset_sql)
        params[2:2] = [after[0], *after]
        offset = 0
    select_cols = ", ".join(["body", *key_cols]) if keyset else "body"
    sql = (
        f"SELECT {select_cols} FROM objects WHERE {' AND '.join(clauses)} "
        f"ORDER BY {order_sql} LIMIT ? OFFSET ?"
    )
    params.extend([max_results, offset])
    with emu.db.read() as conn:
        rows = conn.execute(sql, params).fetchall()
    if not rows:
        return b"{}"
    if cache is not None:
        cache.put(cache_key, start + len(rows), tuple(rows[-1][1:]))
    bodies = [r[0] if isinstance(r[0], bytes) else str(r[0]).encode() for r in rows]
    bodies = _shape_rows(bodies, q, entity, emu, realm, minorversion)
    return b'{"%s":[%s],"startPosition":%d,"maxResults":%d}' % (
        entity.json_key.encode(),
        b",".join(bodies),
        start,
        len(bodies),
    )


def execute_dict(emu: Emulator, realm: str, text: str, minorversion: str | None = "75") -> dict:
    """:func:`execute` decoded, for callers that assemble JSON themselves (batch items).

    Prefer ``orjson.Fragment(execute(...))`` inside an ``orjson.dumps`` to keep rows as bytes.
    """
    return orjson.loads(execute(emu, realm, text, minorversion))


def fragment(emu: Emulator, realm: str, text: str, minorversion: str | None = "75") -> orjson.Fragment:
    """:func:`execute` wrapped for embedding, e.g. ``orjson.dumps({"QueryResponse": frag, "bId": b})``."""
    return orjson.Fragment(execute(emu, realm, text, minorversion))
