"""The connections store on real SQLite and real PostgreSQL: tenants, connect / reconnect /
switch / disconnect, states, settings, mappings, single-flight token refresh, encryption at rest
and API usage metering.

Every test runs against both dialects (a SQLite file and a throwaway PostgreSQL database per
module). The token refresh tests use a stand-in for ``IntuitOAuth.refresh`` that counts calls
and refuses superseded refresh tokens: the store's locking is what is under test, and only a
stand-in can hold a refresh open long enough for eight threads or four processes to collide.
One test refreshes through the real OAuth client against the emulator.
"""

from __future__ import annotations

import multiprocessing
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from qb_pipelines.qbo.emulator_control import EmulatorControl
from qb_pipelines.qbo.errors import InvalidGrantError, OAuthError, TransientServerError
from qb_pipelines.qbo.oauth import TokenSet
from qb_pipelines.store import crypto
from qb_pipelines.store.connections import ConnectionState, ConnectionUnavailableError, ConnectKind
from qb_pipelines.store.crypto import DecryptionError, MissingKeyError, SecretBox, generate_key, load_key
from qb_pipelines.store.db import VERSION_TABLE, make_engine
from qb_pipelines.store.models import Base, Connection
from qb_pipelines.store.settings import InvalidSettingError, validate_settings
from qb_pipelines.store.tokens import MAX_TRANSIENT_REFRESH_FAILURES
from qb_pipelines.sync.runtime import Runtime
from qb_pipelines.sync.settings import AppSettings
from qb_pipelines_tests.databases import migrated_engine
from qb_pipelines_tests.emulator_client import issue_tokens
from qb_pipelines_tests.harness import new_company

KEY = generate_key()
INCOME = {"default_income_account_id": "79", "default_income_account_name": "Sales of Product Income"}


# ---------------------------------------------------------------------------------------- databases


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """A migrated store database of each dialect, shared by the module's tests (keys are unique)."""
    with migrated_engine(request.param, tmp_path_factory.mktemp("store")) as eng:
        yield eng


def _runtime(engine: Engine, key: str = KEY, **kwargs: object) -> Runtime:
    """The store's repositories over ``engine`` (migrated already), as every process builds them."""
    settings = AppSettings(database_url=None, fernet_key=key, client_id="test-client", client_secret="test-secret")
    return Runtime(settings, engine=engine, migrate_schema=False, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def store(engine: Engine) -> Runtime:
    return _runtime(engine)


def _key() -> str:
    return f"tenant-{uuid.uuid4().hex[:10]}"


def _realm() -> str:
    return str(9_130_000_000_000_000 + secrets.randbelow(10**15))


# ---------------------------------------------------------------------------------------- a fake Intuit


def _tokens(n: int, *, lifetime_s: int = 3600, tag: str = "", now: datetime | None = None) -> TokenSet:
    now = now or datetime.now(UTC)
    return TokenSet(
        access_token=f"AT{tag}-{n}-{secrets.token_hex(24)}",
        refresh_token=f"RT{tag}-{n}-{secrets.token_hex(24)}",
        access_expires_at=now + timedelta(seconds=lifetime_s),
        refresh_expires_at=now + timedelta(days=100),
        refresh_hard_expires_at=now + timedelta(days=5 * 365),
    )


class FakeIntuit:
    """Stands in for ``IntuitOAuth.refresh``: rotates on every refresh and, like Intuit past its
    grace period, refuses any refresh token but the newest with ``invalid_grant``."""

    def __init__(self, delay_s: float = 0.0, lifetime_s: int = 3600, clock: Callable[[], datetime] | None = None) -> None:
        self.delay_s = delay_s
        self.clock = clock or (lambda: datetime.now(UTC))
        self.lifetime_s = lifetime_s
        self.lock = threading.Lock()
        self.calls = 0
        self.active = 0
        self.max_active = 0
        self.fail_with: Exception | None = None
        self.issued: list[TokenSet] = []
        self.current = self._issue()

    def _issue(self) -> TokenSet:
        tokens = _tokens(len(self.issued), lifetime_s=self.lifetime_s, now=self.clock())
        self.issued.append(tokens)
        return tokens

    def refresh(self, refresh_token: str) -> TokenSet:
        with self.lock:
            self.calls += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            time.sleep(self.delay_s)
            if self.fail_with is not None:
                raise self.fail_with
            with self.lock:
                if refresh_token != self.current.refresh_token:
                    raise InvalidGrantError("invalid_grant: Incorrect Token type or clientID", code="invalid_grant")
                self.current = self._issue()
                return self.current
        finally:
            with self.lock:
                self.active -= 1

    def secrets(self) -> list[str]:
        return [t.access_token for t in self.issued] + [t.refresh_token for t in self.issued]


def _connect(store: Runtime, intuit: FakeIntuit, realm: str | None = None, key: str | None = None) -> tuple[str, str]:
    key = key or _key()
    realm = realm or _realm()
    store.tenants.ensure_tenant(key, f"Tenant {key}")
    store.connections.save_tokens_on_connect(key, "emulator", realm, "Sandbox Co", "ada@example.com", "Ada", "Lovelace", intuit.current)
    return key, realm


def _stored_tokens(store: Runtime, key: str) -> tuple[str | None, str | None, int]:
    box = SecretBox(KEY)
    with store.engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT c.access_token_enc, c.refresh_token_enc, c.token_version FROM qb_connections c "
                "JOIN qb_tenants t ON t.id = c.tenant_id WHERE t.key = :k"
            ),
            {"k": key},
        ).one()
    return (
        box.decrypt(row[0]) if row[0] else None,
        box.decrypt(row[1]) if row[1] else None,
        row[2],
    )


