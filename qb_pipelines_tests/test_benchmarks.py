"""The benchmark commands keep their contract: they run end to end and end with the JSON keys the
issues promise. Figures are printed, never asserted; counts (rows served, API calls) are."""

from __future__ import annotations

import json

from click.testing import CliRunner

from qb_pipelines.bench import ingest as bench_ingest
from qb_pipelines.cli import cli


def test_emulator_bench_pages_every_invoice_and_prints_its_json_line() -> None:
    result = CliRunner().invoke(cli, ["emulator", "bench", "--invoices", "300", "--page-size", "100"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    assert figures["served"] == 300 and figures["pages"] == 3
    assert figures["invoices_per_s"] > 0 and figures["peak_rss_mb"] > 0


def test_ingest_bench_lands_the_company_and_reports_the_issue_keys(tmp_path) -> None:
    lines: list[str] = []
    figures = bench_ingest.run(300, f"sqlite:///{tmp_path / 'bench.sqlite'}", out=lines.append)
    for key in ("invoices_per_s", "api_calls", "peak_rss_mb", "incremental_s", "incremental_api_calls"):
        assert figures[key] is not None, key
    assert figures["api_calls_by_entity"]["Invoice"] == figures["ideal_api_calls_by_entity"]["Invoice"] == 1
    assert figures["incremental_api_calls"] <= 2
    assert lines, "the bench prints its figures as it goes"
