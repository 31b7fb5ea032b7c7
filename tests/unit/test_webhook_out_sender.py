"""The outbound webhook sender against real servers on 127.0.0.1: it connects to the addresses it
checked (never looking the name up again), verifies TLS for the name, follows no redirect,
gives up at one deadline for the whole attempt, and reads at most 1 KB of the answer."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib.store.webhook_http import WebhookSender
from tests.webhook_out_receiver import Reply, receiver

pytestmark = pytest.mark.loopback


class Names:
    """A resolver of the names a test gives it, counting the lookups."""

    def __init__(self, **names: list[str]) -> None:
        self.names = {name.replace("_", "."): addresses for name, addresses in names.items()}
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return self.names.get(host, [])


class SlowNames(Names):
    def __init__(self, seconds: float, **names: list[str]) -> None:
        super().__init__(**names)
        self.seconds = seconds

    def __call__(self, host: str, port: int) -> list[str]:
        time.sleep(self.seconds)
        return super().__call__(host, port)


@pytest.fixture
def server():
    started = []

    def start(*replies: Reply):
        r = receiver(replies or (Reply(),))
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def test_a_post_to_an_allowed_host_gets_its_answer_and_an_excerpt(server):
    r = server(Reply(200, (("Content-Type", "text/plain"),), b"thanks"))
    sender = WebhookSender(("127.0.0.1",), Names())
    answer = sender.post(r.url, b'{"type": "x"}', {"content-type": "application/json", "webhook-id": "evt_1"})
    assert (answer.status_code, answer.excerpt, answer.error) == (200, "thanks", None)
    [got] = r.received
    assert (got.path, got.body, got.headers["webhook-id"]) == ("/hooks", b'{"type": "x"}', "evt_1")
    assert got.headers["host"] == f"127.0.0.1:{r.port}"


def test_the_excerpt_is_the_first_kilobyte_decoded_safely(server):
    r = server(Reply(500, body=b"\xff\xfe" + "ä".encode() * 2000))
    answer = WebhookSender(("127.0.0.1",), Names()).post(r.url, b"{}", {})
    assert answer.status_code == 500
    assert answer.excerpt.startswith("\ufffd\ufffdä")
    assert answer.excerpt.encode().replace("\ufffd".encode(), b"??") == b"??" * 2 + "ä".encode() * 511


def test_a_redirect_is_an_answer_and_is_not_followed(server):
    target = server(Reply(204))
    r = server(Reply(307, (("Location", target.url),)))
    answer = WebhookSender(("127.0.0.1",), Names()).post(r.url, b"{}", {})
    assert answer.status_code == 307
    assert target.received == []


def test_a_receiver_that_hangs_is_no_answer_after_the_timeout(server):
    r = server(Reply(200, hang_s=2))
    answer = WebhookSender(("127.0.0.1",), Names(), timeout_s=0.3).post(r.url, b"{}", {})
    assert (answer.status_code, answer.error) == (None, "timeout")
    assert 300 <= answer.duration_ms < 1500


def test_a_receiver_trickling_its_headers_is_no_answer_at_the_deadline_of_the_whole_attempt(server):
    # A byte every 50 ms: each read is answered well within any per-read timeout, and the
    # headers would take over 12 s to arrive.
    r = server(Reply(200, drip_s=0.05))
    started = time.monotonic()
    answer = WebhookSender(("127.0.0.1",), Names(), timeout_s=0.5).post(r.url, b"{}", {})
    took = time.monotonic() - started
    assert (answer.status_code, answer.error, answer.excerpt) == (None, "timeout", "no answer within 0.5 s")
    assert 0.5 <= took < 1.2
    assert 500 <= answer.duration_ms < 1200


def test_a_name_that_takes_too_long_to_resolve_is_no_answer_at_the_deadline(server):
    r = server()
    names = SlowNames(3, hooks_test=["127.0.0.1"])
    started = time.monotonic()
    answer = WebhookSender(("hooks.test",), names, timeout_s=0.3).post(
        f"http://hooks.test:{r.port}/", b"{}", {}
    )
    assert (answer.status_code, answer.error) == (None, "timeout")
    assert time.monotonic() - started < 1.0
    assert r.received == []


def test_an_address_that_refuses_the_connection_gives_way_to_the_next_one_checked(server):
    r = server(Reply(204))
    names = Names(hooks_test=["::1", "127.0.0.1"])  # the receiver listens on 127.0.0.1 only
    answer = WebhookSender(("hooks.test",), names).post(f"http://hooks.test:{r.port}/hooks", b"{}", {})
    assert (answer.status_code, answer.error) == (204, None)
    assert [got.headers["host"] for got in r.received] == [f"hooks.test:{r.port}"]
    assert names.asked == ["hooks.test"]


def test_when_every_address_refuses_the_connection_there_is_no_answer(server):
    r = server()
    url = f"http://hooks.test:{r.port}/hooks"
    r.stop()
    answer = WebhookSender(("hooks.test",), Names(hooks_test=["::1", "127.0.0.1"])).post(url, b"{}", {})
    assert (answer.status_code, answer.excerpt) == (None, "connection failed: ConnectionRefusedError")


def test_a_refused_connection_is_no_answer(server):
    r = server()
    url = r.url
    r.stop()
    answer = WebhookSender(("127.0.0.1",), Names()).post(url, b"{}", {})
    assert (answer.status_code, answer.error) == (None, "connection")
    assert answer.excerpt == "connection failed: ConnectionRefusedError"


def test_a_name_resolving_to_a_blocked_address_is_refused_without_connecting(server):
    r = server()
    names = Names(hooks_example_com=["93.184.216.34", "127.0.0.1"])
    answer = WebhookSender((), names).post(f"https://hooks.example.com:{r.port}/hooks", b"{}", {})
    assert (answer.status_code, answer.error) == (None, "refused")
    assert answer.excerpt == "refused: the URL names hooks.example.com, which resolves to a loopback address"
    assert r.received == []


def test_loopback_over_http_is_refused_without_the_allow_list(server):
    r = server()
    answer = WebhookSender((), Names()).post(r.url, b"{}", {})
    assert answer.error == "refused" and r.received == []


# TLS: a certificate authority of the test's own, and a server certificate for one name.


def _certificates(tmp_path, name: str):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def certificate(subject, issuer, key, signer, *, ca: bool, san: str | None = None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(san)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = certificate("test CA", "test CA", ca_key, ca_key, ca=True)
    leaf = certificate(name, "test CA", key, ca_key, ca=False, san=name)
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "leaf.key").write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tmp_path / "ca.pem", tmp_path / "leaf.pem", tmp_path / "leaf.key"


@pytest.fixture
def tls_server(tmp_path):
    ca, cert, key = _certificates(tmp_path, "hooks.example")
    seen: list[tuple[str | None, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            seen.append((self.headers.get("host"), self.path))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    names: list[str | None] = []
    context.sni_callback = lambda sock, name, ctx: names.append(name)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield httpd.server_address[1], str(ca), seen, names
    httpd.shutdown()
    httpd.server_close()


def test_https_goes_to_the_checked_address_with_the_name_in_sni_the_certificate_and_host(tls_server):
    port, ca, seen, sni = tls_server
    names = Names(hooks_example=["127.0.0.1"])
    sender = WebhookSender(("hooks.example",), names, ca_certs=ca)
    answer = sender.post(f"https://hooks.example:{port}/in?x=1", b"{}", {})
    assert answer.status_code == 200, answer
    assert names.asked == ["hooks.example"]  # looked up once, by the sender itself
    assert sni == ["hooks.example"]
    assert seen == [(f"hooks.example:{port}", "/in?x=1")]


def test_an_absolute_name_is_verified_and_sent_without_its_trailing_dot(tls_server):
    port, ca, seen, sni = tls_server
    names = Names()
    names.names["hooks.example."] = ["127.0.0.1"]
    sender = WebhookSender(("hooks.example",), names, ca_certs=ca)
    answer = sender.post(f"https://hooks.example.:{port}/in", b"{}", {})
    assert answer.status_code == 200, answer
    assert names.asked == ["hooks.example."]
    assert sni == ["hooks.example"]
    assert seen == [(f"hooks.example:{port}", "/in")]


def test_https_verifies_the_certificate_for_the_name(tls_server):
    port, ca, seen, _ = tls_server
    names = Names(other_example=["127.0.0.1"])
    wrong_name = WebhookSender(("other.example",), names, ca_certs=ca).post(
        f"https://other.example:{port}/in", b"{}", {}
    )
    assert (wrong_name.status_code, wrong_name.error) == (None, "connection")
    untrusted = WebhookSender(("hooks.example",), Names(hooks_example=["127.0.0.1"])).post(
        f"https://hooks.example:{port}/in", b"{}", {}
    )
    assert (untrusted.status_code, untrusted.error) == (None, "connection")
    assert seen == []
