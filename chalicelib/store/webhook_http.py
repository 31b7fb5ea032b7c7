"""The outbound webhook sender: one POST, to the address that was checked.

The URL's host is resolved here and every address it resolves to is checked against the
address policy (domain/webhook_subscriptions.py); the connection then goes to that address —
never to the name again, which a second lookup could point elsewhere (DNS rebinding) — with
TLS verified for the name (SNI and the certificate's host name) and the name in the `Host`
header. Redirects are not followed, nothing is retried here, and at most the first
EXCERPT_BYTES of the answer are read."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from chalicelib.domain.webhook_subscriptions import (
    EXCERPT_BYTES,
    Target,
    UrlRefused,
    checked_address,
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


def checked_target(url: str, allow_hosts: Iterable[str], resolver: Resolver) -> tuple[str, Target]:
    """The address to connect to and the target of `url`, after resolving its host: UrlRefused
    if any address it resolves to is not public (or it does not resolve)."""
    target = target_of(url, allow_hosts)
    addresses = [] if target.literal else resolver(target.host, target.port)
    return checked_address(target, addresses), target


class WebhookSender:
    def __init__(
        self,
        allow_hosts: Iterable[str],
        resolver: Resolver,
        timeout_s: float = TIMEOUT_S,
        ca_certs: str | None = None,
    ) -> None:
        """`ca_certs`: a file of the certificate authorities to trust instead of the system's."""
        self._allow_hosts = tuple(allow_hosts)
        self._resolver = resolver
        self._timeout_s = timeout_s
        self._ca_certs = ca_certs

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        started = time.monotonic()

        def elapsed_ms() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            address, target = checked_target(url, self._allow_hosts, self._resolver)
        except UrlRefused as refused:
            return Answer(None, {}, f"refused: the URL {refused.message}", elapsed_ms(), "refused")
        import urllib3
        from urllib3.exceptions import HTTPError, NewConnectionError, TimeoutError

        timeout = urllib3.Timeout(connect=self._timeout_s, read=self._timeout_s)
        if target.scheme == "https":
            tls: dict = (
                {} if target.literal else {"server_hostname": target.host, "assert_hostname": target.host}
            )
            if self._ca_certs:
                tls["ca_certs"] = self._ca_certs
            pool = urllib3.HTTPSConnectionPool(
                address,
                target.port,
                timeout=timeout,
                retries=False,
                maxsize=1,
                cert_reqs="CERT_REQUIRED",
                **tls,
            )
        else:
            pool = urllib3.HTTPConnectionPool(address, target.port, timeout=timeout, retries=False, maxsize=1)
        sent = {
            **headers,
            "Host": target.host_header,
            "User-Agent": USER_AGENT,
            "Accept-Encoding": "identity",
            "Content-Length": str(len(body)),
        }
        try:
            response = pool.urlopen(
                "POST",
                target.path,
                body=body,
                headers=sent,
                redirect=False,
                retries=False,
                preload_content=False,
                assert_same_host=False,
            )
            try:
                # One read: a receiver that trickles its answer cannot hold the sender.
                excerpt = response.read1(EXCERPT_BYTES, decode_content=False)[:EXCERPT_BYTES]
            except (HTTPError, OSError):
                excerpt = b""
            answer = Answer(
                response.status,
                {k.lower(): v for k, v in response.headers.items()},
                excerpt.decode("utf-8", errors="replace"),
                elapsed_ms(),
            )
            response.release_conn()
            return answer
        except NewConnectionError as error:  # a subclass of the connect timeout, but no timeout
            return Answer(None, {}, f"connection failed: {_reason(error)}", elapsed_ms(), "connection")
        except TimeoutError:
            return Answer(None, {}, f"no answer within {self._timeout_s:g} s", elapsed_ms(), "timeout")
        except (HTTPError, OSError) as error:
            return Answer(None, {}, f"connection failed: {_reason(error)}", elapsed_ms(), "connection")
        finally:
            pool.close()


def _reason(error: Exception) -> str:
    """The error's kind, not its message (which may quote the address or the certificate)."""
    cause = error.__cause__ or error.__context__
    return type(cause).__name__ if isinstance(cause, OSError) else type(error).__name__
