"""The outbound webhook sender: one POST, to an address that was checked, within one deadline.

The URL's host is resolved here and every address it resolves to is checked against the
address policy (domain/webhook_subscriptions.py); the connection then goes to those addresses,
in turn until one connects — never to the name again, which a second lookup could point
elsewhere (DNS rebinding) — with TLS verified for the name (SNI and the certificate's host
name) and the name in the `Host` header. Redirects are not followed, nothing is retried here,
and at most the first EXCERPT_BYTES of the answer are read.

One deadline (`timeout_s`) covers the whole attempt: the name's resolution (run in a thread
that is waited for until then), connecting, TLS, the request, the answer's status line and
headers and the excerpt. A per-read socket timeout would not: a receiver sending a byte of
its headers every few seconds would hold the attempt, and the Lambda running it, for ever.
At the deadline a timer shuts the socket down, which ends whatever read or write waits on it."""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from chalicelib.domain.webhook_subscriptions import (
    EXCERPT_BYTES,
    Target,
    UrlRefused,
    checked_addresses,
    target_of,
)

Resolver = Callable[[str, int], list[str]]
TIMEOUT_S = 15.0
USER_AGENT = "crm-webhooks/1"


def resolve(host: str, port: int) -> list[str]:
    """The addresses `host` resolves to (the system's resolver); none if it does not."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    return list(dict.fromkeys(str(info[4][0]) for info in found))


@dataclass(frozen=True)
class Answer:
    status_code: int | None  # None: no answer (timeout, connection error, refused address)
    headers: Mapping[str, str]
    excerpt: str
    duration_ms: int
    error: str | None = None  # why there was no answer: "timeout", "refused", "connection"


def checked_target(
    url: str, allow_hosts: Iterable[str], resolver: Resolver
) -> tuple[tuple[str, ...], Target]:
    """The addresses to connect to and the target of `url`, after resolving its host:
    UrlRefused if any address it resolves to is not public (or it does not resolve)."""
    target = target_of(url, allow_hosts)
    addresses = [] if target.literal else resolver(target.host, target.port)
    return checked_addresses(target, addresses), target


class _OutOfTime(Exception):
    pass


def _resolved_by(resolver: Resolver, deadline: float) -> Resolver:
    """`resolver`, waited for until `deadline` (then _OutOfTime). The system's resolver cannot
    be interrupted: a lookup past the deadline finishes in its thread, unheard."""

    def bounded(host: str, port: int) -> list[str]:
        found: list[list[str]] = []

        def run() -> None:
            with contextlib.suppress(Exception):
                found.append(resolver(host, port))

        worker = threading.Thread(target=run, name="webhook-resolve", daemon=True)
        worker.start()
        worker.join(max(0.0, deadline - time.monotonic()))
        if worker.is_alive():
            raise _OutOfTime
        return found[0] if found else []

    return bounded


class _Watchdog:
    """Shuts the socket down at the deadline: every read or write waiting on it ends, in TLS
    too (it holds a duplicate of the socket, which TLS wrapping does not take away)."""

    def __init__(self, sock: socket.socket, seconds: float) -> None:
        self.fired = False
        self._sock = sock.dup()
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def _fire(self) -> None:
        self.fired = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._timer.cancel()
        self._sock.close()


class WebhookSender:
    def __init__(
        self,
        allow_hosts: Iterable[str],
        resolver: Resolver,
        timeout_s: float = TIMEOUT_S,
        ca_certs: str | None = None,
    ) -> None:
        """`timeout_s`: the deadline of a whole attempt. `ca_certs`: a file of the certificate
        authorities to trust instead of the system's."""
        self._allow_hosts = tuple(allow_hosts)
        self._resolver = resolver
        self._timeout_s = timeout_s
        self._ca_certs = ca_certs

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        started = time.monotonic()
        deadline = started + self._timeout_s

        def elapsed_ms() -> int:
            return int((time.monotonic() - started) * 1000)

        def no_answer(error: str, reason: str = "") -> Answer:
            if error == "timeout":
                return Answer(None, {}, f"no answer within {self._timeout_s:g} s", elapsed_ms(), error)
            return Answer(None, {}, f"connection failed: {reason}", elapsed_ms(), error)

        try:
            addresses, target = checked_target(url, self._allow_hosts, _resolved_by(self._resolver, deadline))
        except UrlRefused as refused:
            return Answer(None, {}, f"refused: the URL {refused.message}", elapsed_ms(), "refused")
        except _OutOfTime:
            return no_answer("timeout")
        sock, failure = self._connect(addresses, target.port, deadline)
        if sock is None:
            return no_answer(*failure)
        watchdog = _Watchdog(sock, deadline - time.monotonic())
        connection = None
        try:
            if target.scheme == "https":
                name = target.literal or target.server_name
                sock = self._tls().wrap_socket(sock, server_hostname=name)
            connection = http.client.HTTPConnection(target.server_name, target.port)
            connection.sock = sock  # connected, to the address checked: never by name
            connection.putrequest("POST", target.path, skip_host=True, skip_accept_encoding=True)
            sent = {
                **headers,
                "Host": target.host_header,
                "User-Agent": USER_AGENT,
                "Accept-Encoding": "identity",
                "Connection": "close",
                "Content-Length": str(len(body)),
            }
            for name, value in sent.items():
                connection.putheader(name, value)
            connection.endheaders(body)
            response = connection.getresponse()
            try:
                # One read: a receiver that trickles its answer cannot hold the sender.
                excerpt = response.read1(EXCERPT_BYTES)[:EXCERPT_BYTES]
            except (http.client.HTTPException, OSError, ValueError):
                excerpt = b""
            return Answer(
                response.status,
                {name.lower(): value for name, value in response.getheaders()},
                excerpt.decode("utf-8", errors="replace"),
                elapsed_ms(),
            )
        except (http.client.HTTPException, OSError, ValueError) as error:
            if watchdog.fired or isinstance(error, TimeoutError) or time.monotonic() >= deadline:
                return no_answer("timeout")
            return no_answer("connection", type(error).__name__)
        finally:
            watchdog.stop()
            if connection is not None:
                connection.close()
            sock.close()

    def _connect(
        self, addresses: tuple[str, ...], port: int, deadline: float
    ) -> tuple[socket.socket | None, tuple[str, str]]:
        """A socket connected to the first of `addresses` that takes the connection (each tried
        for its share of the time left), or None and why none did."""
        failure = ("timeout", "")
        for index, address in enumerate(addresses):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, ("timeout", "")
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(remaining / (len(addresses) - index))
            try:
                sock.connect((address, port))
            except TimeoutError:
                failure = ("timeout", "")
            except OSError as error:
                failure = ("connection", type(error).__name__)
            else:
                # Each later read or write waits at most what is left; the watchdog ends the sum.
                sock.settimeout(max(0.001, deadline - time.monotonic()))
                return sock, failure
            sock.close()
        return None, failure

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self._ca_certs)
        context.check_hostname = True
        context.verify_mode = ssl.CERT_REQUIRED
        return context