# ---------------------------------------------------------------------------------------- crypto


def test_fernet_key_from_environment_with_clear_errors() -> None:
    with pytest.raises(MissingKeyError) as missing:
        load_key({})
    assert "QB_FERNET_KEY" in str(missing.value) and "qb-pipelines keys generate" in str(missing.value)
    with pytest.raises(crypto.KeyConfigError, match="QB_FERNET_KEY is not a valid Fernet key"):
        load_key({"QB_FERNET_KEY": "not-a-key"})
    key = generate_key()
    box = SecretBox(load_key({"QB_FERNET_KEY": key}))
    sealed = box.encrypt("refresh-token-value")
    assert "refresh-token-value" not in sealed and box.decrypt(sealed) == "refresh-token-value"
    assert key not in repr(box)
    with pytest.raises(DecryptionError, match="QB_FERNET_KEY"):
        SecretBox(generate_key()).decrypt(sealed)


# ---------------------------------------------------------------------------------------- tenants and connect


def test_tenants_start_not_connected(store: Runtime) -> None:
    key = _key()
    assert store.connections.get(key) is None
    store.tenants.ensure_tenant(key, "Acme Landscaping")
    store.tenants.ensure_tenant(key, "Acme Landscaping LLC")  # idempotent, renames
    view = store.connections.get(key)
    assert view is not None
    assert (view.tenant_name, view.state, view.realm_id, view.configured) == (
        "Acme Landscaping LLC", ConnectionState.NOT_CONNECTED, None, False,
    )
    assert key in [v.tenant_key for v in store.connections.list_views()]
    with pytest.raises(LookupError, match="tenants create"):
        store.connections.save_tokens_on_connect("nobody", "emulator", "1", None, None, None, None, _tokens(0))


def test_first_connect_then_reconnect_same_company_keeps_settings_and_mappings(store: Runtime) -> None:
    intuit = FakeIntuit()
    key, realm = _key(), _realm()
    store.tenants.ensure_tenant(key, "Acme")
    kind = store.connections.save_tokens_on_connect(key, "emulator", realm, "Acme Books", "ada@example.com", "Ada", "Lovelace", intuit.current)
    assert kind is ConnectKind.FIRST
    view = store.connections.get(key)
    assert view is not None
    assert view.state is ConnectionState.CONNECTED
    assert (view.realm_id, view.company_name, view.user_email, view.user_name) == (realm, "Acme Books", "ada@example.com", "Ada Lovelace")
    assert view.access_expires_at == intuit.current.access_expires_at.replace(microsecond=view.access_expires_at.microsecond)
    assert view.refresh_hard_expires_at is not None and not view.configured

    store.tenant_settings.save(key, {**INCOME, "conflict_policy": "qbo_wins"})
    store.mappings.add(key, "Customer", "app-cust-1", "58")
    store.connections.mark_state(key, ConnectionState.SESSION_EXPIRED, "invalid_grant")

    kind = store.connections.save_tokens_on_connect(key, "emulator", realm, "Acme Books", "bob@example.com", "Bob", "Builder", intuit._issue())
    assert kind is ConnectKind.RECONNECT
    view = store.connections.get(key)
    assert view is not None
    assert view.state is ConnectionState.CONNECTED and view.last_error is None
    assert view.user_email == "bob@example.com" and view.configured and not view.mappings_need_review
    assert store.tenant_settings.get(key).values.conflict_policy == "qbo_wins"
    assert [(m.entity, m.app_id, m.qbo_id, m.realm_id) for m in store.mappings.list_for(key)] == [("Customer", "app-cust-1", "58", realm)]
    assert [e.kind for e in store.connections.events(key)][:2] == ["connect_reconnect", "state_session_expired"]


