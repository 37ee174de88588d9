"""Peak resident memory of a benchmark's processes, sampled every 100 ms in a background thread."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["RssSampler"]


class RssSampler:
    """Peak RSS (bytes) of this process, or of the processes ``pick`` returns, while the block runs.

    Sampling (rather than ``ru_maxrss``) measures the block alone: the imports and set-up before it
    do not count, and other processes (Dagster's run workers) can be watched too.
    """

    def __init__(self, pick: Callable[[], list[Any]] | None = None) -> None:
        import psutil

        self._psutil = psutil
        self._pick = pick or (lambda: [psutil.Process()])
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _sample(self) -> None:
        for proc in self._pick():
            with contextlib.suppress(self._psutil.Error):
                self.peak = max(self.peak, proc.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.1)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # the last state too: a block shorter than one period still counts

    @property
    def peak_mb(self) -> float:
        return round(self.peak / 2**20, 1)
