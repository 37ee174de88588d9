"""PLACEHOLDER: being written by a helper (throttling, fault injection, counters, metering)."""
from __future__ import annotations

from contextlib import contextmanager


class Traffic:
    def __init__(self, emu) -> None:
        self.emu = emu

    @contextmanager
    def admit(self, realm: str, *, kind: str, app_key: str = "app"):
        yield

    def control_routes(self) -> list:
        return []
