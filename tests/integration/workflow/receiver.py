"""A real local HTTP server for http tasks: counts calls per ``Idempotency-Key`` and path, can be slow or redirect."""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class Receiver:
    """The counts a :func:`receiver` server saw."""

    def __init__(self) -> None:
        self.calls: collections.Counter[str] = collections.Counter()
        self.lock = threading.Lock()
        self.url = ""


@contextmanager
def receiver() -> Iterator[Receiver]:
    """Serve on 127.0.0.1 (a free port) in a thread: ``/echo`` answers JSON, ``?delay=s`` waits first,
    ``/redirect?to=URL`` redirects."""
    seen = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return

        def _answer(self) -> None:
            parsed = urlparse(self.path)
            query = parse_qs(parsed.query)
            key = self.headers.get("Idempotency-Key", "-")
            with seen.lock:
                seen.calls[key] += 1
            if "delay" in query:
                time.sleep(float(query["delay"][0]))
            if parsed.path == "/redirect":
                self.send_response(302)
                self.send_header("Location", query["to"][0])
                self.end_headers()
                return
            length = int(self.headers.get("Content-Length") or 0)
            received = self.rfile.read(length).decode() if length else None
            body = json.dumps({"path": parsed.path, "key": key, "method": self.command, "received": received,
                               "id": 42}).encode()  # fmt: skip
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = _answer
        do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    seen.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield seen
    finally:
        server.shutdown()
        server.server_close()
