"""Webhook test helpers shared by the emulator's webhook tests: a receiving endpoint, subscribing, flushing."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from qb_pipelines_tests.emulator_client import control

TOKEN = "6c2f43f4-59a0-4a33-8a46-1e0f8c3f5a10"


class Receiver:
    """The app's webhook endpoint: answers scripted statuses (then 200), records each request."""

    def __init__(self, statuses: list[int] | None = None, delays: list[float] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.delays = list(delays or [])
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver.lock:
                    receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    delay = receiver.delays.pop(0) if receiver.delays else 0.0
                time.sleep(delay)
                try:
                    self.send_response(status)
                    self.send_header("content-length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender gave up waiting (timeout test)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/webhooks/qbo"

    def wait_for(self, count: int, timeout: float = 15.0) -> list[tuple[dict[str, str], bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.01)
        with self.lock:
            return list(self.received)

    def bodies(self) -> list[bytes]:
        with self.lock:
            return [body for _, body in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def subscribe(base: str, **settings: object) -> dict:
    response = control(base, "POST", "webhooks", json=settings)
    assert response.status_code == 200, response.text
    return response.json()


def flush(url: str) -> dict:
    response = control(url, "POST", "webhooks/flush")
    assert response.status_code == 200, response.text
    return response.json()
