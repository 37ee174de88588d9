"""Signals for commands that start processes: SIGTERM stops them as Ctrl-C does.

A command that starts children must stop them however it ends. Ctrl-C raises
:class:`KeyboardInterrupt`, which unwinds the ``with`` blocks that stop the children; SIGTERM
(what ``kill``, CI runners, systemd and container runtimes send) and SIGHUP (a closed terminal)
would kill the command outright and leave its children running. Inside
:func:`interrupt_on_signals` all three raise :class:`Interrupted`, a :class:`KeyboardInterrupt`,
so every ending takes the same path.

A cleanup (stopping a child) runs inside :func:`shielded`: a signal arriving then does not cut it
short half-way (which would leave the rest running); it is remembered, makes the cleanup hurry
(kill now instead of waiting for a graceful stop), and is raised when the shielded block ends.

Python runs signal handlers in the main thread only; elsewhere both helpers do nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Interrupted", "hurry_requested", "interrupt_on_signals", "shielded"]

#: The signals that end a command the way Ctrl-C does.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

_shield_depth = 0
_pending: list[int] = []


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, SIGTERM or SIGHUP reached the command.

    Attributes:
        signum: the signal's number.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handler(signum: int, frame: FrameType | None) -> None:
    if _shield_depth:
        _pending.append(signum)  # a cleanup is running: let it finish, faster
        return
    raise Interrupted(signum)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextmanager
def interrupt_on_signals(signums: tuple[int, ...] = STOP_SIGNALS) -> Iterator[None]:
    """Inside, each of ``signums`` raises :class:`Interrupted` in the main thread.

    Installing a Python handler also gives SIGINT back to children started inside even when
    this command was started with it ignored (a shell's background job): a handled signal is
    reset to its default at ``exec``, an ignored one would stay ignored.
    """
    if not _in_main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in signums}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def hurry_requested() -> bool:
    """True when a signal arrived during the current shielded cleanup."""
    return bool(_pending)


@contextmanager
def shielded() -> Iterator[None]:
    """Run a cleanup that Ctrl-C or SIGTERM must not interrupt half-way.

    A signal arriving inside is held (:func:`hurry_requested` becomes true) and raised as
    :class:`Interrupted` when the outermost shielded block ends, so the command still ends.
    """
    global _shield_depth
    if not _in_main_thread():
        yield
        return
    installed = {}
    for s in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(s) is not _handler:
            installed[s] = signal.signal(s, _handler)
    _shield_depth += 1
    try:
        yield
    finally:
        _shield_depth -= 1
        for s, h in installed.items():
            signal.signal(s, h)
        if _shield_depth == 0 and _pending:
            signum = _pending[0]
            _pending.clear()
            raise Interrupted(signum)
