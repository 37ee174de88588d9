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
from zoneinfo import ZoneInfo

from qb_pipelines.emulator.clock import PACIFIC, Clock
from qb_pipelines.emulator.db import EmulatorDB


@dataclass
class EmulatorSettings:
    """Knobs of one emulator instance (all have production-faithful defaults)."""

    data_file: str | None = None
    seed: int = 0
    clock_scale: float = 1.0
    base_url: str = "http://127.0.0.1:0"


class Emulator:
    """QuickBooks Online, locally. Thread-safe."""

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        from qb_pipelines.emulator.engine import Engine
        from qb_pipelines.emulator.oauth import OAuthServer
        from qb_pipelines.emulator.traffic import Traffic
        from qb_pipelines.emulator.webhooks import WebhookDispatcher

        self.settings = settings or EmulatorSettings()
        self.db = EmulatorDB(self.settings.data_file)
        self.clock = Clock(scale=self.settings.clock_scale)
        stored_offset = self.db.kv_get("clock_offset", 0.0)
        if stored_offset:
            self.clock.advance(float(stored_offset))
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
