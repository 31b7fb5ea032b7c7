"""Figure 11: a campaign run of 1,000 recipients against in-process moto, started through the
HTTP route (chalice.test.Client) and carried to its end by the app's own consumers under the
local event pump, as Lambda would run them. Every DynamoDB, SQS and SES request from `POST
/campaigns/{id}/runs` until the pump finds nothing left to do is counted, by who made it: the
route, each part of the run (start, walk, deliver, the recommendation of each recipient and
the popular list), the other consumers the run's writes wake, and the pump's own polling
(which Lambda's event source mappings do in the cloud, unbilled as the app's requests).

The target is what the code's design allows, summed over what this run did (see ALLOWED).

Import this module only after bench.common.apply_local_env() and bench.mock.start_moto()."""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from decimal import Decimal

from bench import data
from bench.inprocess import Http
from bench.mock import (
    REGION,
    Recorder,
    all_table_names,
    clear_queues_and_mail,
    clear_tables,
    item_backups,
    keyed_queries,
    plain_json_responses,
    streams_detached,
)
from chalicelib.domain.clock import to_rfc3339

SEGMENT = "seg_01BENCHCAMPAIGN0000000000"
PRODUCTS = 20
HABIT_SKUS = 2  # each customer with habits: a repeat purchase and a product bought once
LOCALES = ("en", "sv", "sv-SE", "fi", "en-GB")
TEMPLATES = {
    "en": {
        "subject": "{{ preferred_name }}, something for you",
        "body": "Hi {{ name }}, try {{ product.name }} at {{ product.price }}.\n"
        "Unsubscribe: {{ unsubscribe_url }}",
    },
    "sv": {
        "subject": "{{ preferred_name }}, något för dig",
        "body": "Hej {{ name }}, prova {{ product.name }} för {{ product.price }}.\n"
        "Avregistrera: {{ unsubscribe_url }}",
    },
}

# Who made a request: the route, the parts of the run, and the pump.
ROUTE = "route POST /campaigns/{id}/runs"
START, WALK, DELIVER = "run: start", "run: walk", "run: deliver"
RECOMMENDATION, POPULAR = "run: deliver, recommendation", "run: deliver, popular list"
RUN_PARTS = (ROUTE, START, WALK, DELIVER, RECOMMENDATION, POPULAR)
QUEUED = "start_campaign_runs"  # the campaigns stream's consumer: queues the start
POLLER = "event pump (polling)"

# DynamoDB requests the design allows (services/campaign_runs.py, services/recommendations.py),
# per what the run did: (requests, what they are).
ALLOWED = {
    "fixed": (
        5,
        "route: GetItem campaign + TransactWriteItems run; start: GetItem run + TransactWriteItems "
        "running; completion: TransactWriteItems",
    ),
    "walk page": (
        6,
        "GetItem run + GetItem page plan + Query of the member shard + TransactWriteItems (plan "
        "+ count) + UpdateItem (plan queued) + BatchGetItem of the run's counters (the shard's "
        "last page)",
    ),
    "delivery message": (
        6,
        "GetItem run + GetItem the run's campaign snapshot + BatchGetItem decisions + BatchGetItem "
        "profiles + BatchGetItem send logs (of those with consent and email) + BatchGetItem of "
        "the run's counters (is it complete?), for up to 10 customers",
    ),
    "popular list": (
        9,
        "8 Queries (a shard each of GSI by_buyers) + BatchGetItem of the catalogue: once per "
        "delivery message that has a customer without habits",
    ),
    "erased": (1, "TransactWriteItems (decision + count)"),
    "skipped": (1, "TransactWriteItems (decision + count)"),
    "sent": (
        2,
        "TransactWriteItems (claim + send log) + TransactWriteItems (sent + count + timeline "
        "entry, with the profile's ConditionCheck)",
    ),
    "recommendation": (
        4,
        "per sent customer: BatchGetItem profile + loyalty, 3 Queries of their habits (due, "
        "expected later, bought once)",
    ),
    "recommendation from habits": (
        3 + HABIT_SKUS,
        f"and with habits: BatchGetItem buyers + a Query of pairs per source SKU ({HABIT_SKUS} here) "
        "+ BatchGetItem catalogue + a Query of their returns",
    ),
}


def _mix(customers: int) -> dict[str, int]:
    """How many recipients take each path: 1% erased since they joined (members without a
    profile), 10% without marketing consent, 3% without an email address, 2% over the
    frequency cap (a send yesterday), the rest sent to."""
    erased, no_consent = customers // 100, customers // 10
    no_email, capped = customers * 3 // 100, customers // 50
    return {
        "erased": erased,
        "no_consent": no_consent,
        "no_email": no_email,
        "frequency_cap": capped,
        "sendable": customers - erased - no_consent - no_email - capped,
    }


