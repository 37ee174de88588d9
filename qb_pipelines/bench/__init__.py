"""Benchmarks: commands that print figures (the last line one JSON object), never tests.

* :mod:`~qb_pipelines.bench.emulator`: ``qb-pipelines emulator bench``, the emulator seeding a
  large company and serving its invoices over HTTP;
* :mod:`~qb_pipelines.bench.ingest`: ``qb-pipelines bench ingest``, a large company landed in the
  warehouse (full load, incremental run, memory);
* :mod:`~qb_pipelines.bench.webhook_latency`: the webhook-to-warehouse latency through the
  Dagster daemon (the second half of ``bench ingest``).

Tooling: they may use every layer, the emulator's internals included, and start processes
(always supervised: :mod:`qb_pipelines.devtools`); only the command line imports them.
"""
