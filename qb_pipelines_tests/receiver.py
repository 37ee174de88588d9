"""A real HTTP server standing in for the app's callback endpoint (signed feed deliveries)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)

    @property
    def seqs(self) -> list[int]:
        return [c["seq"] for c in self.json["changes"]]


@dataclass
class Receiver:
    """A real HTTP server standing in for the app's callback endpoint."""

    host: str = "127.0.0.1"
    answers: list[Any] = field(default_factory=list)  # status, (status, location), or ("sleep", seconds)
    received: list[Received] = field(default_factory=list)
    reply_body: str = "ok"

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.received.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                answer = receiver.answers.pop(0) if receiver.answers else 200
                if isinstance(answer, tuple) and answer[0] == "sleep":
                    time.sleep(answer[1])
                    answer = 200
                location = None
                if isinstance(answer, tuple):
                    answer, location = answer
                self.send_response(answer)
                if location:
                    self.send_header("Location", location)
                payload = receiver.reply_body.encode()
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((self.host, 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)
