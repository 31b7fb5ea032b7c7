"""A read that a conditional write relies on is strongly consistent: a client that has just
received an ETag must not get a 412 because a replica had not caught up (issue 10). DynamoDB
reads are eventually consistent unless asked; neither emulator shows the difference, so the
requests themselves are checked."""

from __future__ import annotations

import pytest

from tests.functional.conftest import record_reads


@pytest.fixture
def reads(monkeypatch) -> list[tuple[str, str, bool]]:
    return record_reads(monkeypatch)


def _get_items(reads: list[tuple[str, str, bool]], table: str) -> list[bool]:
    """Whether each GetItem of `table` (a part of its name) was strongly consistent."""
    return [consistent for operation, name, consistent in reads if operation == "GetItem" and table in name]


def _customer_reads(reads: list[tuple[str, str, bool]]) -> list[bool]:
    return _get_items(reads, "customers")


def test_the_profile_read_before_a_patch_is_strongly_consistent(api, reads):
    customer = api.create_customer()
    reads.clear()

    reply = api.patch(f"/customers/{customer['id']}", {"preferred_name": "Åsa"}, headers={"If-Match": '"v1"'})

    assert reply.status == 200, reply.json
    assert _customer_reads(reads) and all(_customer_reads(reads)), reads


def test_the_profile_read_before_a_delete_is_strongly_consistent(api, reads):
    customer = api.create_customer()
    reads.clear()

    assert api.delete(f"/customers/{customer['id']}").status == 204
    assert _customer_reads(reads) and all(_customer_reads(reads)), reads


def test_a_plain_read_stays_eventually_consistent_at_half_the_cost(api, reads):
    customer = api.create_customer()
    reads.clear()

    assert api.get(f"/customers/{customer['id']}/interactions").status == 200
    assert _customer_reads(reads) == [False]


def test_the_purchase_read_before_a_return_is_strongly_consistent(api, reads):
    """A return posted right after its purchase (or an import's next row) must find it, not be
    answered 422 because a replica had not caught up."""
    customer = api.create_customer()
    line = {"sku": "SKU-KAVA", "name": "Kava 250 g", "quantity": 2, "unit_price": "4.20"}
    body = {"type": "purchase", "channel": "store", "currency": "EUR", "items": [line]}
    bought = api.post(f"/customers/{customer['id']}/interactions", body)
    assert bought.status == 201, bought.json
    reads.clear()

    returned = {
        **body,
        "type": "return",
        "purchase_id": bought.json["id"],
        "items": [{**line, "quantity": 1}],
    }
    reply = api.post(f"/customers/{customer['id']}/interactions", returned)

    assert reply.status == 201, reply.json
    interaction_reads = _get_items(reads, "interactions")
    assert interaction_reads and all(interaction_reads), reads
