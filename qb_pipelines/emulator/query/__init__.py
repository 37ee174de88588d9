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

The rooms: :mod:`.syntax` (words, tokens, lexer), :mod:`.parser`, :mod:`.names` (property
names), :mod:`.sql` (WHERE and ORDER BY to SQL), :mod:`.response` (execution, paging, shaping).
"""

from qb_pipelines.emulator.query.parser import parse
from qb_pipelines.emulator.query.response import (
    DEFAULT_MAX_RESULTS,
    MAX_MAX_RESULTS,
    execute,
    execute_dict,
    fragment,
    resolve_entity,
)
from qb_pipelines.emulator.query.syntax import KEYWORDS, OPERATORS, Condition, Query, Token, Value, tokenize

__all__ = [
    "DEFAULT_MAX_RESULTS",
    "KEYWORDS",
    "MAX_MAX_RESULTS",
    "OPERATORS",
    "Condition",
    "Query",
    "Token",
    "Value",
    "execute",
    "execute_dict",
    "fragment",
    "parse",
    "resolve_entity",
    "tokenize",
]
