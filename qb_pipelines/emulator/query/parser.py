"""The parser: tokens to a :class:`~qb_pipelines.emulator.query.syntax.Query`, with JavaCC-style 4000 faults.

Pure and cached (:func:`parse` keeps the last 512 texts); validation against entities and
properties happens later (:mod:`.sql`, :mod:`.response`).
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

from qb_pipelines.emulator import faults
from qb_pipelines.emulator.query.syntax import Condition, Query, Token, Value, escape, tokenize

if TYPE_CHECKING:
    pass


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
            encountered = f' {_image(tok)} "{escape(tok.raw)} "'
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
