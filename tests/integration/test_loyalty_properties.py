"""Property: whatever the order and duplication of a customer's stream records, the stored
aggregates equal those computed from scratch from the interactions that still exist."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.domain.customers import Customer
from chalicelib.domain.loyalty.aggregates import from_scratch
from chalicelib.events.loyalty import handle_batch, read_image

_ids = itertools.count()
START = datetime(2026, 1, 1, tzinfo=UTC)


def _image(customer_id: str, interaction: dict, version: int) -> dict:
    image = {
        "customer_id": {"S": customer_id},
        "id": {"S": interaction["id"]},
        "type": {"S": interaction["type"]},
        "channel": {"S": "web"},
        "occurred_at": {"S": interaction["occurred_at"]},
        "created_at": {"S": interaction["occurred_at"]},
        "version": {"N": str(version)},
    }
    if interaction["type"] in ("purchase", "return"):
        image |= {
            "currency": {"S": "EUR"},
            "amount": {"S": interaction["amount"]},
            "items": {
                "L": [
                    {
                        "M": {
                            "sku": {"S": interaction["sku"]},
                            "name": {"S": interaction["sku"].title()},
                            "quantity": {"N": "1"},
                            "unit_price": {"S": interaction["amount"]},
                        }
                    }
                ]
            },
        }
    return image


def _record(customer_id: str, interaction: dict, name: str, version: int, sequence: int) -> dict:
    keys = {"customer_id": {"S": customer_id}, "id": {"S": interaction["id"]}}
    data = {"Keys": keys, "SequenceNumber": str(sequence), "StreamViewType": "NEW_AND_OLD_IMAGES"}
    if name != "REMOVE":
        data["NewImage"] = _image(customer_id, interaction, version)
    if name != "INSERT":
        data["OldImage"] = _image(customer_id, interaction, version if name == "REMOVE" else version - 1)
    return {"eventID": f"e{sequence}", "eventName": name, "eventSource": "aws:dynamodb", "dynamodb": data}


interactions = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.sampled_from(["purchase", "purchase", "return", "visit"]),
            "sku": st.sampled_from(["kaffe", "te", "bok"]),
            "day": st.integers(0, 300),
            "amount": st.decimals(min_value=0, max_value=500, places=2).map(str),
            "modified": st.booleans(),
            "removed": st.booleans(),
        }
    ),
    min_size=1,
    max_size=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(interactions=interactions, data=st.data())
def test_any_order_and_duplication_gives_the_aggregates_computed_from_scratch(tables, interactions, data):
    from chalicelib import wiring
    from chalicelib.domain.loyalty.contributions import contribution_of

    customers, _ = wiring.repositories()
    customer_id = f"cus_PROP{next(_ids)}"
    customers.add(Customer(id=customer_id, name="Prop", created_at=START, updated_at=START))
    records, alive = [], []
    sequence = itertools.count(1)
    for n, spec in enumerate(interactions):
        interaction = spec | {
            "id": f"int_{n:04d}",
            "occurred_at": (START + timedelta(days=spec["day"])).isoformat(),
        }
        records.append(_record(customer_id, interaction, "INSERT", 1, next(sequence)))
        version = 1
        if spec["modified"]:
            version = 2
            records.append(_record(customer_id, interaction, "MODIFY", 2, next(sequence)))
        if spec["removed"]:
            records.append(_record(customer_id, interaction, "REMOVE", version, next(sequence)))
        else:
            alive.append(_image(customer_id, interaction, version))
    delivered = data.draw(
        st.permutations(records + data.draw(st.lists(st.sampled_from(records), max_size=6)))
    )
    cut = data.draw(st.integers(0, len(delivered)))
    for batch in (delivered[:cut], delivered[cut:]):
        if batch:
            assert handle_batch({"Records": batch}, None) == {"batchItemFailures": []}

    stored = wiring.loyalty_repository().with_all_habits(customer_id)
    expected = from_scratch(c for c in (contribution_of(read_image(i)) for i in alive) if c is not None)
    assert (stored.aggregates if stored else from_scratch([])) == expected
    if stored:
        assert sum(stored.aggregates.net_spend.values(), Decimal(0)) == sum(
            expected.net_spend.values(), Decimal(0)
        )