def test_switch_to_another_company_keeps_settings_and_flags_mappings(store: Runtime) -> None:
    intuit = FakeIntuit()
    key, realm_a = _connect(store, intuit)
    store.tenant_settings.save(key, {**INCOME, "directions": {"Customer": "app_to_qbo"}})
    store.mappings.add(key, "Item", "sku-1", "7")
    realm_b = _realm()
    kind = store.connections.save_tokens_on_connect(key, "emulator", realm_b, "Other Books", "ada@example.com", "Ada", "Lovelace", intuit._issue())
    assert kind is ConnectKind.SWITCH
    view = store.connections.get(key)
    assert view is not None
    assert (view.realm_id, view.previous_realm_id, view.mappings_need_review, view.configured) == (realm_b, realm_a, True, True)
    settings = store.tenant_settings.get(key)
    assert settings.values.directions["Customer"] == "app_to_qbo" and settings.mappings_need_review
    assert [m.realm_id for m in store.mappings.list_for(key)] == [realm_a]  # kept, marked by their realm
    store.tenant_settings.acknowledge_mappings_review(key)
    view = store.connections.get(key)
    assert view is not None and not view.mappings_need_review and view.previous_realm_id == realm_a


def test_one_connection_per_tenant(store: Runtime) -> None:
    key, _realm_id = _connect(store, FakeIntuit())
    with store.engine.connect() as conn:
        tenant_id = conn.execute(sa.text("SELECT id FROM qb_tenants WHERE key = :k"), {"k": key}).scalar_one()
    with pytest.raises(sa.exc.IntegrityError), store.connections._write() as session:
        session.add(Connection(tenant_id=tenant_id, environment="emulator", realm_id="2", state="connected"))
        session.flush()


def test_disconnect_erases_tokens_and_keeps_configuration_and_mappings(store: Runtime) -> None:
    intuit = FakeIntuit()
    key, realm = _connect(store, intuit)
    store.tenant_settings.save(key, INCOME)
    store.mappings.add(key, "Customer", "c-1", "1")
    assert store.connections.disconnect(key) == intuit.current.refresh_token  # for revocation at Intuit
    view = store.connections.get(key)
    assert view is not None
    assert view.state is ConnectionState.DISCONNECTED and view.disconnected_at is not None
    assert view.realm_id == realm and view.configured
    assert _stored_tokens(store, key)[:2] == (None, None)
    assert store.connections.disconnect(key) is None  # nothing left to revoke
    assert store.tenant_settings.get(key).values.default_income_account_id == "79"
    assert len(store.mappings.list_for(key, entity="Customer")) == 1
    with pytest.raises(ConnectionUnavailableError, match="disconnected") as exc:
        store.connections.token_source(key, intuit).access_token()
    assert exc.value.state is ConnectionState.DISCONNECTED
    # Reconnecting the same company: no wizard again.
    assert store.connections.save_tokens_on_connect(key, "emulator", realm, "Sandbox Co", "ada@example.com", "Ada", "L", intuit._issue()) is ConnectKind.RECONNECT
    assert store.tenant_settings.get(key).configured


