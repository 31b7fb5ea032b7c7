"""The start of a merge (store/merges.py): one transaction within DynamoDB's 100 items, what it
leaves to the job when a profile has more lookup items than fit, and one winner among merges
racing for a customer."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import botocore.client
import pytest

from chalicelib import wiring
from chalicelib.domain.audit import Actor
from chalicelib.domain.customers import Customer
from chalicelib.errors import Conflict
from chalicelib.store import merges as merge_store
from chalicelib.store.customer_items import token_items
from chalicelib.store.keys import MERGE_SK, merge_pk
from chalicelib.store.models import EmailLookupModel, MergeModel, NameTokenModel

STAFF = Actor("staff-1", "staff", "POST /customers/{customer_id}/merge")
AT = datetime(2026, 6, 1, tzinfo=UTC)

FINNISH = "Aino Eeva Helmi Ilona Johanna Kaisa Liisa Maria Noora Oona Pirjo Riikka Sanna Tuula Ulla Vilja"
SWEDISH = (
    "Åsa Birgitta Cecilia Dagny Ebba Frida Greta Hedvig Ingrid Tyra Karin Linnea Maja Nora Ottilia Signe"
)


def _add(customer_id: str, name: str, preferred: str, emails: list[str], phones: list[str]) -> Customer:
    customer = Customer(
        id=customer_id,
        name=name,
        preferred_name=preferred,
        email=emails[0],
        phone=phones[0],
        secondary_emails=tuple(emails[1:]),
        secondary_phones=tuple(phones[1:]),
        created_at=AT,
        updated_at=AT,
    )
    customers, _ = wiring.repositories()
    return customers.add(customer)


def _transaction_sizes(monkeypatch) -> list[int]:
    sizes: list[int] = []
    original = botocore.client.BaseClient._make_api_call

    def counting(self, operation, params):
        if operation == "TransactWriteItems":
            sizes.append(len(params["TransactItems"]))
        return original(self, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", counting)
    return sizes


def _pair() -> tuple[Customer, Customer]:
    # As many lookup items as profiles have: 20 search words each (the most indexed), all
    # different, so choosing the merged name replaces every one; 6 addresses and numbers.
    survivor = _add(
        "cus_survivor",
        FINNISH,
        "Katariina Saara Tiina Venla",
        ["s0@example.fi", "s1@example.fi"],
        ["+358401110000"],
    )
    merged = _add(
        "cus_merged",
        SWEDISH,
        "Astrid Bodil Elsa Lova",
        ["m0@example.se", "m1@example.se", "m2@example.se"],
        ["+46701110000", "+46701110001"],
    )
    assert len(survivor.search_words) == len(merged.search_words) == 20
    return survivor, merged


def _lookup_exists(token: NameTokenModel) -> bool:
    return NameTokenModel.count(token.pk, NameTokenModel.sk == token.sk, consistent_read=True) == 1


def test_the_largest_start_is_one_transaction_within_100_items_and_leaves_no_lookup_of_the_merged(
    tables, monkeypatch
):
    survivor, merged = _pair()
    sizes = _transaction_sizes(monkeypatch)
    started = wiring.merge_service().start(survivor.id, merged.id, {"name": "merged"}, STAFF)
    assert len(sizes) == 1 and sizes[0] <= 100, sizes
    item = MergeModel.get(merge_pk(started.id), MERGE_SK)
    left = {(k.pk, k.sk) for k in item.stale_lookups or ()}
    for token in token_items(merged):
        assert _lookup_exists(token) == ((token.pk, token.sk) in left)
    after = wiring.customer_service().get(survivor.id)
    assert after.name == SWEDISH and len(after.email_keys) == 5
    for key in merged.email_keys:
        assert EmailLookupModel.get(f"EMAIL#{key}", "EMAIL").customer_id == survivor.id


def test_lookup_items_beyond_the_transactions_room_are_named_for_the_job_and_the_rest_go(tables, monkeypatch):
    survivor, merged = _pair()
    monkeypatch.setattr(merge_store, "TRANSACTION_ITEMS", 60)
    sizes = _transaction_sizes(monkeypatch)
    started = wiring.merge_service().start(survivor.id, merged.id, {"name": "merged"}, STAFF)
    assert sizes == [60]  # no claim: the request has no Idempotency-Key
    left = [(k.pk, k.sk) for k in MergeModel.get(merge_pk(started.id), MERGE_SK).stale_lookups]
    tokens = token_items(merged)
    assert 0 < len(left) < len(tokens)
    for token in tokens:
        assert _lookup_exists(token) == ((token.pk, token.sk) in left)


@pytest.mark.dynamodb_local
def test_of_merges_racing_for_one_customer_exactly_one_starts(tables):
    service = wiring.customer_service()
    ids = [service.create({"name": f"Urška Novak {i}"}, STAFF).id for i in range(4)]
    a, b, c, d = ids
    asked = [(a, b), (a, c), (d, a), (c, a)]

    def start(pair: tuple[str, str]) -> str:
        try:
            wiring.merge_service().start(*pair, {}, STAFF)
        except Conflict:
            return "refused"
        return "started"

    with ThreadPoolExecutor(len(asked)) as pool:
        outcomes = list(pool.map(start, asked))
    assert sorted(outcomes) == ["refused", "refused", "refused", "started"]
