"""The ``Emulator``: one object that owns the database, the clock and the emulator's services.

The HTTP app (``app.py``), the CLI and tests all work through it. Services:

* ``engine``   - entity semantics (create/read/update/delete/void, computed fields, ledger);
* ``oauth``    - Intuit OAuth 2.0 / OpenID Connect (authorize, tokens, revoke, userinfo);
* ``traffic``  - throttling, fault injection, request and metering counters;
* ``webhooks`` - subscription, grouping, signing and delivery with retries.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from qb_pipelines.emulator.clock import PACIFIC, Clock
from qb_pipelines.emulator.db import EmulatorDB


@dataclass
class EmulatorSettings:
    """Knobs of one emulator instance (all have production-faithful defaults).

    Attributes:
        data_file: SQLite file the emulator keeps its companies in (in memory when ``None``).
        seed: random seed of generated data.
        clock_scale: multiplier of the durations the emulator enforces (see ``clock.Clock``).
        base_url: the URL the emulator is served at (links, webhooks).
        now: pin the emulator's clock: its "now" at start (aware; naive is UTC). Time runs on
            from there at real speed. ``None`` is the machine's clock (plus an offset stored in
            ``data_file`` by earlier ``advance`` calls).
        frozen_clock: emulator time stands still (only ``advance`` moves it). Tokens then never
            expire on their own; ask for it only when a test needs exact timestamps.
    """

    data_file: str | None = None
    seed: int = 0
    clock_scale: float = 1.0
    base_url: str = "http://127.0.0.1:0"
    now: datetime | None = None
    frozen_clock: bool = False


class Emulator:
    """QuickBooks Online, locally. Thread-safe."""

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        from qb_pipelines.emulator.engine import Engine
        from qb_pipelines.emulator.oauth import OAuthServer
        from qb_pipelines.emulator.traffic import Traffic
        from qb_pipelines.emulator.webhooks import WebhookDispatcher

        self.settings = settings or EmulatorSettings()
        self.db = EmulatorDB(self.settings.data_file)
        self.clock = self._make_clock()
        self.engine = Engine(self)
        self.oauth = OAuthServer(self)
        self.traffic = Traffic(self)
        self.webhooks = WebhookDispatcher(self)

    @property
    def base_url(self) -> str:
        return self.settings.base_url

    def set_base_url(self, url: str) -> None:
        self.settings.base_url = url.rstrip("/")

    def company_tz(self, realm: str) -> ZoneInfo:
        return PACIFIC

    def _make_clock(self) -> Clock:
        """The clock: pinned by ``settings.now``, else real time plus the stored offset.

        A pinned clock's offset is stored with the data file, so a restart without ``now`` carries
        on from the pinned timeline instead of jumping back to the machine's date.

        Raises:
            ValueError: ``settings.now`` is before the time a data file holding companies has
                already reached (its objects would be dated in the future).
        """
        settings = self.settings
        offset = float(self.db.kv_get("clock_offset", 0.0) or 0.0)
        stored = Clock(scale=settings.clock_scale, offset_s=offset, frozen=settings.frozen_clock)
        if settings.now is None:
            return stored
        pinned = Clock(scale=settings.clock_scale, start=settings.now, frozen=settings.frozen_clock)
        with self.db.read() as c:
            has_companies = c.execute("SELECT 1 FROM companies LIMIT 1").fetchone() is not None
        if has_companies and pinned.timestamp() < stored.timestamp():
            self.db.close()
            raise ValueError(f"the clock only moves forward: {settings.data_file} is already at "
                             f"{stored.now().isoformat()}, after {pinned.now().isoformat()}")
        self.db.kv_set("clock_offset", pinned.offset)
        return pinned

    def set_clock(self, when: datetime) -> None:
        """Move emulator time forward to ``when`` (see :meth:`advance_clock`)."""
        self.clock.advance_to(when)
        self.db.kv_set("clock_offset", self.clock.offset)

    def advance_clock(self, seconds: float) -> None:
        """Move emulator time forward, persisting the offset with the data file."""
        self.clock.advance(seconds)
        self.db.kv_set("clock_offset", self.clock.offset)

    def start(self) -> None:
        """Start background services (webhook delivery)."""
        self.webhooks.start()

    def stop(self) -> None:
        self.webhooks.stop()

    def close(self) -> None:
        self.stop()
        self.db.close()

    @staticmethod
    def new_tid() -> str:
        """An ``intuit_tid`` in the gateway's format, e.g. ``1-628f0be4-19ed5ea63980105102b16b1e``."""
        return f"1-{secrets.token_hex(4)}-{secrets.token_hex(12)}"
