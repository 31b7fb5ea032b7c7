"""Figures 2–5 (all but packaging): the app through chalice.test.Client and the loyalty consumer
against in-process moto, counted and timed with bench.mock's instruments."""

from __future__ import annotations

import copy
import os
import random
import time
from collections.abc import Callable
from datetime import timedelta

import boto3

from bench import data
from bench.common import ROOT, interleaved, median, ms
from bench.mock import (
    REGION,
    Recorder,
    clear_tables,
    install,
    item_count,
    keyed_queries,
    moto_table,
    snapshot,
    streams_detached,
    trim_streams,
)
from chalicelib.config import get_settings


class Http:
    """HTTP through chalice.test.Client as a staff member (tests/conftest.py's token())."""

    def __init__(self) -> None:
        from chalice.test import Client

        from app import app
        from chalicelib.auth import issue_token

        settings = get_settings()
        token = issue_token(
            settings.jwt_secret, "bench", "staff", issuer=settings.jwt_issuer, audience=settings.jwt_audience
        )
        self._headers = {"Authorization": f"Bearer {token}"}
        self._client = Client(app, stage_name="local", project_dir=str(ROOT))

    def request(self, method: str, path: str, body: dict | None = None, expect: int = 200) -> dict | None:
        import json

        headers = dict(self._headers)
        raw = b""
        if body is not None:
            headers["Content-Type"] = "application/json"
            raw = json.dumps(body, ensure_ascii=False).encode()
        response = self._client.http.request(method, path, headers=headers, body=raw)
        if response.status_code != expect:
            raise AssertionError(f"{method} {path}: {response.status_code} {response.body[:300]!r}")
        return json.loads(response.body) if response.body else None

    def get(self, path: str, expect: int = 200) -> dict | None:
        return self.request("GET", path, expect=expect)


def lambda_context(function_name: str):
    from chalicelib.local.lambda_events import LambdaContext

    return LambdaContext(
        function_name=function_name,
        memory_limit_in_mb=512,
        invoked_function_arn=f"arn:aws:lambda:{REGION}:123456789012:function:crm-local-{function_name}",
        timeout_ms=30_000,
    )


def consume(records: list[dict]) -> dict:
    from chalicelib.events.loyalty import handle_batch

    result = handle_batch({"Records": records}, lambda_context("update_loyalty"))
    if result != {"batchItemFailures": []}:
        raise AssertionError(f"loyalty consumer reported failures: {result}")
    return result


# -- 2. DynamoDB requests per operation ---------------------------------------------------

PURCHASE = {
    "type": "purchase",
    "channel": "store",
    "currency": "EUR",
    "items": [{"sku": "SKU-COFFEE-500", "name": "Kaffe 500 g", "quantity": 2, "unit_price": "4.50"}],
}

# (figure, design minimum, why)
MINIMUMS: dict[str, tuple[int, str]] = {
    "create customer": (
        7,
        "duplicate detection before the write (a Query per number, mailbox and name key, one per "
        "name word: 5; 1 BatchGetItem of the candidates' profiles) + 1 TransactWriteItems: profile + "
        "email entry + name entries + detection lookups (+ the possible-duplicates item), atomically",
    ),
    "get customer (with loyalty)": (
        1,
        "1 BatchGetItem: the profile and the loyalty item share the partition CUSTOMER#<id>",
    ),
    "update customer": (
        2,
        "GetItem (version, old email and name entries) + 1 TransactWriteItems",
    ),
    "add purchase": (
        1,
        "1 TransactWriteItems: its ConditionCheck on the profile proves the customer exists",
    ),
    "timeline page": (2, "GetItem (customer exists, for 404) + 1 Query"),
    "name search": (2, "1 Query NAME#<2 letters> begins_with + 1 BatchGetItem of the page's profiles"),
    "tier listing": (2, "1 Query GSI by_tier + 1 BatchGetItem of the page's profiles"),
    "stream batch (100 records, 10 customers)": (
        12,
        "2 BatchGetItem (10 aggregates, 100 guards, 40 habits: ≤100 keys each) + 10 TransactWriteItems "
        "(one per customer: aggregates + touched habits + guards + profile check)",
    ),
}


