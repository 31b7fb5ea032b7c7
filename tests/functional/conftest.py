from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC
from typing import Any

import pytest

from tests.conftest import token
from tests.functional.contract import contract


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


class Api:
    """HTTP through chalice.test.Client, as a staff member unless told otherwise."""

    def __init__(self, client, bearer: str | None) -> None:
        self._client = client
        self.bearer = bearer

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        headers: dict | None = None,
        raw: bytes | str | None = None,
        auth: bool = True,
    ) -> Reply:
        all_headers = {}
        if auth and self.bearer:
            all_headers["Authorization"] = f"Bearer {self.bearer}"
        if body is not None:
            raw = json.dumps(body, ensure_ascii=False)
        if raw is not None:
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        response = self._client.http.request(method, path, headers=all_headers, body=raw or b"")
        reply = Reply(
            response.status_code, {k.lower(): v for k, v in response.headers.items()}, response.body
        )
        # Every exchange keeps the served OpenAPI document (tests/functional/contract.py).
        contract().check(method, path, all_headers, raw, reply.status, reply.headers, reply.body)
        return reply

    def get(self, path: str, **kw) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw) -> Reply:
        return self.request("POST", path, body, **kw)

    def patch(self, path: str, body: Any = None, **kw) -> Reply:
        return self.request("PATCH", path, body, **kw)

    def delete(self, path: str, **kw) -> Reply:
        return self.request("DELETE", path, **kw)

    def as_role(self, role: str, subject: str = "someone") -> Api:
        return Api(self._client, token(role, subject))

    def create_customer(self, **fields) -> dict:
        reply = self.post("/customers", {"name": "Åsa Öberg", **fields})
        assert reply.status == 201, reply.json
        return reply.json

    def walk(self, path: str, limit: int) -> list[dict]:
        items, cursor, pages = [], None, 0
        sep = "&" if "?" in path else "?"
        while True:
            url = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
            reply = self.get(url)
            assert reply.status == 200, reply.json
            items += reply.json["items"]
            cursor = reply.json["next_cursor"]
            pages += 1
            assert pages < 1000
            if cursor is None:
                return items


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


def assert_problem(reply: Reply, status: int, *fields: str) -> dict:
    assert reply.status == status, (reply.status, reply.body)
    assert reply.content_type.startswith("application/problem+json"), reply.content_type
    problem = reply.json
    assert problem["status"] == status and problem["title"] and problem["detail"] and problem["type"]
    named = {e["field"] for e in problem.get("errors", [])}
    for field in fields:
        assert field in named, (field, problem)
    return problem


def bulk_customers(count: int, prefix: str = "Kund") -> list[str]:
    """Write many profiles at once, bypassing the API: moto copies every table on each
    transaction, so creating hundreds through POST would make the suite slow, not the API."""
    from datetime import datetime, timedelta

    from chalicelib.domain import ids
    from chalicelib.domain.customers import Customer
    from chalicelib.store.customer_items import customer_item
    from chalicelib.store.models import CustomerModel

    start = datetime(2026, 1, 1, tzinfo=UTC)
    created = []
    with CustomerModel.batch_write() as batch:
        for i in range(count):
            at = start + timedelta(minutes=i)
            customer = Customer(
                id=ids.new_id(ids.CUSTOMER, at), name=f"{prefix} {i}", created_at=at, updated_at=at, version=1
            )
            batch.save(customer_item(customer))
            created.append(customer.id)
    return created


def bulk_interactions(customer_id: str, count: int, note: str | None = None) -> list[str]:
    from datetime import datetime, timedelta

    from chalicelib.domain import ids
    from chalicelib.domain.interactions import TYPES, Interaction
    from chalicelib.store.interactions import interaction_item as _to_model
    from chalicelib.store.models import InteractionModel

    start = datetime(2025, 1, 1, tzinfo=UTC)
    created = []
    with InteractionModel.batch_write() as batch:
        for i in range(count):
            at = start + timedelta(hours=i)
            kind = ("inquiry", "feedback", "visit")[i % 3]
            assert kind in TYPES
            interaction = Interaction(
                id=ids.new_id(ids.INTERACTION, at),
                customer_id=customer_id,
                type=kind,
                channel="web",
                occurred_at=at,
                created_at=at,
                note=note or f"note {i}",
                version=1,
            )
            batch.save(_to_model(interaction))
            created.append(interaction.id)
    return created


READS = ("GetItem", "Query", "BatchGetItem")


def record_reads(monkeypatch) -> list[tuple[str, str, bool]]:
    """The DynamoDB reads made from now on, as (operation, table, ConsistentRead): one entry
    per GetItem and Query, and per table of a BatchGetItem. DynamoDB reads are eventually
    consistent unless asked; neither emulator shows the difference, so tests of a read that a
    decision relies on check the requests themselves."""
    import botocore.client

    seen: list[tuple[str, str, bool]] = []
    original = botocore.client.BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        if operation_name == "BatchGetItem":
            for table, request in api_params["RequestItems"].items():
                seen.append((operation_name, table, bool(request.get("ConsistentRead"))))
        elif operation_name in READS:
            seen.append((operation_name, api_params["TableName"], bool(api_params.get("ConsistentRead"))))
        return original(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return seen
