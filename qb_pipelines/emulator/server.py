"""Run the emulator over real HTTP: in a background thread (tests) or in the foreground (CLI)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import uvicorn

from qb_pipelines.emulator.app import create_app
from qb_pipelines.emulator.core import Emulator, EmulatorSettings


@dataclass
class RunningEmulator:
    """A started emulator: its base URL, the ``Emulator`` object, and how to stop it."""

    emu: Emulator
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.emu.stop()

    def __enter__(self) -> RunningEmulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _config(emu: Emulator, host: str, port: int) -> uvicorn.Config:
    return uvicorn.Config(
        create_app(emu),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        # QBO's gateway keeps connections alive; clients reuse them
        timeout_keep_alive=30,
        lifespan="off",
    )


def start_in_thread(
    emu: Emulator | None = None, host: str = "127.0.0.1", port: int | None = None, **settings: object
) -> RunningEmulator:
    """Start an emulator in a daemon thread and wait until it answers.

    Without ``port``, the server binds port 0 and the system picks a free one (no window in
    which another process could take it); the URL then carries the port it got.
    """
    emu = emu or Emulator(EmulatorSettings(**settings))  # type: ignore[arg-type]
    server = uvicorn.Server(_config(emu, host, port or 0))
    thread = threading.Thread(target=server.run, name=f"qbo-emulator-{port or 'auto'}", daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            raise RuntimeError(f"emulator did not start on {host}:{port or '<any free port>'}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    url = f"http://{host}:{bound}"
    emu.set_base_url(url)
    emu.start()
    return RunningEmulator(emu, url, server, thread)


def serve(emu: Emulator, host: str, port: int) -> None:
    """Serve in the foreground until interrupted (``qb-pipelines emulator serve``)."""
    emu.set_base_url(f"http://{host}:{port}")
    emu.start()
    try:
        uvicorn.Server(_config(emu, host, port)).run()
    finally:
        emu.close()