def request_counts(http: Http, recorder: Recorder) -> dict:
    clear_tables()
    rng = random.Random(2)
    writer = data.CustomerWriter()
    # Matches for the name search (q=asa) and a gold tier to list, and 10 customers for the
    # stream batch; all written directly.
    writer.write(
        (data.new_customer(f"Åsa {data.filler_name(rng)}", data.EPOCH + timedelta(seconds=i)), None)
        for i in range(30)
    )
    writer.write(
        (data.new_customer(data.filler_name(rng), data.EPOCH + timedelta(seconds=i)), ("gold", 60 + i))
        for i in range(30)
    )
    stream_customers = writer.write(
        (data.new_customer(data.filler_name(rng), data.EPOCH), None) for _ in range(10)
    )
    sequence = [1]

    def stream_batch(_state: dict) -> None:
        records = data.purchase_batch(stream_customers, 10, sequence[0], data.EPOCH)
        sequence[0] += len(records)
        consume(records)

    def create(state: dict) -> None:
        n = state["n"]
        body = {
            "name": "Åsa Öberg",
            "email": f"asa.oberg.{n}@example.com",
            "phone": "+46701234567",
            "locale": "sv",
        }
        state["id"] = http.request("POST", "/customers", body, expect=201)["id"]

    operations: list[tuple[str, Callable[[dict], object]]] = [
        ("create customer", create),
        ("get customer (with loyalty)", lambda s: http.get(f"/customers/{s['id']}")),
        ("update customer", lambda s: http.request("PATCH", f"/customers/{s['id']}", {"locale": "sv-SE"})),
        (
            "add purchase",
            lambda s: http.request("POST", f"/customers/{s['id']}/interactions", PURCHASE, expect=201),
        ),
        ("timeline page", lambda s: http.get(f"/customers/{s['id']}/interactions?limit=25")),
        ("name search", lambda s: http.get("/customers?q=asa&limit=25")),
        ("tier listing", lambda s: http.get("/customers?tier=gold&limit=25")),
        ("stream batch (100 records, 10 customers)", stream_batch),
    ]
    passes: list[dict[str, dict]] = []
    for n in range(2):
        state = {"n": n}
        figures = {}
        for name, operation in operations:
            if name == "timeline page":
                # 40 interactions for the page to cut, written directly.
                data.write_interactions(
                    data.new_interaction(state["id"], data.EPOCH - timedelta(hours=i)) for i in range(40)
                )
            trim_streams()  # moto copies stream records with the table on each transaction
            with recorder.record() as rec:
                operation(state)
            figures[name] = {"total": rec.total(), "operations": dict(rec.operations())}
            if "Scan" in rec.operations():
                figures[name]["scan"] = True
        passes.append(figures)
    first, warm = passes
    rows = {}
    for name, figures in warm.items():
        minimum, why = MINIMUMS[name]
        describe = first[name]["operations"].get("DescribeTable", 0)
        rows[name] = {
            **figures,
            "minimum": minimum,
            "why": why,
            "first_call_in_process_extra": {
                op: count - figures["operations"].get(op, 0)
                for op, count in first[name]["operations"].items()
                if count != figures["operations"].get(op, 0)
            },
            "describe_table_first_call": describe,
        }
    return rows


# -- 3. Handler overhead ------------------------------------------------------------------


