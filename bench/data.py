"""Data for the benchmarks, written straight into the tables with PynamoDB batch writes (moto
copies whole tables on every TransactWriteItems, so bulk data never goes through the API), and
DynamoDB stream records in the shape Lambda delivers them."""

from __future__ import annotations

import json
import random
import string
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from chalicelib.config import get_settings
from chalicelib.domain import ids
from chalicelib.domain.customers import Customer
from chalicelib.domain.interactions import Interaction, LineItem
from chalicelib.domain.loyalty.aggregates import Aggregates
from chalicelib.domain.loyalty.scoring import Score
from chalicelib.store.customer_items import customer_item as customer_model
from chalicelib.store.customer_items import token_items
from chalicelib.store.interactions import interaction_item as interaction_model
from chalicelib.store.loyalty_items import loyalty_item
from chalicelib.store.models import (
    CustomerModel,
    InteractionModel,
    LoyaltyModel,
    MembershipModel,
    NameTokenModel,
    SegmentModel,
)

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
# Filler names never start with this letter, so the search query's partition holds only the
# fixed set, whatever the table's size.
QUERY_INITIAL = "v"
_FILLER_INITIALS = [c for c in string.ascii_lowercase if c != QUERY_INITIAL]


def new_customer(name: str, at: datetime, **fields) -> Customer:
    return Customer(
        id=ids.new_id(ids.CUSTOMER, at), name=name, created_at=at, updated_at=at, version=1, **fields
    )


def loyalty_model(customer_id: str, tier: str, score: int) -> LoyaltyModel:
    scored = Score(
        recency_days=None, recency_score=0, frequency_score=0, monetary_score=0, score=score, tier=tier
    )
    item = loyalty_item(customer_id, Aggregates(), scored, None, EPOCH)
    item.version = 1  # batch writes do not set a VersionAttribute; Model.save would
    return item


def new_interaction(customer_id: str, at: datetime, kind: str = "visit", **fields) -> Interaction:
    return Interaction(
        id=ids.new_id(ids.INTERACTION, at),
        customer_id=customer_id,
        type=kind,
        channel="web",
        occurred_at=at,
        created_at=at,
        version=1,
        **fields,
    )


def new_purchase(customer_id: str, at: datetime, sku: str, price: str) -> Interaction:
    return new_interaction(
        customer_id,
        at,
        "purchase",
        currency="EUR",
        items=(LineItem(sku, f"Item {sku}", 1, Decimal(price)),),
    )


class CustomerWriter:
    """Batch-writes profiles, their name-search entries and loyalty items; counts the items."""

    def __init__(self) -> None:
        self.items = 0

    def write(self, entries: Iterable[tuple[Customer, tuple[str, int] | None]]) -> list[str]:
        written = []
        with (
            CustomerModel.batch_write() as profiles,
            NameTokenModel.batch_write() as tokens,
            LoyaltyModel.batch_write() as loyalty,
        ):
            for customer, tier in entries:
                profiles.save(customer_model(customer))
                self.items += 1
                for token in token_items(customer):
                    tokens.save(token)
                    self.items += 1
                if tier is not None:
                    loyalty.save(loyalty_model(customer.id, *tier))
                    self.items += 1
                written.append(customer.id)
        return written


def write_interactions(interactions: Iterable[Interaction]) -> int:
    count = 0
    with InteractionModel.batch_write() as batch:
        for interaction in interactions:
            batch.save(interaction_model(interaction))
            count += 1
    return count


def write_segment(segment_id: str, members: list[str]) -> None:
    """A segment with these members (items written directly, as the consumer would leave them)."""
    from chalicelib.domain.clock import to_rfc3339
    from chalicelib.domain.segments import MEMBER_SHARDS, shard_of
    from chalicelib.store.keys import customer_pk, membership_sk

    joined = to_rfc3339(EPOCH)
    definition = SegmentModel(
        sk=segment_id,
        name="Bench",
        rules='{"never_purchased": true}',
        status="ready",
        build=1,
        created_at=joined,
        updated_at=joined,
    )
    definition.save()  # version 1
    with MembershipModel.batch_write() as batch:
        for customer_id in members:
            batch.save(
                MembershipModel(
                    customer_pk(customer_id),
                    membership_sk(segment_id),
                    segment_id=segment_id,
                    customer_id=customer_id,
                    member_pk=f"{segment_id}#{shard_of(customer_id, MEMBER_SHARDS)}",
                    joined_at=joined,
                )
            )


