"""Chalice's local server as `make run` serves the app, over loopback."""

from __future__ import annotations

import http.client
import json
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
        still = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)  # still serving
        still.request("GET", "/health")
        response = still.getresponse()
        assert response.status == 200
        response.read()  # all of it: a close with unread data would reset the connection
        still.close()
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


def test_a_method_the_api_does_not_have_is_a_405_problem_on_every_path():
    with serving(_free_port()) as server:
        for method, path, allowed in (
            ("TRACE", "/customers", "GET, OPTIONS, POST"),
            ("PROPFIND", "/customers/cus_1/interactions", "GET, OPTIONS, POST"),
            ("CONNECT", "/no/such/path", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"),
        ):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            connection.request(method, path)
            response = connection.getresponse()
            body = json.loads(response.read())
            connection.close()

            assert response.status == 405, (method, path)
            assert response.getheader("Content-Type") == "application/problem+json"
            assert response.getheader("Allow") == allowed
            assert body["status"] == 405 and method in body["detail"]


def test_a_head_request_gets_headers_only_and_the_connection_stays_usable():
    with (
        serving(_free_port()) as server,
        socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock,
    ):
        sock.sendall(
            b"HEAD /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
            b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, rest = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 405") and b"Allow: " in head, received
    assert rest.startswith(b"HTTP/1.1 200"), received  # not the HEAD's body
    assert b'"ok"' in rest, received
