"""Serve a Chalice app over HTTP in this process, the way `chalice local` does.

Chalice's own local gateway turns each request into the API Gateway event, runs the HTTP
middleware and the route, and maps the response back; only the thread that serves and the
per-request access log lines (the app logs every request itself) differ from `chalice local`.
"""

from __future__ import annotations

import functools
import json
import logging
import socket
import threading
from typing import Any

from chalice.local import (
    ChaliceRequestHandler,
    ForbiddenError,
    LocalDevServer,
    LocalGatewayException,
    RouteMatcher,
    create_local_server,
)

from chalicelib.local.stack import HOST, chalice_config

log = logging.getLogger("chalicelib.local.server")
_API_GATEWAY_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


class _QuietRequestHandler(ChaliceRequestHandler):
    # Headers and body go out in separate writes: with Nagle's algorithm and delayed ACKs
    # every response would wait ~40 ms on loopback.
    disable_nagle_algorithm = True

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def handle(self) -> None:
        # A browser that navigates away, or a client that times out, closes the connection while
        # the response is written: one line, not socketserver's traceback on stderr.
        try:
            super().handle()
        except ConnectionError as error:
            self.close_connection = True
            path = (getattr(self, "path", None) or "").split("?")[0]  # a query may hold an email
            log.info(
                "client closed the connection before the response was sent: %s %s (%s)",
                getattr(self, "command", None) or "-",
                path or "-",
                type(error).__name__,
            )

    def __init__(self, request: Any, client_address: Any, server: Any, app_object: Any, config: Any) -> None:
        self._routes = app_object.routes  # before the request is handled, in super().__init__
        super().__init__(request, client_address, server, app_object=app_object, config=config)

    def __getattr__(self, name: str) -> Any:
        # BaseHTTPRequestHandler looks up do_<METHOD>; Chalice serves the methods API Gateway
        # has. Any other (TRACE, CONNECT, PROPFIND, ...) is a 405 problem, not an HTML 501.
        if name.startswith("do_"):
            return self._unsupported_method
        raise AttributeError(name)

    def _unsupported_method(self) -> None:
        path = (self.path or "/").split("?")[0]
        try:
            route = RouteMatcher(list(self._routes)).match_route(path).route
            allowed = sorted(set(self._routes[route]) | {"OPTIONS"})
        except ValueError:
            allowed = sorted(_API_GATEWAY_METHODS)
        body = json.dumps(
            {
                "type": "urn:problem-type:crm:method-not-allowed",
                "title": "Method Not Allowed",
                "status": 405,
                "detail": f"{self.command} is not a method of {path}; allowed: {', '.join(allowed)}.",
            }
        )
        self.close_connection = True  # its body, if any, was not read
        headers = {"Content-Type": "application/problem+json", "Allow": ", ".join(allowed)}
        self._send_http_response(405, {**headers, "Connection": "close"}, body)

    def _send_http_response_with_body(self, code: int, headers: dict, body: str | bytes) -> None:
        if self.command != "HEAD":
            super()._send_http_response_with_body(code, headers, body)
            return
        # A response to HEAD has headers only: a body would be read as the next response on a
        # kept-alive connection. Its Content-Length is the body's, as for GET.
        encoded = body if isinstance(body, bytes) else body.encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Length", str(len(encoded)))
        self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
        self._send_headers(headers)

    def _send_error_response(self, error: LocalGatewayException) -> None:
        # The local gateway answers a path no route matches as API Gateway does (403, "Missing
        # Authentication Token"); the deployed API maps that gateway response to a 404 problem
        # (infra/package.py), and so does this server.
        if isinstance(error, ForbiddenError):
            body = json.dumps(
                {
                    "type": "urn:problem-type:crm:not-found",
                    "title": "Not Found",
                    "status": 404,
                    "detail": f"No route matches {self.command} {self.path.split('?')[0]}.",
                }
            )
            self._send_http_response(404, {"Content-Type": "application/problem+json"}, body)
            return
        super()._send_error_response(error)


def _accept_blocking(listening: socket.socket) -> tuple[socket.socket, Any]:
    # A connection accepted from a non-blocking socket is non-blocking on some systems (BSD,
    # macOS); the request handler reads and writes it blocking.
    connection, address = listening.accept()
    connection.setblocking(True)
    return connection, address


class LocalApiServer:
    """`LocalApiServer(app, port=8000).start()`; `port=0` picks a free port (see `.port`).

    `listening=` serves a listening socket another process bound (`.socket` of a running
    server, passed on to a child): each process accepts connections from it, so the kernel
    spreads them over the processes, as Lambda spreads requests over its instances.
    """

    def __init__(
        self,
        app: Any,
        *,
        port: int = 8000,
        host: str = HOST,
        stage: str = "local",
        listening: socket.socket | None = None,
    ) -> None:
        config = chalice_config(app, stage)
        # create_local_server also makes `app.current_request` thread-local, which a threaded
        # server needs.
        self._server: LocalDevServer = create_local_server(app, config, host, 0 if listening else port)
        http = self._server.server
        http.RequestHandlerClass = functools.partial(_QuietRequestHandler, app_object=app, config=config)
        if listening is not None:
            http.socket.close()
            http.socket, http.server_address = listening, listening.getsockname()
            self._server.port = http.server_address[1]
        # Non-blocking accepts: when processes share the socket, the ones that lose the race
        # for a connection go back to waiting instead of blocking in accept().
        http.socket.setblocking(False)
        http.get_request = functools.partial(_accept_blocking, http.socket)
        self._thread: threading.Thread | None = None

    @property
    def socket(self) -> socket.socket:
        return self._server.server.socket

    @property
    def port(self) -> int:
        return self._server.server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self.port}"

    def start(self) -> LocalApiServer:
        self._thread = threading.Thread(
            target=self._server.server.serve_forever, kwargs={"poll_interval": 0.2}, name="api", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._server.server.server_close()
