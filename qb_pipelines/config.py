"""The one error of a missing or invalid setting, shared by every layer that reads configuration.

Configuration is read when a run, a command or an app starts (never at import): the runtime's
:class:`~qb_pipelines.sync.settings.AppSettings`, the web app's settings, the token key. Whatever
reads it raises :class:`SettingsError` with the variable's name and what to put in it, so the
command line, the web app and Dagster runs all report a bad setting the same way: one clear line
with the next step, never a traceback. This module imports nothing of the project, so every
layer may use it.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["SettingsError", "required_env"]


class SettingsError(ValueError):
    """A required setting is missing or invalid; the message names the variable and the fix."""


def required_env(env: Mapping[str, str], name: str, what: str) -> str:
    """The stripped value of ``name``, or :class:`SettingsError` saying what to put in it."""
    value = (env.get(name) or "").strip()
    if not value:
        raise SettingsError(f"{name} is not set: {what}")
    return value
