"""Kept for existing imports: the token source now lives with the control client.

:class:`EmulatorControlTokens` is defined in :mod:`qb_pipelines.qbo.emulator_control`, built
on :class:`~qb_pipelines.qbo.emulator_control.EmulatorControl` (the one client of the
emulator's control API). Import it from there; this alias goes once no module imports it.
"""

from qb_pipelines.qbo.emulator_control import EmulatorControlTokens

__all__ = ["EmulatorControlTokens"]