def test_mark_state_records_error_and_time(store: Runtime) -> None:
    intuit = FakeIntuit()
    key, _ = _connect(store, intuit)
    before = datetime.now(UTC) - timedelta(seconds=1)
    store.connections.mark_state(key, ConnectionState.CONNECTION_ERROR, f"HTTP 503 calling with Bearer {intuit.current.access_token}")
    view = store.connections.get(key)
    assert view is not None
    assert view.state is ConnectionState.CONNECTION_ERROR and view.needs_reconnect
    assert view.last_error is not None and "HTTP 503" in view.last_error
    assert intuit.current.access_token not in view.last_error  # redacted
    assert view.last_error_at is not None and view.last_error_at >= before
    store.connections.mark_state(key, "session_expired")
    view = store.connections.get(key)
    assert view is not None and view.state is ConnectionState.SESSION_EXPIRED and "HTTP 503" in (view.last_error or "")
    store.connections.mark_state(key, ConnectionState.CONNECTED)
    view = store.connections.get(key)
    assert view is not None and view.state is ConnectionState.CONNECTED and view.last_error is None
    with pytest.raises(ValueError, match="no connection was ever made"):
        store.connections.mark_state(key, ConnectionState.NOT_CONNECTED)
    other = _key()
    store.tenants.ensure_tenant(other, "Never connected")
    with pytest.raises(ValueError, match="never connected"):
        store.connections.mark_state(other, ConnectionState.CONNECTION_ERROR, "x")


# ---------------------------------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("submission", "field"),
    [
        ({**INCOME, "conflict_policy": "whoever_is_faster"}, "conflict_policy"),
        ({**INCOME, "entities": {"Spaceship": True}}, "entities.Spaceship"),
        ({**INCOME, "entities": {"Customer": "maybe"}}, "entities.Customer"),
        ({**INCOME, "directions": {"Payment": "app_to_qbo"}}, "directions.Payment"),
        ({**INCOME, "directions": {"Invoice": "qbo_to_app"}}, "directions.Invoice"),
        ({**INCOME, "directions": {"Account": "both"}}, "directions.Account"),
        ({**INCOME, "mode": "staging"}, "mode"),
        ({"default_income_account_name": "Sales"}, "default_income_account_id"),
        ({"default_income_account_id": "79"}, "default_income_account_name"),
        ({**INCOME, "default_tax_code_id": "TAX"}, "default_tax_code_name"),
        ({**INCOME, "colour": "blue"}, "colour"),
    ],
)
def test_invalid_settings_name_the_field(submission: dict, field: str) -> None:
    with pytest.raises(InvalidSettingError) as exc:
        validate_settings(submission)
    assert exc.value.field == field
    assert exc.value.message


def test_valid_settings_fill_defaults() -> None:
    values = validate_settings(
        {**INCOME, "entities": {"customer": "off", "TimeActivity": False}, "directions": {"Customer": "qbo_to_app"},
         "conflict_policy": "app_wins", "mode": "production", "default_tax_code_id": "3", "default_tax_code_name": "TAX"}
    )
    assert values.entities["Customer"] is False and values.entities["Invoice"] is True and not values.enabled("TimeActivity")
    assert values.directions == {**values.directions, "Customer": "qbo_to_app", "Payment": "qbo_to_app", "Invoice": "app_to_qbo"}
    assert (values.conflict_policy, values.mode, values.default_tax_code_name) == ("app_wins", "production", "TAX")


def test_invalid_settings_save_nothing(store: Runtime) -> None:
    key, _ = _connect(store, FakeIntuit())
    assert not store.tenant_settings.get(key).configured
    saved = store.tenant_settings.save(key, {**INCOME, "entities": {"Bill": False}, "conflict_policy": "app_wins"})
    assert saved.configured and saved.values.conflict_policy == "app_wins"
    with pytest.raises(InvalidSettingError) as exc:
        store.tenant_settings.save(key, {"entities": {"Bill": True}, "conflict_policy": "qbo_wins", "default_income_account_name": "X"})
    assert exc.value.field == "default_income_account_id"
    kept = store.tenant_settings.get(key)
    assert kept.values == saved.values
    assert kept.values.entities["Bill"] is False and kept.values.conflict_policy == "app_wins"
    view = store.connections.get(key)
    assert view is not None and view.configured


# ---------------------------------------------------------------------------------------- token refresh


