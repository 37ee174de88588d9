"""PLACEHOLDER: being written by a helper (webhook subscription, signing, delivery, retries)."""
from __future__ import annotations


class WebhookDispatcher:
    def __init__(self, emu) -> None:
        self.emu = emu

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def control_routes(self) -> list:
        return []
