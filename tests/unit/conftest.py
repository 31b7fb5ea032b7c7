"""Unit tests run with no AWS and no network: a socket that tries to connect fails the test,
and so does the creation of any boto3/botocore client (the fakes of tests/unit/fakes stand in
for every repository). A test marked `loopback` may connect to this machine only (a server it
runs itself)."""

from __future__ import annotations

import socket
from datetime import UTC, datetime

import botocore.session
import pytest

from chalicelib.api.cursors import CursorSigner
from chalicelib.domain.clock import FrozenClock
from tests.unit.fakes import FakeStore

_LOOPBACK = ("127.0.0.1", "::1", "localhost")


class NetworkDisabled(RuntimeError):
    pass


def pytest_configure(config):
    config.addinivalue_line("markers", "loopback: may connect to a server on this machine (tests/unit)")


@pytest.fixture(autouse=True)
def no_network(request, monkeypatch):
    loopback = request.node.get_closest_marker("loopback") is not None
    connect, connect_ex = socket.socket.connect, socket.socket.connect_ex

    def allowed(address) -> bool:
        return loopback and isinstance(address, tuple) and address[0] in _LOOPBACK

    def guarded(real):
        def guard(self, address):
            if not allowed(address):
                raise NetworkDisabled(f"tests/unit run without network: connect to {address!r}")
            return real(self, address)

        return guard

    def no_client(*args, **kwargs):
        raise NetworkDisabled(f"tests/unit run without AWS: a botocore client was created {args[1:2]}")

    monkeypatch.setattr(socket.socket, "connect", guarded(connect))
    monkeypatch.setattr(socket.socket, "connect_ex", guarded(connect_ex))
    monkeypatch.setattr(botocore.session.Session, "create_client", no_client)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))


@pytest.fixture
def store() -> FakeStore:
    return FakeStore()


@pytest.fixture
def cursors(clock: FrozenClock) -> CursorSigner:
    return CursorSigner(["unit-test-cursor-secret"], 24 * 60 * 60, clock.now)
