"""Chalice's local server as `make run` serves the app, over loopback."""

from __future__ import annotations

import re
import socket
import struct
import time

from tests.e2e.app_server import serving


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_client_that_disconnects_early_costs_one_log_line_not_a_traceback():
    with serving(_free_port()) as server:
        for _ in range(3):
            with socket.socket() as sock:
                # A small window, then a reset while the 1.7 MB bundle is still being written.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                sock.connect(("127.0.0.1", server.port))
                sock.sendall(b"GET /docs/swagger-ui-bundle.js HTTP/1.1\r\nHost: localhost\r\n\r\n")
                assert sock.recv(1024).startswith(b"HTTP/1.")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with socket.create_connection(("127.0.0.1", server.port)) as sock:  # still serving
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            assert sock.recv(1024).startswith(b"HTTP/1.1 200")
        time.sleep(0.2)
    logged = "\n".join(server.stderr)
    assert "Traceback" not in logged and "Exception occurred" not in logged, logged
    lines = [line for line in server.stderr if "client closed the connection" in line]
    # One line per disconnect that interrupted a write (the kernel may have taken a whole body).
    assert 1 <= len(lines) <= 3, logged
    for line in lines:
        assert re.search(
            r" GET /docs/swagger-ui-bundle\.js \((ConnectionResetError|BrokenPipeError)\)$", line
        )
