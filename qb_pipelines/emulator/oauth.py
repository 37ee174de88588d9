"""PLACEHOLDER: being written by a helper (Intuit OAuth 2.0 / OpenID server)."""
from __future__ import annotations


class OAuthServer:
    def __init__(self, emu) -> None:
        self.emu = emu

    def routes(self) -> list:
        return []

    def control_routes(self) -> list:
        return []

    def authenticate(self, realm: str, authorization: str | None) -> str:
        return "app"
