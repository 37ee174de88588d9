"""No token in any error, log line or page: real tokens from the emulator, redacted wherever they travel."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import dagster as dg
from click.testing import CliRunner

from qb_pipelines.cli import cli
from qb_pipelines.emulator.server import RunningEmulator
from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.qbo.errors import AuthenticationError
from qb_pipelines.qbo.redact import REDACTED, RedactingFilter, install_redaction, redact
from qb_pipelines.sync.runs import describe_failure
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines_tests.harness import emulator_settings, new_company


def _real_tokens(emulator: RunningEmulator) -> tuple[str, str]:
    realm = new_company(emulator, "Secret Co")
    with EmulatorControl(emulator.url) as control:
        issued = control.tokens(realm)
    return str(issued["access_token"]), str(issued["refresh_token"])


def test_real_tokens_are_cut_from_text_in_every_shape(emulator: RunningEmulator) -> None:
    access, refresh = _real_tokens(emulator)
    shapes = [
        f"Token expired: {access}",
        f"Authorization: Bearer {access}",
        f"{{'Authorization': 'Bearer {access}'}}",
        f"POST /oauth2/v1/tokens/bearer grant_type=refresh_token&refresh_token={refresh}",
        f"https://example.com/cb?code=AB11{'x' * 30}&access_token={access}",
        f'{{"refresh_token": "{refresh}", "access_token": "{access}"}}',
        f"refresh failed for {refresh}",
    ]
    for text in shapes:
        cleaned = redact(text)
        assert access not in cleaned and refresh not in cleaned and REDACTED in cleaned, cleaned
    assert redact("Customer 42: Balance 10.00 updated") == "Customer 42: Balance 10.00 updated"


def test_log_records_and_exception_messages_come_out_redacted(emulator: RunningEmulator) -> None:
    access, refresh = _real_tokens(emulator)
    install_redaction()
    logger = logging.getLogger("qb_pipelines.tests.redaction")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        logger.info("calling QuickBooks with %s and %s", f"Bearer {access}", refresh)
        try:
            raise AuthenticationError(f"Token expired: {access}", status=401)
        except AuthenticationError as exc:
            logger.exception("sync failed: %s", exc)
            line = describe_failure(exc)
        # a record made elsewhere (another library's logger, a handler added later) goes through the filter too
        record = logging.LogRecord("other", logging.ERROR, __file__, 1, "refresh %s refused", (refresh,), None)
        assert RedactingFilter().filter(record) and refresh not in record.getMessage()
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "calling QuickBooks" in text and "Traceback" in text and REDACTED in text
    assert access not in text and refresh not in text
    assert access not in line and line.startswith("AuthenticationError: Token expired:")


def test_a_cli_error_quoting_a_token_prints_no_token(emulator: RunningEmulator) -> None:
    """The emulator's control API quotes what it was sent in its error; the CLI shows the error, not the token."""
    access, _ = _real_tokens(emulator)
    realm = new_company(emulator, "Quoted Co")
    result = CliRunner().invoke(cli, ["emulator", "act", realm, access, "create", "--url", emulator.url])
    assert result.exit_code == 1, result.output
    assert "unknown entity" in result.output and REDACTED in result.output
    assert access not in result.output and access[:40] not in result.output


def test_dagster_log_messages_are_redacted(emulator: RunningEmulator) -> None:
    """Loading the code location installs the redaction: ``context.log`` lines keep no token."""
    from qb_pipelines.definitions import build_defs

    access, refresh = _real_tokens(emulator)
    build_defs()

    @dg.op
    def leaky(context) -> None:  # unannotated: Dagster refuses a string annotation (future import)
        context.log.warning(f"refresh failed with {refresh}; header was Bearer {access}")

    @dg.job
    def leaky_job() -> None:
        leaky()

    with dg.DagsterInstance.ephemeral() as instance:
        result = leaky_job.execute_in_process(instance=instance)
        assert result.success
        messages = [e.message for e in instance.all_logs(result.run_id) if e.message]
    warned = [m for m in messages if "refresh failed with" in m]
    assert warned and all(access not in m and refresh not in m for m in messages)
    assert REDACTED in warned[0]


def test_error_records_shown_to_users_keep_no_token(emulator: RunningEmulator, tmp_path: Path) -> None:
    """Push errors (sync-errors dashboard, records API), feed delivery errors and sync runs (the card)."""
    from datetime import timedelta

    from qb_pipelines.sync.push import enqueue
    from qb_pipelines.sync.runs import recorded_landing

    access, refresh = _real_tokens(emulator)
    with Runtime(emulator_settings(f"sqlite:///{tmp_path / 'store.sqlite'}", emulator)) as runtime:
        runtime.tenants.ensure_tenant("acme", "Acme")
        with runtime.engine.begin() as conn:
            row = enqueue(conn, "acme", entity="Customer", app_id="c-1", version=1, data={"display_name": "Ann"}).row
        runtime.outbox.update([row.id], status="failed", error_message=f"401 Token expired: {access}",
                              next_step=f"retry with refresh_token={refresh}")
        stored = runtime.outbox.get(row.id)
        assert access not in (stored.error_message or "") and refresh not in (stored.next_step or "")
        assert REDACTED in (stored.error_message or "")

        runtime.feed.set_callback("acme", "https://app.example.com/hook", "s" * 32)
        runtime.feed.delivery_failed("acme", f"POST failed: Authorization: Bearer {access}",
                                     runtime.sync_runs.now() + timedelta(minutes=1))
        assert access not in (runtime.feed.callback("acme").last_error or "")

        try:
            with recorded_landing(runtime.sync_runs, "acme-1", source="cli", mode="incremental"):
                raise AuthenticationError(f"Token expired: {access}", status=401)
        except AuthenticationError:
            pass
        with runtime.engine.connect() as db:
            errors = [r[0] for r in db.exec_driver_sql("SELECT error FROM qb_sync_runs")]
        assert errors and all(access not in (e or "") for e in errors)


def test_web_banners_and_toasts_keep_no_token(emulator: RunningEmulator) -> None:
    """A banner quoting QuickBooks' answer (Connection Failed, sync errors) is queued without the token."""
    from starlette.requests import Request

    from qb_pipelines.web.pages import failed, flash

    access, refresh = _real_tokens(emulator)
    request = Request({"type": "http", "session": {}})
    failed(request, f"QuickBooks answered 401 for Bearer {access}")
    flash(request, toast=f"refresh_token={refresh} rotated")
    queued = str(request.session)
    assert access not in queued and refresh not in queued and REDACTED in queued