def _catalogue(now: datetime) -> list[str]:
    """PRODUCTS products named in en and sv, each bought by some customers (so the popular
    list has them) and bought together with three others, as the loyalty consumer counts."""
    from chalicelib.domain.products import Product
    from chalicelib.store.keys import BUYERS_SK, PAIR_PREFIX, popular_pk
    from chalicelib.store.models import BuyersModel, PairModel
    from chalicelib.store.products import ProductModel
    from chalicelib.store.products import _to_model as product_model

    skus = [f"SKU-CMP-{n:02d}" for n in range(PRODUCTS)]
    with ProductModel.batch_write() as batch:
        for n, sku in enumerate(skus):
            names = {"en": f"Coffee blend {n}", "sv": f"Kaffeblandning {n}"}
            batch.save(product_model(Product(sku, names, Decimal("4.90") + n, "EUR", now, now, True, 1)))
    with BuyersModel.batch_write() as batch:
        for n, sku in enumerate(skus):
            batch.save(BuyersModel(f"PRODUCT#{sku}", BUYERS_SK, popular_pk=popular_pk(sku), buyers=500 - n))
    with PairModel.batch_write() as batch:
        for n, sku in enumerate(skus):
            for step in (1, 2, 3):
                other = skus[(n + step) % PRODUCTS]
                batch.save(
                    PairModel(f"PRODUCT#{sku}", f"{PAIR_PREFIX}{other}", pair_of=sku, co_purchases=10 - step)
                )
    return skus


def _habit_items(customer_id: str, skus: list[str], rng: random.Random, now: datetime) -> list:
    """A repeat purchase (three, about a fortnight apart) and a product bought once."""
    from chalicelib.domain import ids
    from chalicelib.domain.loyalty.habits import SkuHabit
    from chalicelib.store.loyalty_items import habit_item

    repeat, once = rng.sample(skus, HABIT_SKUS)
    first = now - timedelta(days=60 + rng.randint(0, 10))
    last = now - timedelta(days=28 + rng.randint(0, 6))
    habits = [
        SkuHabit(repeat, f"Item {repeat}", 3, 3, first, last, ids.new_id(ids.INTERACTION, last)),
        SkuHabit(once, f"Item {once}", 1, 1, last, last, ids.new_id(ids.INTERACTION, last)),
    ]
    return [habit_item(customer_id, habit, 1) for habit in habits]


def build(size: int, now: datetime, seed: int = 13) -> dict:
    """The run's data, written directly (batch writes, no stream records): the customers in
    five locales, a third of those to be sent to with purchase habits (their recommendation
    comes from them; the others get the most popular product), the send logs of the capped
    ones, the catalogue and its counts, and a segment of all of them."""
    from chalicelib.domain.segments import MEMBER_SHARDS, shard_of
    from chalicelib.store.keys import customer_pk
    from chalicelib.store.models import HabitModel
    from chalicelib.store.models.campaigns import SendLogModel

    rng = random.Random(seed)
    mix = _mix(size)
    skus = _catalogue(now)
    plan = [
        path for path in ("no_consent", "no_email", "frequency_cap", "sendable") for _ in range(mix[path])
    ]
    rng.shuffle(plan)
    entries, habits, logs = [], [], []
    for n, path in enumerate(plan):
        first, last = data.filler_name(rng), data.filler_name(rng)
        customer = data.new_customer(
            f"{first} {last}",
            data.EPOCH + timedelta(seconds=n),
            email=None if path == "no_email" else f"{first.lower()}.{n}@example.com",
            marketing_consent=path != "no_consent",
            locale=LOCALES[n % len(LOCALES)],
            preferred_name=first[:3] if n % 4 == 0 else None,
        )
        tier = None
        if path == "sendable" and n % 3 == 0:
            habits += _habit_items(customer.id, skus, rng, now)
            tier = ("silver", 45)
        if path == "frequency_cap":
            log = SendLogModel(customer_pk(customer.id), times=[to_rfc3339(now - timedelta(days=1))])
            log.version = 1  # batch writes do not set a VersionAttribute
            logs.append(log)
        entries.append((customer, tier))
    with streams_detached(all_table_names()):
        members = data.CustomerWriter().write(entries)
        with HabitModel.batch_write() as batch:
            for item in habits:
                batch.save(item)
        with SendLogModel.batch_write() as batch:
            for item in logs:
                batch.save(item)
        members += [
            data.new_customer("Gone", data.EPOCH + timedelta(days=1, seconds=n)).id
            for n in range(mix["erased"])
        ]
        rng.shuffle(members)
        data.write_segment(SEGMENT, members)
    shards = Counter(shard_of(m, MEMBER_SHARDS) for m in members)
    return {
        "members": len(members),
        "mix": mix,
        "with_habits": len(habits) // HABIT_SKUS,
        "products": len(skus),
        "members_per_shard": [shards[s] for s in range(MEMBER_SHARDS)],
    }