SCALE_PRODUCT = "SKU-BENCH-0"
SCALE_PARTNERS = 30  # products bought with SCALE_PRODUCT: fixed at every size


def write_related_products() -> None:
    """A product bought with SCALE_PARTNERS others (counts written directly, as the loyalty
    consumer would leave them), all in the catalogue."""
    from chalicelib.domain.products import Product
    from chalicelib.store.keys import BUYERS_SK, PAIR_PREFIX, popular_pk
    from chalicelib.store.models import BuyersModel, PairModel
    from chalicelib.store.products import ProductModel
    from chalicelib.store.products import _to_model as product_model

    skus = [f"SKU-BENCH-{n}" for n in range(SCALE_PARTNERS + 1)]
    with ProductModel.batch_write() as batch:
        for sku in skus:
            batch.save(
                product_model(
                    Product(sku, {"en": f"Bench {sku}"}, Decimal("9.90"), "EUR", EPOCH, EPOCH, True, 1)
                )
            )
    BuyersModel(
        f"PRODUCT#{SCALE_PRODUCT}", BUYERS_SK, popular_pk=popular_pk(SCALE_PRODUCT), buyers=100
    ).save()
    with PairModel.batch_write() as batch:
        for n, other in enumerate(skus[1:]):
            batch.save(
                PairModel(
                    f"PRODUCT#{SCALE_PRODUCT}",
                    f"{PAIR_PREFIX}{other}",
                    pair_of=SCALE_PRODUCT,
                    co_purchases=2 + n,
                )
            )


def filler_name(rng: random.Random) -> str:
    """One word (one search entry) that does not start with the query's initial."""
    return rng.choice(_FILLER_INITIALS).upper() + "".join(
        rng.choice(string.ascii_lowercase) for _ in range(rng.randint(5, 9))
    )


def filler_customers(
    rng: random.Random, items: int, start: datetime
) -> Iterator[tuple[Customer, tuple | None]]:
    """Customers worth exactly `items` items of the customers table: profile + one name entry +
    a loyalty item (bronze, silver or gold; never the measured tier) each, a lone profile for
    the remainder."""
    made = 0
    i = 0
    while made < items:
        at = start + timedelta(seconds=i)
        i += 1
        if items - made >= 3:
            tier = rng.choice((("bronze", rng.randint(0, 39)), ("silver", rng.randint(40, 59)), ("gold", 60)))
            yield new_customer(filler_name(rng), at), tier
            made += 3
        else:
            # A profile whose name has no search word (a single letter), so exactly one item.
            yield new_customer("X", at), None
            made += 1


def filler_interactions(count: int, per_customer: int, start: datetime) -> Iterator[Interaction]:
    customer_id = ""
    for i in range(count):
        if i % per_customer == 0:
            customer_id = ids.new_id(ids.CUSTOMER, start + timedelta(seconds=i))
        yield new_interaction(customer_id, start + timedelta(minutes=i), note=f"note {i}")


