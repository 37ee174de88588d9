"""The benchmark commands keep their contract: they run end to end and end with the JSON keys the
issues promise. Figures are printed, never asserted; counts (rows served, API calls) are."""

from __future__ import annotations

import json

import pytest
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


PUSH_KEYS = ("objects", "objects_per_min", "throttled", "duplicates", "unthrottled_objects_per_s", "latency_p50_s",
             "latency_p95_s", "feed_latency_p50_s", "feed_latency_p95_s", "echoes", "peak_rss_mb")


@pytest.mark.slow
@pytest.mark.timeout(1200)  # a dozen processes (webserver, daemon, runs) on a shared 2-core machine
def test_push_bench_pushes_every_record_once_without_echoes_and_prints_the_issue_keys() -> None:
    result = CliRunner().invoke(cli, ["bench", "push", "--invoices", "6", "--latency-samples", "2",
                                      "--feed-samples", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output.strip().splitlines()[-1])
    for key in PUSH_KEYS:
        assert key in figures, key
    # 6 invoices, 1 customer, 1 item under QBO's limits; as many again unthrottled
    assert figures["objects"] == figures["unthrottled_objects"] == 8
    assert figures["duplicates"] == 0 and figures["echoes"] == 0 and figures["failed"] == 0
    assert figures["latency_lost"] == 0 and figures["feed_lost"] == 0