@contextlib.contextmanager
def _who(recorder: Recorder) -> Iterator[None]:
    """Label the requests of each part of the run (the service's entry points, the
    recommendation of a recipient and the popular list) while it runs."""
    from chalicelib.services.campaign_runs import CampaignRunService
    from chalicelib.services.recommendations import RecommendationService

    parts = [
        (CampaignRunService, "start", START),
        (CampaignRunService, "walk", WALK),
        (CampaignRunService, "deliver", DELIVER),
        (CampaignRunService, "fail_undecided", DELIVER),
        (RecommendationService, "pick", RECOMMENDATION),
        (RecommendationService, "_popular", POPULAR),
    ]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in parts]

    def labelled(method: Callable, label: str) -> Callable:
        def run(*args, **kwargs):
            previous, recorder.label = recorder.label, label
            try:
                return method(*args, **kwargs)
            finally:
                recorder.label = previous

        return run

    for (owner, name, label), (_, _, method) in zip(parts, originals, strict=True):
        setattr(owner, name, labelled(method, label))
    try:
        yield
    finally:
        for owner, name, method in originals:
            setattr(owner, name, method)


def _sent_mail() -> list:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages)


def campaign_run(
    http: Http, recorder: Recorder, recipients: int, log: Callable[[str], None], *, stock: bool = False
) -> dict:
    """The run, with moto's Query keyed, its transactions backed up item by item and its item
    responses written as plain JSON (bench.mock), unless `stock`: what moto spends on a request
    then follows what DynamoDB reads and writes for it, not the tables' size. The requests are
    the same either way."""
    if stock:
        return _campaign_run(http, recorder, recipients, log)
    with keyed_queries(), item_backups(), plain_json_responses():
        return _campaign_run(http, recorder, recipients, log)


def _campaign_run(http: Http, recorder: Recorder, recipients: int, log: Callable[[str], None]) -> dict:
    from app import app
    from chalicelib.local.pump import EventPump

    clear_tables(all_table_names())
    clear_queues_and_mail()
    built = build(recipients, datetime.now().astimezone())
    log(f"campaigns: {built['members']:,} members written; the campaign through POST /campaigns ...")
    campaign = http.request(
        "POST",
        "/campaigns",
        {
            "name": "Bench",
            "segment_id": SEGMENT,
            "status": "active",
            "templates": TEMPLATES,
            "recommendation": "any",
        },
        expect=201,
    )
    pump = EventPump(app, poll_interval=0.01)
    pump.drain()  # the campaign's own INSERT; the pump finds its streams and queues
    invocations: Counter = Counter()
    messages: Counter = Counter()
    invoke = pump.invoke

    def invoked(name: str, event: dict):
        previous, recorder.label = recorder.label, name
        invocations[name] += 1
        if name == "deliver_campaigns":
            messages.update(json.loads(r["body"])["type"] for r in event["Records"])
        try:
            return invoke(name, event)
        finally:
            recorder.label = previous

    pump.invoke = invoked  # an instance attribute: the pump's consumers call it
    log("campaigns: POST /campaigns/{id}/runs, then the pump until nothing is left ...")
    load_average = os.getloadavg()[0]
    with recorder.record() as rec, _who(recorder):
        start, cpu = time.perf_counter(), time.process_time()
        recorder.label = ROUTE
        run = http.request("POST", f"/campaigns/{campaign['id']}/runs", {}, expect=202)
        recorder.label = POLLER
        try:
            pump.drain(timeout=600)
        finally:
            recorder.label = None
        wall_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu
    result = http.get(f"/campaigns/{campaign['id']}/runs/{run['id']}")
    if result["status"] != "completed":
        raise AssertionError(f"the run did not complete: {result}")
    figures = _figures(built, result, rec, dict(invocations), dict(messages), wall_s)
    # moto runs in this process: its work is in the CPU time too.
    return figures | {"cpu_s": round(cpu_s, 1), "load_average_before": round(load_average, 2)}


