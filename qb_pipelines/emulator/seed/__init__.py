"""Seeding: realistic, deterministic QuickBooks companies for the demo, the tests and the benchmarks.

Two ways in, for two sizes:

* :func:`seed_demo_company` builds "Craig's Design and Landscaping Services", the company a QBO
  sandbox starts with, **through the engine API** (``emu.engine.create/update/void/delete``):
  a year of invoices, estimates, payments, deposits, bills, expenses, journal entries and time,
  so every computed field, link, balance and ledger posting is exactly what the engine does.
  It takes a couple of seconds.
* :func:`seed_company` (and :class:`BulkSeeder` behind it) fills a company with a handful to
  1,000,000 invoices "in minutes and without running out of memory". Calling the engine once per
  object would take hours at that size, so the bulk path computes each body in Python exactly as
  the engine would (same keys in the same order, same values: line Ids, the SubTotal line, tax,
  TotalAmt, Balance, DocNumber from 1001, DueDate from terms, names on references, LinkedTxn on
  both sides, LineEx, SyncToken bumps) and stores whole batches with
  ``engine.insert_prepared`` (which also writes the ledger postings), then derives every balance
  from the ledger with ``engine.recompute_balances``. ``test_emulator_seed`` replays a bulk seed
  through ``engine.create`` and compares every body and posting, so the two paths cannot drift.

Memory: the bulk path streams, one batch of ``batch_size`` invoices (and their payments) at a
time; only the customer and item lists (at most a few tens of thousands of small dicts) stay in
memory. For big companies give the emulator a file-backed database,
``Emulator(EmulatorSettings(data_file="/tmp/big.sqlite"))``: SQLite then pages through a bounded
cache (64 MiB, see ``db.py``) and the process stays flat, where the default in-memory database
holds every row in RAM (about 2.5 KB per invoice with its postings and payment).

Modules: ``demo`` (with ``demo_lists`` and ``demo_year``) for the demo company, ``bodies`` and
``bulk`` for the bulk path, ``material`` for the names both draw from.

Determinism: everything comes from ``random.Random(seed)`` and ``emu.clock``; the same seed on
the same emulator day gives identical bodies (MetaData times aside in the demo, where the engine
stamps the current time).
"""

from qb_pipelines.emulator.seed.bodies import (
    CompanyLists,
    build_customer,
    build_invoice,
    build_item,
    build_payment,
    count_addresses,
)
from qb_pipelines.emulator.seed.bulk import BulkSeeder, Chunk, seed_company
from qb_pipelines.emulator.seed.demo import DEMO_COMPANY_NAME, seed_demo_company

__all__ = [
    "DEMO_COMPANY_NAME",
    "BulkSeeder",
    "Chunk",
    "CompanyLists",
    "build_customer",
    "build_invoice",
    "build_item",
    "build_payment",
    "count_addresses",
    "seed_company",
    "seed_demo_company",
]