def handler_overhead(http: Http, recorder: Recorder, iterations: int, warmup: int) -> dict:
    clear_tables()
    settings = get_settings()
    customer = data.new_customer("Åsa Öberg", data.EPOCH, email="asa@example.com", locale="sv")
    data.CustomerWriter().write([(customer, ("silver", 45))])
    data.write_interactions(
        data.new_interaction(customer.id, data.EPOCH - timedelta(hours=i), note=f"note {i}")
        for i in range(60)
    )
    raw = boto3.client("dynamodb", region_name=REGION)
    pk = {"S": f"CUSTOMER#{customer.id}"}
    # The very requests PynamoDB sends (it asks for the consumed capacity, which moto computes).
    same = {"ConsistentRead": False, "ReturnConsumedCapacity": "TOTAL"}

    def raw_get() -> None:
        keys = [{"pk": pk, "sk": {"S": sk}} for sk in ("PROFILE", "LOYALTY")]
        raw.batch_get_item(RequestItems={settings.customers_table: {"Keys": keys, "ConsistentRead": True}})

    def raw_timeline() -> None:
        raw.get_item(TableName=settings.customers_table, Key={"pk": pk, "sk": {"S": "PROFILE"}}, **same)
        raw.query(
            TableName=settings.interactions_table,
            KeyConditionExpression="customer_id = :c",
            ExpressionAttributeValues={":c": {"S": customer.id}},
            ScanIndexForward=False,
            Limit=26,
            ReturnConsumedCapacity="TOTAL",
        )

    def app_get() -> None:
        http.get(f"/customers/{customer.id}")

    def app_timeline() -> None:
        page = http.get(f"/customers/{customer.id}/interactions?limit=25")
        assert len(page["items"]) == 25

    plain = {"app GET customer": app_get, "raw GET customer": raw_get}
    plain |= {"app timeline": app_timeline, "raw timeline": raw_timeline}
    operations = {}
    dynamo: dict[str, list[float]] = {name: [] for name in plain}

    def recorded(name: str, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            with recorder.record() as rec:
                fn()
            operations[name] = dict(rec.operations())
            dynamo[name].append(rec.seconds["dynamodb"])

        return run

    samples = interleaved({n: recorded(n, f) for n, f in plain.items()}, iterations, warmup)
    result: dict = {"iterations": iterations, "warmup": warmup}
    for figure, app_name, raw_name in (
        ("get customer", "app GET customer", "raw GET customer"),
        ("timeline page", "app timeline", "raw timeline"),
    ):
        app_ms, raw_ms = median(samples[app_name]), median(samples[raw_name])
        result[figure] = {
            "app_ms": ms(app_ms),
            "raw_ms": ms(raw_ms),
            "ratio": round(app_ms / raw_ms, 3),
            "overhead_ms": ms(app_ms - raw_ms),
            # Time the app spends inside its DynamoDB calls (PynamoDB + botocore + moto), and
            # outside them (Chalice, middleware, auth, pydantic, mapping).
            "app_dynamodb_ms": ms(median(dynamo[app_name][warmup:])),
            "app_outside_dynamodb_ms": ms(
                median([t - d for t, d in zip(samples[app_name], dynamo[app_name][warmup:], strict=True)])
            ),
            "app_operations": operations[app_name],
            "raw_operations": operations[raw_name],
        }
    return result


# -- 5a. Stream throughput -----------------------------------------------------------------


def stream_throughput(recorder: Recorder, batches: int, warmup: int) -> dict:
    """Every measured batch starts from the same state (10 customers with aggregates and the
    guards of the warm-up batches; no stream records), restored outside the timing: moto
    deep-copies the table for each item of a transaction, so a growing table would slow moto,
    not the consumer, batch after batch."""
    clear_tables()
    settings = get_settings()
    rng = random.Random(5)
    customers = data.CustomerWriter().write(
        (data.new_customer(data.filler_name(rng), data.EPOCH), None) for _ in range(10)
    )
    sequence = 1
    for n in range(warmup):
        consume(data.purchase_batch(customers, 10, sequence, data.EPOCH + timedelta(days=n)))
        sequence += 100
    trim_streams()
    state = snapshot([settings.customers_table])
    state_items = len(moto_table(settings.customers_table))
    seconds: list[float] = []
    dynamo: list[float] = []
    for n in range(batches):
        install(copy.deepcopy(state))
        records = data.purchase_batch(customers, 10, sequence, data.EPOCH + timedelta(days=warmup + n))
        sequence += len(records)
        with recorder.record() as rec:
            start = time.perf_counter()
            consume(records)
            elapsed = time.perf_counter() - start
        seconds.append(elapsed)
        dynamo.append(rec.seconds["dynamodb"])
    batch_s = median(seconds)
    return {
        "batches": batches,
        "records_per_batch": 100,
        "customers_per_batch": 10,
        "customers_table_items_at_start": state_items,
        "batch_ms_median": ms(batch_s),
        "records_per_second": round(100 / batch_s, 1),
        "dynamodb_share": round(median([d / s for d, s in zip(dynamo, seconds, strict=True)]), 3),
        "records_per_second_excluding_dynamodb": round(
            100 / median([s - d for d, s in zip(dynamo, seconds, strict=True)]), 1
        ),
    }


# -- 4. Scale ---------------------------------------------------------------------------


_LOADED: dict[tuple[int, int], dict] = {}


def scale_tables(small: int, large: int, log: Callable[[str], None]) -> dict:
    """The scale data set in moto, loaded once per process (the scale and backends sections
    share it): both tables at `small` items as a snapshot and at `large` items."""
    if (small, large) not in _LOADED:
        _LOADED[(small, large)] = _load_scale(small, large, log)
    return _LOADED[(small, large)]


def _rss_mb() -> float | None:
    from bench.local_stack import rss_kb

    memory = rss_kb(os.getpid())
    return round(memory["VmRSS"] / 1024, 1) if memory else None


def _load_scale(small: int, large: int, log: Callable[[str], None]) -> dict:
    settings = get_settings()
    clear_tables()
    dataset = data.ScaleData()
    with streams_detached():
        target = dataset.write_small(small)
    names = [settings.customers_table, settings.interactions_table]
    small_counts = {name: item_count(name) for name in names}
    small_tables = snapshot(names)
    log(f"scale: {small_counts} loaded; loading up to {large:,} items per table ...")
    rss_before = _rss_mb()
    start = time.perf_counter()
    with streams_detached():
        dataset.grow(small, large)
    load_s = time.perf_counter() - start
    large_tables = {name: moto_table(name) for name in names}
    large_counts = {name: item_count(name) for name in names}
    return {
        "target": target,
        "tables": {"small": small_tables, "large": large_tables},
        "counts": {"small": small_counts, "large": large_counts},
        "load_seconds": round(load_s, 1),
        "loaded_items": sum(large_counts.values()) - sum(small_counts.values()),
        # The bench process: moto's tables live in it.
        "rss_mb": {"before_large_load": rss_before, "after_large_load": _rss_mb()},
    }


def scale(
    http: Http,
    recorder: Recorder,
    small: int,
    large: int,
    iterations: int,
    stock_iterations: int,
    log: Callable[[str], None],
) -> dict:
    loaded = scale_tables(small, large, log)
    target = loaded["target"]
    paths = {
        "timeline page": f"/customers/{target}/interactions?limit=25",
        "name search": "/customers?q=vik&limit=25",
        "tier listing": "/customers?tier=platinum&limit=25",
        "segment members": f"/segments/{data.SCALE_SEGMENT}/members?limit=25",
        "related products": f"/products/{data.SCALE_PRODUCT}/related?limit=25",
    }
    details: dict[tuple[str, str], dict] = {}

    def variant(figure: str, size: str) -> Callable[[], None]:
        tables = loaded["tables"][size]
        path = paths[figure]

        def run() -> None:
            install(tables)
            with recorder.record() as rec:
                page = http.get(path)
            if len(page["items"]) != 25 or not page["next_cursor"]:
                raise AssertionError(f"{figure} at {size}: {len(page['items'])} items")
            entry = details.setdefault((figure, size), {"dynamodb_s": []})
            entry["operations"] = dict(rec.operations())
            entry["reads"] = [{"op": op, "count": c, "scanned": s} for op, c, s in rec.reads]
            entry["dynamodb_s"].append(rec.seconds["dynamodb"])

        return run

    variants = {f"{figure}|{size}": variant(figure, size) for figure in paths for size in ("small", "large")}
    regimes = {}
    for regime, count, warm in (("keyed", iterations, 3), ("stock", stock_iterations, 1)):
        for entry in details.values():
            entry["dynamodb_s"].clear()
        log(f"scale: measuring with {'key-addressed' if regime == 'keyed' else 'stock'} moto Query ...")
        if regime == "keyed":
            with keyed_queries():
                samples = interleaved(variants, count, warm)
        else:
            samples = interleaved(variants, count, warm)
        figures = {}
        for figure in paths:
            small_s, large_s = samples[f"{figure}|small"], samples[f"{figure}|large"]
            d_small = details[(figure, "small")]["dynamodb_s"][warm:]
            d_large = details[(figure, "large")]["dynamodb_s"][warm:]
            app_small = median([t - d for t, d in zip(small_s, d_small, strict=True)])
            app_large = median([t - d for t, d in zip(large_s, d_large, strict=True)])
            figures[figure] = {
                "small_ms": ms(median(small_s)),
                "large_ms": ms(median(large_s)),
                "ratio": round(median(large_s) / median(small_s), 3),
                "app_side_small_ms": ms(app_small),
                "app_side_large_ms": ms(app_large),
                "app_side_ratio": round(app_large / app_small, 3),
                "iterations": count,
            }
        regimes[regime] = figures
    install(loaded["tables"]["large"])
    shape = {
        figure: {
            size: {k: details[(figure, size)][k] for k in ("operations", "reads")}
            for size in ("small", "large")
        }
        for figure in paths
    }
    return {
        "sizes": loaded["counts"],
        "load_seconds": loaded["load_seconds"],
        "loaded_items": loaded["loaded_items"],
        "moto_rss_mb": loaded["rss_mb"],
        "requests": shape,
        "keyed": regimes["keyed"],
        "stock": regimes["stock"],
    }
