"""The store's one translation of DynamoDB's item-size refusal, in each shape it takes: a Put
over 400 KB is refused as a ValidationException of the whole request, an Update that grows an
item past it as a cancelled transaction (DynamoDB Local) or a ValidationException (moto)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pynamodb.exceptions import DoesNotExist, TransactWriteError

from chalicelib.config import get_settings
from chalicelib.domain.interactions import Interaction
from chalicelib.errors import TooLargeToStore
from chalicelib.store.interactions import interaction_item as _to_model
from chalicelib.store.models import InteractionModel
from chalicelib.store.transactions import transaction

AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def _visit(interaction_id: str, note: str = "") -> InteractionModel:
    return _to_model(
        Interaction(
            id=interaction_id,
            customer_id="cus_size",
            type="visit",
            channel="store",
            occurred_at=AT,
            created_at=AT,
            note=note,
        )
    )


def _exists(interaction_id: str) -> bool:
    try:
        InteractionModel.get("cus_size", interaction_id, consistent_read=True)
    except DoesNotExist:
        return False
    return True


def test_a_put_over_400_kb_is_too_large_to_store_and_the_transaction_writes_nothing(tables):
    region = get_settings().region
    with (
        pytest.raises(TooLargeToStore, match="the visit is too big") as refused,
        transaction(region, "the visit is too big") as t,
    ):
        t.save(_visit("int_small"))
        t.save(_visit("int_big", "ø" * 210_000))  # 420,000 bytes of UTF-8
    assert refused.value.status == 422
    assert not _exists("int_small") and not _exists("int_big")


def test_an_update_that_grows_an_item_past_400_kb_is_too_large_to_store(tables):
    region = get_settings().region
    with transaction(region) as t:
        t.save(_visit("int_growing", "x" * 300_000))
    grown = _visit("int_growing")
    grown.version = 1
    with (
        pytest.raises(TooLargeToStore, match="larger than DynamoDB's 400 KB item limit"),
        transaction(region) as t,
    ):
        t.save(_visit("int_beside"))
        t.update(grown, actions=[InteractionModel.text.set("y" * 200_000)])
    assert InteractionModel.get("cus_size", "int_growing").text is None
    assert not _exists("int_beside")


def test_a_failed_condition_is_not_taken_for_a_size_refusal(tables):
    region = get_settings().region
    with transaction(region) as t:
        t.save(_visit("int_once"))
    with pytest.raises(TransactWriteError) as failed, transaction(region) as t:
        t.save(_visit("int_once"), condition=InteractionModel.id.does_not_exist())
    assert failed.value.cause_response_code == "TransactionCanceledException"
