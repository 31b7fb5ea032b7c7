"""Figure 12: what duplicate detection costs (`GET /customers/{id}/duplicates`) at 1,000 and at
100,000 customers, in requests and items read, against in-process moto.

The target's keys are made crowded on purpose and grow with the table: one customer in ten of
the filler is called "Maria …" (the target is "Maria Santos"), one in a hundred has the target's
phone number and one in a hundred "Santos" as a name. What detection reads must not grow with
them: every Query has a Limit, the profiles scored are one BatchGetItem."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

from bench import data
from bench.common import median, ms
from bench.mock import Recorder, clear_tables, install, keyed_queries, moto_table, snapshot, streams_detached
from chalicelib.domain.customers import Customer
from chalicelib.store.customer_items import customer_item as customer_model
from chalicelib.store.customer_items import token_items

PHONE = "+639171234567"
TIMED_ROUNDS = 15


def _filler(rng: random.Random, count: int, start_index: int) -> Iterator[tuple[Customer, None]]:
    for i in range(start_index, start_index + count):
        at = data.EPOCH + timedelta(days=2, seconds=i)
        first = "Maria" if i % 10 == 0 else data.filler_name(rng)
        last = "Santos" if i % 100 == 1 else data.filler_name(rng)
        phone = PHONE if i % 100 == 2 else None
        yield data.new_customer(f"{first} {last}", at, phone=phone), None


def _write(table: str, customers: Iterator[tuple[Customer, None]]) -> None:
    """Profiles and their lookup items put into moto's table object directly: the same items a
    creation writes, without a request each (loading 100,000 customers through BatchWriteItem
    takes moto about ten minutes)."""
    store = moto_table(table)
    for customer, _ in customers:
        for item in (customer_model(customer), *token_items(customer)):
            store.put_item(item.serialize())


def detection(http, recorder: Recorder, small: int, large: int, log: Callable[[str], None]) -> dict:
    """Requests and items read by one detection at `small` and at `large` customers (the same
    target, the same fixed duplicates), and its time on key-addressed moto at both."""
    from chalicelib.config import get_settings

    clear_tables()
    rng = random.Random(15)
    target = data.new_customer("Maria Santos", data.EPOCH, phone=PHONE, email="maria.santos@gmail.com")
    fixed = [
        data.new_customer("María Santos", data.EPOCH + timedelta(seconds=1), phone=PHONE),
        data.new_customer("Santos Maria", data.EPOCH + timedelta(seconds=2), email="mariasantos+x@gmail.com"),
        data.new_customer("Ma. Santos", data.EPOCH + timedelta(seconds=3)),
    ]
    table = get_settings().customers_table
    with streams_detached([table]):
        _write(table, iter([(target, None), *((c, None) for c in fixed)]))
        _write(table, _filler(rng, small - 1 - len(fixed), 0))
    tables = {"small": snapshot([table])}
    counts = {"small": small}
    log(f"duplicates: {small:,} customers loaded; loading up to {large:,} ...")
    start = time.perf_counter()
    with streams_detached([table]):
        _write(table, _filler(rng, large - small, small))
    load_s = time.perf_counter() - start
    tables["large"] = {table: moto_table(table)}
    counts["large"] = large
    path = f"/customers/{target.id}/duplicates?limit=25"

    figures: dict[str, dict] = {}
    for size in ("small", "large"):
        install(tables[size])
        with recorder.record() as rec:
            page = http.get(path)
        found = [item["customer_id"] for item in page["items"]]
        missing = [c.id for c in fixed if c.id not in found]
        if missing:
            raise AssertionError(f"duplicates at {size}: the fixed duplicates {missing} were not found")
        seconds = []
        with keyed_queries():
            http.get(path)  # the index groups, once per table object
            for _ in range(TIMED_ROUNDS):
                begin = time.perf_counter()
                http.get(path)
                seconds.append(time.perf_counter() - begin)
        figures[size] = {
            "customers": counts[size],
            "items_in_table": len(moto_table(table)),
            "operations": dict(rec.operations()),
            "requests": rec.total(),
            "reads": [{"op": op, "count": c, "scanned": s} for op, c, s in rec.reads],
            "candidates": len(found),
            "top_score": page["items"][0]["score"],
            "median_ms": ms(median(seconds)),
        }
    small_f, large_f = figures["small"], figures["large"]
    shape = [(f["operations"], f["reads"]) for f in (small_f, large_f)]
    return {
        "small": small_f,
        "large": large_f,
        "same_requests": shape[0] == shape[1],
        "ratio": round(large_f["median_ms"] / small_f["median_ms"], 3),
        "load_seconds": round(load_s, 1),
    }


def rows(results: dict) -> list[tuple[str, str, str, str]]:
    section = results.get("duplicates")
    if not section:
        return []
    if "error" in section:
        return [("12. duplicate detection", "error: " + section["error"][:80], "", "FAIL")]
    small, large = section["small"], section["large"]
    scanned = "/".join(str(r["scanned"]) for r in large["reads"])
    label = f"{small['customers']:,}/{large['customers']:,} customers"
    return [
        (
            f"12. duplicate detection, requests and items read, {label}",
            f"{large['requests']} requests, Queries read {scanned} items, {large['candidates']} candidates",
            "identical",
            "pass" if section["same_requests"] else "FAIL",
        ),
        (
            f"12. duplicate detection, {label}, key-addressed moto",
            f"{small['median_ms']:.2f} -> {large['median_ms']:.2f} ms = {section['ratio']:.2f}x",
            "info: the requests are the figure",
            "info",
        ),
    ]