def stream_record(interaction: Interaction, sequence: int) -> dict:
    """An INSERT record of the interactions stream as Lambda delivers it (NEW_AND_OLD_IMAGES)."""
    image = interaction_model(interaction).serialize()
    keys = {"customer_id": image["customer_id"], "id": image["id"]}
    return {
        "eventID": uuid.uuid4().hex,
        "eventName": "INSERT",
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": get_settings().region,
        "dynamodb": {
            "ApproximateCreationDateTime": int(interaction.created_at.timestamp()),
            "Keys": keys,
            "NewImage": image,
            "SequenceNumber": f"{sequence:021d}",
            "SizeBytes": len(json.dumps(image)),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
        "eventSourceARN": get_settings().interactions_stream_arn,
    }


def purchase_batch(
    customer_ids: list[str], per_customer: int, first_sequence: int, at: datetime
) -> list[dict]:
    """per_customer purchases of each customer (fresh interaction ids), interleaved as a shard
    would deliver them."""
    records = []
    sequence = first_sequence
    for n in range(per_customer):
        for customer_id in customer_ids:
            purchase = new_purchase(customer_id, at - timedelta(hours=n), f"SKU-{n % 4}", "4.50")
            records.append(stream_record(purchase, sequence))
            sequence += 1
    return records


# -- the scale data set --------------------------------------------------------------------

# The members page's segment: every customer of the small size, at both sizes (so the table
# grows a hundredfold around a segment of the same size).
SCALE_SEGMENT = "seg_01BENCH000000000000000000"
SCALE_FIXED_SET = 40  # customers found by the search and listed by the tier: fixed at every size
SCALE_TIMELINE = 100  # the target customer's interactions: fixed at every size


class ScaleData:
    """The data of the scale figures, on any backend: a target customer with SCALE_TIMELINE
    interactions, SCALE_FIXED_SET platinum customers named "Vik…", and filler up to `small`
    items per table (`write_small`), then more filler up to `large` (`grow`)."""

    def __init__(self, seed: int = 11) -> None:
        self.rng = random.Random(seed)
        self.writer = CustomerWriter()
        self.target = ""
        self.interactions = 0

    def write_small(self, small: int) -> str:
        rng = self.rng
        target = new_customer("Target Kund", EPOCH)
        self.writer.write([(target, None)])
        fixed = self.writer.write(
            (
                new_customer(
                    f"Vik{''.join(rng.choice('abcdefghijklmnopqrstuwxyz') for _ in range(4))} "
                    + filler_name(rng),
                    EPOCH + timedelta(seconds=i),
                ),
                ("platinum", 80 + i % 20),
            )
            for i in range(SCALE_FIXED_SET)
        )
        filler = self.writer.write(
            filler_customers(rng, small - self.writer.items, EPOCH + timedelta(days=1))
        )
        write_segment(SCALE_SEGMENT, [target.id, *fixed, *filler])
        write_related_products()
        self.interactions += write_interactions(
            new_interaction(target.id, EPOCH - timedelta(hours=i), note=f"note {i}")
            for i in range(SCALE_TIMELINE)
        )
        self.interactions += write_interactions(filler_interactions(small - SCALE_TIMELINE, 100, EPOCH))
        self.target = target.id
        return target.id

    def grow(self, small: int, large: int, workers: int = 1, customers_too: bool = True) -> None:
        """More filler up to `large` items per table (only the interactions table without
        `customers_too`). With `workers` > 1 the items are made in one thread (the same items
        whatever `workers` is) and written by `workers` threads, for a server that serves
        requests in parallel (DynamoDB Local; not in-process moto)."""
        customers = filler_customers(
            self.rng, large - small if customers_too else 0, EPOCH + timedelta(days=30)
        )
        interactions = filler_interactions(large - small, 100, EPOCH + timedelta(days=30))
        if workers <= 1:
            self.writer.write(customers)
            self.interactions += write_interactions(interactions)
            return
        from concurrent.futures import ThreadPoolExecutor

        customer_parts = _slices(list(customers), workers) if customers_too else []
        interaction_parts = _slices(list(interactions), workers)
        writers = [CustomerWriter() for _ in customer_parts]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            done = [pool.submit(w.write, part) for w, part in zip(writers, customer_parts, strict=True)]
            done += [pool.submit(write_interactions, part) for part in interaction_parts]
            for future in done:
                future.result()
        self.writer.items += sum(w.items for w in writers)
        self.interactions += sum(len(part) for part in interaction_parts)


def _slices(items: list, count: int) -> list[list]:
    size = max(1, -(-len(items) // count))
    return [items[i : i + size] for i in range(0, len(items), size)]
