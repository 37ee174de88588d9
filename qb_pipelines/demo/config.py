"""The demo's fixed names, numbers and files, and its error."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from qb_pipelines.devtools.processes import ROOT
from qb_pipelines.devtools.services import WORKSPACE

__all__ = [
    "ADMIN_EMAIL",
    "DEMO_SEED",
    "DEMO_TENANT",
    "DEMO_TENANT_NAME",
    "EMULATOR_CLIENT_ID",
    "EMULATOR_CLIENT_SECRET",
    "ROOT",
    "SECRETS_FILE",
    "SECRET_NAMES",
    "WEBHOOK_TIMEOUT_S",
    "WEBHOOK_WINDOW_S",
    "WORKSPACE",
    "DemoError",
    "Out",
]

#: Seed of the demo company: fixed, so every demo shows the same books.
DEMO_SEED = 7
#: The demo's tenant (the app's customer that connects the demo company) and its admin.
DEMO_TENANT = "demo"
DEMO_TENANT_NAME = "Demo Landscaping (tenant)"
ADMIN_EMAIL = "admin@example.com"
#: The emulator's built-in developer app (README, "OAuth 2.0 and OpenID Connect").
EMULATOR_CLIENT_ID = "emulator-client-id"
EMULATOR_CLIENT_SECRET = "emulator-client-secret"
#: Grouping window of the emulator's webhook deliveries (QBO groups changes too).
WEBHOOK_WINDOW_S = 1.0
#: How long the headless demo waits for a change to reach the warehouse through the daemon.
WEBHOOK_TIMEOUT_S = 60.0

SECRETS_FILE = "secrets.env"
#: Generated once per demo folder and kept in ``secrets.env``.
SECRET_NAMES = ("QB_FERNET_KEY", "QB_SESSION_SECRET", "QBO_WEBHOOK_VERIFIER_TOKEN", "QB_DEMO_ADMIN_PASSWORD")

#: Where progress lines go (``print``, ``click.echo``, a list's ``append``).
Out = Callable[[str], Any]


class DemoError(RuntimeError):
    """A demo step failed; the message names the step and what to do."""