def test_access_token_is_reused_while_fresh_and_refreshed_when_expiring(store: Runtime) -> None:
    intuit = FakeIntuit(lifetime_s=30)  # expires within the 60 s margin
    key, _ = _connect(store, intuit)
    first = intuit.current.access_token
    tokens = store.connections.token_source(key, intuit)
    fresh = tokens.access_token()
    assert fresh != first and intuit.calls == 1
    intuit.lifetime_s = 3600
    # The refreshed token (30 s) is still inside the margin: refreshed once more, then reused.
    again = tokens.access_token()
    assert again != fresh and intuit.calls == 2
    assert tokens.access_token() == again and tokens.access_token() == again and intuit.calls == 2
    # A caller holding an outdated token gets the current one without a refresh.
    assert tokens.refresh(first) == again and intuit.calls == 2
    # A 401 on the current token forces a refresh.
    forced = tokens.refresh(again)
    assert forced != again and intuit.calls == 3
    assert _stored_tokens(store, key)[2] == 4  # connect + three refreshes


def test_single_refresh_under_eight_threads(store: Runtime) -> None:
    intuit = FakeIntuit(delay_s=0.3)
    key, _ = _connect(store, intuit)
    stale = intuit.current.access_token
    version_before = _stored_tokens(store, key)[2]
    barrier = threading.Barrier(8)
    results: list[str] = []
    errors: list[BaseException] = []

    def worker() -> None:
        tokens = store.connections.token_source(key, intuit)  # one source per worker, as separate callers would
        barrier.wait()
        try:
            results.append(tokens.refresh(stale))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert intuit.calls == 1 and intuit.max_active == 1
    assert len(results) == 8 and set(results) == {intuit.current.access_token}
    access, refresh, version = _stored_tokens(store, key)
    assert (access, refresh, version) == (intuit.current.access_token, intuit.current.refresh_token, version_before + 1)


def _refresh_in_child(url: str, key: str, tenant_key: str, refresh_token: str, stale: str, go: object, out: object) -> None:
    """Runs in a separate process: refresh through the store with an Intuit stand-in that accepts
    only the original refresh token (a second refresh would fail with invalid_grant)."""

    class OneShotIntuit:
        def refresh(self, token: str) -> TokenSet:
            time.sleep(0.3)
            if token != refresh_token:
                raise InvalidGrantError("invalid_grant: superseded", code="invalid_grant")
            return _tokens(os.getpid(), tag="P")

    eng = make_engine(url)
    store = _runtime(eng, key)
    go.wait(30)  # type: ignore[attr-defined]
    try:
        out.put(("ok", store.connections.token_source(tenant_key, OneShotIntuit()).refresh(stale)))  # type: ignore[arg-type, attr-defined]
    except Exception as exc:
        out.put(("error", repr(exc)))  # type: ignore[attr-defined]
    finally:
        eng.dispose()


def test_single_refresh_across_processes(store: Runtime) -> None:
    intuit = FakeIntuit()
    key, _ = _connect(store, intuit)
    version_before = _stored_tokens(store, key)[2]
    ctx = multiprocessing.get_context("spawn")
    go, out = ctx.Event(), ctx.Queue()
    url = store.engine.url.render_as_string(hide_password=False)
    procs = [
        ctx.Process(
            target=_refresh_in_child,
            args=(url, KEY, key, intuit.current.refresh_token, intuit.current.access_token, go, out),
        )
        for _ in range(4)
    ]
    for p in procs:
        p.start()
    go.set()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert all(status == "ok" for status, _ in results), results
    tokens = {token for _, token in results}
    assert len(tokens) == 1, "every process must end with the one token a single refresh produced"
    access, _refresh, version = _stored_tokens(store, key)
    assert access == tokens.pop() and version == version_before + 1


def test_rotated_refresh_token_is_stored_before_the_new_access_token_is_returned(store: Runtime) -> None:
    intuit = FakeIntuit()
    key, _ = _connect(store, intuit)
    returned = store.connections.token_source(key, intuit).refresh(intuit.current.access_token)
    access, refresh, _ = _stored_tokens(store, key)
    assert (access, refresh) == (returned, intuit.current.refresh_token)
    # A new process (a fresh store over the same database) refreshes with the rotated token:
    # the stand-in refuses superseded refresh tokens, so this proves the rotated one was kept.
    restarted = _runtime(store.engine).connections
    assert restarted.token_source(key, intuit).refresh(returned) == intuit.current.access_token
    view = store.connections.get(key)
    assert view is not None and view.state is ConnectionState.CONNECTED