def _design(members_per_shard: list[int]) -> dict[str, int]:
    """The queue messages the design makes for shards of these sizes: a start; per shard, walk
    pages of WALK_PAGE members, each queuing a delivery per DELIVER_BATCH customers (and the
    next page), in SendMessageBatch requests of 10."""
    from chalicelib.services.campaign_runs import DELIVER_BATCH, WALK_PAGE

    pages = deliveries = batches = 0
    for members in members_per_shard:
        sizes = [min(WALK_PAGE, members - start) for start in range(0, members, WALK_PAGE)] or [0]
        for n, size in enumerate(sizes):
            page_deliveries = math.ceil(size / DELIVER_BATCH)
            next_page = int(n < len(sizes) - 1)
            pages += 1
            deliveries += page_deliveries
            batches += math.ceil((page_deliveries + next_page) / 10)
    return {
        "walk pages": pages,
        "delivery messages": deliveries,
        "messages": 1 + pages + deliveries,
        # SendMessage of the start, SendMessageBatch of the first walk pages, then the pages'.
        "sqs requests": 1 + math.ceil(len(members_per_shard) / 10) + batches,
    }


def _per(count: float, of: int) -> float:
    return round(count / of, 3) if of else 0.0


def _figures(built: dict, result: dict, rec, invocations: dict, messages: dict, wall_s: float) -> dict:
    calls: dict[str, dict[str, Counter]] = {}
    for (label, service, operation), count in rec.labelled.items():
        calls.setdefault(label, {}).setdefault(service, Counter())[operation] += count

    def requests(labels, service: str) -> Counter:
        found: Counter = Counter()
        for label in labels:
            found.update(calls.get(label, {}).get(service, Counter()))
        return found

    recipients, sent = result["targeted"], result["sent"]
    app_labels = (*RUN_PARTS, QUEUED, "deliver_campaigns")
    dynamodb, sqs, ses = (requests(app_labels, s) for s in ("dynamodb", "sqs", "ses"))
    mail = _sent_mail()
    design = _design(built["members_per_shard"])
    allowed = _allowed(built, result, design)
    return {
        "recipients": recipients,
        "data": built,
        "run": {key: result[key] for key in ("status", "targeted", "sent", "skipped", "failed")},
        "sent": sent,
        "skipped": sum(result["skipped"].values()),
        "failed": result["failed"],
        "ses_messages": len(mail),
        "ses_recipients": len({tuple(m.destinations) for m in mail}),
        "wall_s": round(wall_s, 1),
        "recipients_per_second": round(recipients / wall_s, 1),
        "seconds_in_requests": {service: round(s, 1) for service, s in rec.seconds.items()},
        "design": design,
        "dynamodb": {
            "requests": sum(dynamodb.values()),
            "per_recipient": _per(sum(dynamodb.values()), recipients),
            "operations": dict(dynamodb),
            "allowed": allowed["total"],
            "allowed_per_recipient": _per(allowed["total"], recipients),
            "allowed_by_part": allowed["parts"],
            "by_part": {label: dict(requests([label], "dynamodb")) for label in RUN_PARTS},
        },
        "sqs": {
            "requests": sum(sqs.values()),
            "per_recipient": _per(sum(sqs.values()), recipients),
            "operations": dict(sqs),
            # and a GetQueueUrl for the queue client (once per Lambda container; here one)
            "allowed": design["sqs requests"] + 1,
            "messages": messages,
            "messages_per_recipient": _per(sum(messages.values()), recipients),
        },
        "ses": {
            "requests": sum(ses.values()),
            "per_sent": _per(sum(ses.values()), sent),
            "operations": dict(ses),
        },
        "pump": {service: dict(ops) for service, ops in calls.get(POLLER, {}).items()},
        "invocations": invocations,
        "other_consumers": {
            label: {service: dict(ops) for service, ops in services.items()}
            for label, services in calls.items()
            if label not in (*app_labels, POLLER)
        },
        "waste": _waste(requests, recipients, messages.get("deliver", 0), sent),
    }


def _allowed(built: dict, result: dict, design: dict) -> dict:
    skipped, sent = result["skipped"], result["sent"]
    with_habits = min(built["with_habits"], sent)
    counts = {
        "fixed": 1,
        "walk page": design["walk pages"],
        "delivery message": design["delivery messages"],
        # at most once per delivery message, when some customer has no habits
        "popular list": design["delivery messages"] if sent > with_habits else 0,
        "erased": skipped["erased"],
        "skipped": sum(skipped.values()) - skipped["erased"],
        "sent": sent,
        "recommendation": sent,
        "recommendation from habits": with_habits,
    }
    parts = {part: counts[part] * ALLOWED[part][0] for part in ALLOWED}
    return {"parts": parts, "total": sum(parts.values())}


def _waste(requests: Callable, recipients: int, deliveries: int, sent: int) -> list[str]:
    """Where the data model allows fewer requests than the code makes, with this run's numbers."""
    return [
        f"recommendations: each sent customer's profile is read again with their loyalty item "
        f"(a BatchGetItem each, {sent:,}) after the delivery's BatchGetItem of the profiles; the "
        f"loyalty items could join that one (same table, <= 100 keys): -{sent / recipients:.2f} "
        "per recipient",
    ]
