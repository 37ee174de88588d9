"""Entity semantics of the emulator: what QBO does when an object is written.

One :class:`Engine` per emulator. Every write runs in one ``db.tx()`` and, in that transaction,
validates (faults 2020, 2500, 5010, 6000, 6070, 6240, 610...), computes the server-side fields,
keeps related objects true, stores the body, replaces the transaction's ledger postings and
appends to the change log (which feeds webhooks). The modules, in the order a write meets them:

* ``operations`` - the :class:`Engine` and its operations (create, update, delete, void, merge,
  send, read, companies, bulk inserts); ``store`` - the store-facing primitives (:class:`Tx`);
  ``companies`` - a new company's starting lists;
* ``validation`` - required fields, references, line detail types, unique names;
* ``names`` - name lists (party names, hierarchies, inactivation); ``transactions`` - the
  transaction header and the compute step of each line family: ``sales``, ``expenses``,
  ``settlements`` (payments, bill payments), ``deposits``, ``journals``;
* ``effects`` - party balances, stock, links, estimate status; ``balances`` - ledger postings
  and balances derived from them; ``merge`` - merging name-list records;
* ``values`` - money, numbers, dates and references.

Reference: ``shared/reference/qbo_api.md`` §4 (CRUD), §7 (entities), §11 (fidelity list).
"""

from qb_pipelines.emulator.engine.operations import Engine

__all__ = ["Engine"]
