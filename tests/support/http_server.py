"""A small real HTTP server on 127.0.0.1 for tests (downloads of audio, weights, ...).

    with LocalHTTPServer() as srv:
        srv.add("/a.wav", body=b"...", content_type="audio/wav")
        srv.add("/flaky", responses=[Reply(status=500), Reply(body=b"ok")])   # one reply per request
        srv.add("/slow", body=b"...", delay_s=2.0)                             # sleeps before the body
        srv.add("/drip", responses=[Reply(body=data, trickle_s=0.1)])          # one byte every 0.1 s
        srv.add("/cut", body=data[:100], content_length=len(data))             # closes early
        srv.add("/nolen", body=data, content_length=-1)                        # no Content-Length header
        url = srv.url("/a.wav")
        srv.hits["/flaky"]                                                     # requests seen

Each route answers a list of `Reply`s in turn (the last one repeats). Threads serve requests in
parallel, so concurrent clients work. Nothing is mocked: clients talk real HTTP over a socket.
The tests' conftest sets RVC_ALLOW_PRIVATE_URLS=1 so that the downloaders fetch from 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/octet-stream"
    content_length: int | None = None  # header value; None = len(body); may lie (truncated transfer); -1 = no header
    delay_s: float = 0.0  # sleep after the headers, before the body (slow server)
    trickle_s: float = 0.0  # send the body one byte at a time, sleeping this long between bytes
    headers: dict[str, str] = field(default_factory=dict)


class BackgroundHTTPServer:
    """A threaded HTTP server on 127.0.0.1 (an ephemeral port) answering with `handler`, served by a
    daemon thread inside the `with` block."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"


class LocalHTTPServer(BackgroundHTTPServer):
    """Routes of `Reply`s (see the module docstring); use as a context manager."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.hits: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                path = self.path.split("?", 1)[0]
                with server._lock:
                    replies = server.routes.get(path)
                    n = server.hits[path]
                    server.hits[path] += 1
                if replies is None:
                    reply = Reply(status=404, body=b"not found", content_type="text/plain")
                else:
                    reply = replies[min(n, len(replies) - 1)]
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", reply.content_type)
                    length = len(reply.body) if reply.content_length is None else reply.content_length
                    if length >= 0:
                        self.send_header("Content-Length", str(length))
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    if length != len(reply.body):  # a lying or missing length: the body ends when we close
                        self.send_header("Connection", "close")
                        self.close_connection = True
                    self.end_headers()
                    if reply.delay_s:
                        self.wfile.flush()
                        time.sleep(reply.delay_s)
                    if reply.trickle_s:
                        for i in range(len(reply.body)):
                            self.wfile.write(reply.body[i : i + 1])
                            self.wfile.flush()
                            time.sleep(reply.trickle_s)
                    else:
                        self.wfile.write(reply.body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

        super().__init__(Handler)

    def add(
        self,
        path: str,
        body: bytes = b"",
        status: int = 200,
        content_type: str = "application/octet-stream",
        content_length: int | None = None,
        delay_s: float = 0.0,
        responses: list[Reply] | None = None,
    ) -> str:
        """Register `path`; returns its full URL."""
        with self._lock:
            self.routes[path] = responses or [Reply(status, body, content_type, content_length, delay_s)]
        return self.url(path)


class WebhookReceiver(BackgroundHTTPServer):
    """Collects the JSON bodies POSTed to it (cog's webhooks of async predictions); `url("/hook")`."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                with receiver.cond:
                    receiver.events.append(body)
                    receiver.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        super().__init__(Handler)

    def wait_for(self, pred: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any] | None:
        """The first event satisfying `pred` (waiting up to `timeout` s), else None."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for e in self.events:
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)