def test_invalid_grant_moves_to_session_expired(store: Runtime) -> None:
    intuit = FakeIntuit()
    key, _ = _connect(store, intuit)
    intuit.fail_with = InvalidGrantError("invalid_grant: Token revoked", code="invalid_grant")
    tokens = store.connections.token_source(key, intuit)
    before = datetime.now(UTC) - timedelta(seconds=1)
    with pytest.raises(InvalidGrantError):
        tokens.refresh(intuit.current.access_token)
    view = store.connections.get(key)
    assert view is not None
    assert view.state is ConnectionState.SESSION_EXPIRED and view.needs_reconnect
    assert "invalid_grant" in (view.last_error or "") and view.last_error_at is not None and view.last_error_at >= before
    # Nobody calls Intuit again with a dead grant: the expired state answers at once.
    with pytest.raises(ConnectionUnavailableError, match="reconnect"):
        tokens.access_token()
    assert intuit.calls == 1
    assert store.connections.events(key)[0].kind == "session_expired"


def test_transient_refresh_failures_flip_the_state_only_when_they_persist(store: Runtime) -> None:
    intuit = FakeIntuit()
    key, _ = _connect(store, intuit)
    tokens = store.connections.token_source(key, intuit)
    intuit.fail_with = TransientServerError("could not reach Intuit's token endpoint: ConnectTimeout")
    for attempt in range(1, MAX_TRANSIENT_REFRESH_FAILURES + 1):
        with pytest.raises(TransientServerError):
            tokens.refresh(intuit.current.access_token)
        view = store.connections.get(key)
        assert view is not None and "ConnectTimeout" in (view.last_error or "")
        expected = ConnectionState.CONNECTION_ERROR if attempt == MAX_TRANSIENT_REFRESH_FAILURES else ConnectionState.CONNECTED
        assert view.state is expected
    intuit.fail_with = None
    tokens.refresh(intuit.current.access_token)  # a connection error is retried, and recovers
    view = store.connections.get(key)
    assert view is not None and view.state is ConnectionState.CONNECTED and view.last_error is None
    intuit.fail_with = OAuthError("invalid_client: bad client secret", code="invalid_client")
    with pytest.raises(OAuthError):
        tokens.refresh(intuit.current.access_token)
    view = store.connections.get(key)
    assert view is not None and view.state is ConnectionState.CONNECTION_ERROR  # a refusal: at once


def test_connections_due_for_refresh(engine: Engine) -> None:
    now = [datetime.now(UTC)]
    store = _runtime(engine, clock=lambda: now[0])
    intuit = FakeIntuit(lifetime_s=3600, clock=lambda: now[0])
    key, _ = _connect(store, intuit)
    expired_key, _ = _connect(store, intuit)
    store.connections.mark_state(expired_key, ConnectionState.SESSION_EXPIRED, "invalid_grant")

    def due(within: timedelta) -> set[str]:
        return {v.tenant_key for v in store.connections.connections_due_for_refresh(within)} & {key, expired_key}

    assert due(timedelta(minutes=10)) == set()
    assert due(timedelta(hours=2)) == {key}  # access token expires within the window
    tokens = store.connections.token_source(key, intuit)
    assert tokens.refresh_if_due(timedelta(minutes=10)) is False
    now[0] += timedelta(days=1, minutes=1)  # refresh token a day old (access also expired)
    assert due(timedelta(minutes=10)) == {key}
    assert tokens.refresh_if_due(timedelta(minutes=10)) is True
    assert tokens.refresh_if_due(timedelta(minutes=10)) is False  # done once, not twice
    assert due(timedelta(minutes=10)) == set()
    assert intuit.calls == 1


