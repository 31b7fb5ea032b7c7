"""Real concurrency: the app served over loopback (chalicelib.local.server, threaded like
`chalice local`), many requests at once against DynamoDB Local, which applies conditional
transactions atomically. moto does not (it loses updates under threads), so these run on
DynamoDB Local only. Each test sends a fixed number of requests, each with a timeout."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import token
from tests.functional.conftest import Reply, assert_problem

pytestmark = pytest.mark.dynamodb_local

THREADS = 12
TIMEOUT = 5.0  # seconds, per request


class Http:
    """Requests over loopback as staff; `at_once` sends several from threads released together."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.bearer = token()

    def request(self, method: str, path: str, body: Any = None, headers: dict | None = None) -> Reply:
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        request = urllib.request.Request(
            self.url + path,
            data=data,
            method=method,
            headers={
                "Authorization": f"Bearer {self.bearer}",
                **({"Content-Type": "application/json"} if data else {}),
                **(headers or {}),
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                return Reply(
                    response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
                )
        except urllib.error.HTTPError as error:
            return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())

    def at_once(self, requests: list[tuple]) -> list[Reply]:
        start = threading.Barrier(len(requests), timeout=TIMEOUT)

        def send(args: tuple) -> Reply:
            start.wait()
            return self.request(*args)

        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            return list(pool.map(send, requests, timeout=3 * TIMEOUT))


@pytest.fixture(scope="session")
def _server(chalice_app):
    # One per session: Chalice's local server re-parents the app's class, a second one fails.
    from chalicelib.local.server import LocalApiServer

    running = LocalApiServer(chalice_app, port=0).start()
    # The first requests import and build what routes use lazily (PynamoDB, pydantic models):
    # pay for that once here, not in a timed burst.
    warm = Http(running.url)
    customer = warm.request("POST", "/customers", {"name": "Warm Up", "email": "warm@example.com"}).json
    warm.request("POST", "/customers", {"name": "Warm Up", "email": "warm@example.com"})  # 409
    warm.request("GET", "/customers?email=warm@example.com")
    warm.request("PATCH", f"/customers/{customer['id']}", {"locale": "sv"}, {"If-Match": '"v1"'})
    warm.request("PATCH", f"/customers/{customer['id']}", {"locale": "fi"}, {"If-Match": '"v1"'})  # 412
    path = f"/customers/{customer['id']}/interactions"
    line = {"sku": "SKU-MUG", "name": "Mugg", "quantity": 1, "unit_price": "2.20"}
    bought = warm.request(
        "POST", path, {"type": "purchase", "channel": "web", "currency": "EUR", "items": [line]}
    )
    back = {
        "type": "return",
        "channel": "web",
        "currency": "EUR",
        "purchase_id": bought.json["id"],
        "items": [line],
    }
    for _ in range(2):  # 201, then 409
        warm.request("POST", path, back)
    yield running
    running.stop()


@pytest.fixture
def server(_server, tables):
    return _server


@pytest.fixture
def http(server) -> Http:
    return Http(server.url)


def _statuses(replies: list[Reply]) -> list[int]:
    return sorted(r.status for r in replies)


def test_concurrent_creates_with_one_email_give_exactly_one_customer(http):
    addresses = ["same.person@example.com", "Same.Person@Example.com", "SAME.PERSON@example.com"]
    replies = http.at_once(
        [("POST", "/customers", {"name": f"Kund {i}", "email": addresses[i % 3]}) for i in range(THREADS)]
    )

    assert _statuses(replies) == [201] + [409] * (THREADS - 1), [r.json for r in replies]
    for reply in replies:
        if reply.status == 409:
            assert_problem(reply, 409, "email")
    created = next(r.json for r in replies if r.status == 201)
    found = http.request("GET", "/customers?email=same.person@example.com").json["items"]
    assert [c["id"] for c in found] == [created["id"]]
    # The losers' transactions wrote nothing: no profile without its email entry.
    assert [c["id"] for c in http.request("GET", "/customers").json["items"]] == [created["id"]]


def test_concurrent_returns_never_return_more_than_was_bought(http):
    bought = 5
    customer = http.request("POST", "/customers", {"name": "Åsa Öberg"}).json
    path = f"/customers/{customer['id']}/interactions"
    line = {"sku": "SKU-MUG", "name": "Mugg", "quantity": bought, "unit_price": "2.20"}
    purchase = http.request(
        "POST", path, {"type": "purchase", "channel": "store", "currency": "EUR", "items": [line]}
    )
    assert purchase.status == 201, purchase.json
    one_back = {
        "type": "return",
        "channel": "store",
        "currency": "EUR",
        "purchase_id": purchase.json["id"],
        "items": [{**line, "quantity": 1}],
    }

    replies = http.at_once([("POST", path, one_back)] * THREADS)

    assert _statuses(replies) == [201] * bought + [409] * (THREADS - bought), [r.json for r in replies]
    for reply in replies:
        if reply.status == 409:
            assert_problem(reply, 409, "items.0.quantity")
    returns = http.request("GET", f"{path}?type=return&limit=100").json["items"]
    assert len(returns) == bought
    assert http.request("GET", f"{path}/{purchase.json['id']}").status == 200
    again = http.request("POST", path, one_back)
    assert_problem(again, 409, "items.0.quantity")


# One change per editable field: a PATCH replaces a field whole (tags and attributes too), so
# distinct fields are what concurrent changes can all keep.
CHANGES = [
    {"name": "Saša Kovačič"},
    {"preferred_name": "Saša"},
    {"email": "sasa@example.com"},
    {"phone": "+38640123456"},
    {"locale": "sl"},
    {"marketing_consent": True},
    {"tags": ["vip"]},
    {"attributes": {"loyalty_card": "SI-77"}},
]


def test_concurrent_changes_of_different_fields_are_all_kept_and_each_counts_a_version(http):
    customer = http.request("POST", "/customers", {"name": "Sasa"}).json
    path = f"/customers/{customer['id']}"

    replies = http.at_once([("PATCH", path, change) for change in CHANGES])

    assert _statuses(replies) == [200] * len(CHANGES), [r.json for r in replies]
    final = http.request("GET", path).json
    for change in CHANGES:
        ((field, value),) = change.items()
        assert final[field] == value, field
    assert final["version"] == 1 + len(CHANGES)
    assert sorted(r.json["version"] for r in replies) == list(range(2, 2 + len(CHANGES)))


def test_concurrent_changes_with_the_same_if_match_give_one_200_and_the_rest_412(http):
    customer = http.request("POST", "/customers", {"name": "Jyrki Mäkelä"}).json
    path = f"/customers/{customer['id']}"

    replies = http.at_once(
        [("PATCH", path, {"preferred_name": f"J{i}"}, {"If-Match": '"v1"'}) for i in range(THREADS)]
    )

    assert _statuses(replies) == [200] + [412] * (THREADS - 1), [r.json for r in replies]
    for reply in replies:
        if reply.status == 412:
            assert_problem(reply, 412)
    winner = next(r.json for r in replies if r.status == 200)
    final = http.request("GET", path).json
    assert (final["version"], final["preferred_name"]) == (2, winner["preferred_name"])


@pytest.mark.parametrize("route", ["exports", "erase"])
def test_concurrent_requests_for_a_job_start_one_and_all_answer_it(http, route):
    customer = http.request("POST", "/customers", {"name": "Juan dela Cruz"}).json
    replies = http.at_once([("POST", f"/customers/{customer['id']}/{route}") for _ in range(6)])

    assert _statuses(replies) == [202] * 6, [r.json for r in replies]
    assert len({r.json["id"] for r in replies}) == 1


def test_concurrent_subscription_creates_never_pass_the_bound(http, monkeypatch):
    monkeypatch.setattr("chalicelib.services.webhook_subscriptions.MAX_SUBSCRIPTIONS", 3)
    body = {"url": "http://127.0.0.1:9/hooks", "events": ["*"]}
    replies = http.at_once([("POST", "/webhook-subscriptions", body) for _ in range(THREADS)])

    assert _statuses(replies) == [201] * 3 + [409] * (THREADS - 3), [r.json for r in replies]
    listed = http.request("GET", "/webhook-subscriptions?limit=100").json["items"]
    assert sorted(s["id"] for s in listed) == sorted(r.json["id"] for r in replies if r.status == 201)
    # A deletion makes room for one more, and only one.
    assert http.request("DELETE", f"/webhook-subscriptions/{listed[0]['id']}").status == 204
    again = http.at_once([("POST", "/webhook-subscriptions", body) for _ in range(4)])
    assert _statuses(again) == [201, 409, 409, 409]
