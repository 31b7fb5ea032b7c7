"""A webhook receiver on 127.0.0.1 for the outbound webhook tests: a real HTTP server (a
thread) that answers each request as scripted and records what it was sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    status: int = 204
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    hang_s: float = 0.0  # wait this long before answering (a receiver that hangs)
    # Send the status line and headers a byte at a time, this long apart (a receiver that
    # trickles its answer: every read gets a byte well within any per-read timeout).
    drip_s: float = 0.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """`replies` are used in turn, the last one for every later request."""

    replies: list[Reply] = field(default_factory=lambda: [Reply()])
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.server_address[1]

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.received.append(
                    Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                reply = receiver.replies[min(len(receiver.received), len(receiver.replies)) - 1]
                if reply.hang_s:
                    time.sleep(reply.hang_s)
                if reply.drip_s:
                    self.close_connection = True
                    self._drip(reply)
                    return
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers:
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the sender gave up waiting

            def _drip(self, reply: Reply) -> None:
                head = (
                    f"HTTP/1.1 {reply.status} Dripping\r\nX-Padding: {'.' * 200}\r\n"
                    f"Content-Length: {len(reply.body)}\r\n\r\n"
                ).encode()
                try:
                    for byte in head:
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(reply.drip_s)
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the sender hung up

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def receiver(replies: Iterable[Reply] = (Reply(),)) -> Receiver:
    return Receiver(list(replies)).start()