def test_refresh_against_the_emulator(store: Runtime, emulator) -> None:
    """The real OAuth client, the real token endpoint: rotation stored, then revocation seen."""
    from qb_pipelines.qbo.environments import environment
    from qb_pipelines.qbo.oauth import IntuitOAuth

    realm = new_company(emulator, "Store Co")
    issued = issue_tokens(emulator, realm)
    now = datetime.now(UTC)
    initial = TokenSet(issued["access_token"], issued["refresh_token"], now + timedelta(hours=1), now + timedelta(days=100))
    key = _key()
    store.tenants.ensure_tenant(key, "Emulated")
    store.connections.save_tokens_on_connect(key, "emulator", realm, "Store Co", "demo@example.com", "Demo", "User", initial)
    oauth = IntuitOAuth(issued["client_id"], issued["client_secret"], "http://localhost:3000/callback",
                        environment("emulator", emulator.url))
    tokens = store.connections.token_source(key, oauth)
    fresh = tokens.refresh(initial.access_token)
    assert fresh != initial.access_token
    _, stored_refresh, _ = _stored_tokens(store, key)
    assert stored_refresh != initial.refresh_token  # the emulator rotates on every refresh
    resp = requests.get(f"{emulator.url}/v3/company/{realm}/companyinfo/{realm}",
                        headers={"Authorization": f"Bearer {fresh}", "Accept": "application/json"}, timeout=10)
    assert resp.status_code == 200
    with EmulatorControl(emulator.url) as control:
        control.revoke_all(realm)
    with pytest.raises(InvalidGrantError):
        tokens.refresh(fresh)
    view = store.connections.get(key)
    assert view is not None and view.state is ConnectionState.SESSION_EXPIRED


# ---------------------------------------------------------------------------------------- secrets


def test_no_plaintext_token_anywhere_after_a_full_flow(store: Runtime) -> None:
    intuit = FakeIntuit()
    key, _realm_id = _connect(store, intuit)
    store.tenant_settings.save(key, INCOME)
    tokens = store.connections.token_source(key, intuit)
    tokens.refresh(intuit.current.access_token)
    tokens.refresh(intuit.current.access_token)
    store.connections.mark_state(key, ConnectionState.CONNECTION_ERROR, f"401 for Bearer {intuit.current.access_token}")
    intuit.fail_with = TransientServerError(f"upstream said {intuit.current.refresh_token} is odd")
    with pytest.raises(TransientServerError):
        tokens.refresh(intuit.current.access_token)
    intuit.fail_with = None
    view_connected = store.connections.get(key)
    revocable = store.connections.disconnect(key)
    assert revocable == intuit.current.refresh_token
    plaintexts = intuit.secrets()

    # Every column of every row of every table in the database, Alembic's included.
    seen = 0
    table_names = sa.inspect(store.engine).get_table_names()
    assert {*Base.metadata.tables, VERSION_TABLE} <= set(table_names)
    with store.engine.connect() as conn:
        for name in table_names:
            for row in conn.execute(sa.text(f'SELECT * FROM "{name}"')).all():
                for value in row:
                    text = str(value)
                    seen += 1
                    for secret in plaintexts:
                        assert secret not in text, f"plaintext token in {name}"
    assert seen > 0
    # Nor in what the store hands out or prints.
    views = [view_connected, store.connections.get(key), *store.connections.list_views(), store.tenant_settings.get(key), *store.connections.events(key, limit=100)]
    for obj in [*views, store, tokens, intuit.current, SecretBox(KEY)]:
        for text in (repr(obj), str(obj)):
            for secret in [*plaintexts, KEY]:
                assert secret not in text
    with store.connections._read() as session:
        for row in session.scalars(sa.select(Connection)).all():
            assert "enc" not in repr(row) and all(s not in repr(row) for s in plaintexts)


# ---------------------------------------------------------------------------------------- API usage


def test_read_usage_is_counted_per_company_and_month_atomically(store: Runtime) -> None:
    realm, other = _realm(), _realm()

    def reads() -> None:
        for _ in range(25):
            store.usage.record_read(realm)

    threads = [threading.Thread(target=reads) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    month = datetime.now(UTC).strftime("%Y-%m")
    assert store.usage.reads(realm) == 200 == store.usage.reads(realm, month)
    store.usage.record_read(realm, datetime(2024, 2, 29, 23, 59, tzinfo=UTC))
    store.usage.record_read(realm, datetime(2024, 3, 1, 0, 0, tzinfo=UTC))
    store.usage.record_write(realm, datetime(2024, 3, 1, 0, 1, tzinfo=UTC))
    assert store.usage.reads(realm, "2024-02") == 1
    counts = store.usage.counts(realm, "2024-03")
    assert (counts.reads, counts.writes) == (1, 1)
    assert store.usage.reads(other, month) == 0
