"""Figure 6: the local stack's two DynamoDB backends side by side. The same requests through
chalice.test.Client on both: the app's real write (POST a purchase: one TransactWriteItems,
ConditionCheck on the profile + Put of the interaction) and a timeline page (GetItem + one
Query of the customer's partition), at 1,000 and at 100,000 items per table, with the time
inside the DynamoDB call itself; the loyalty consumer's records per second; and the resident
memory of DynamoDB Local at each size.

DynamoDB Local runs in a subprocess of the bench (`python -m bench.backends`), so its endpoint
is set before the app is imported; moto is the bench's in-process moto with the scale
section's tables (bench.inprocess.scale_tables)."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench.common import ROOT, median, ms, percentile, process_env

PURCHASE = {
    "type": "purchase",
    "channel": "store",
    "currency": "EUR",
    "items": [{"sku": "SKU-COFFEE-500", "name": "Kaffe 500 g", "quantity": 1, "unit_price": "12.90"}],
}
STREAM_CUSTOMERS = 10


def summary(seconds: list[float]) -> dict:
    return {
        "n": len(seconds),
        "p50_ms": ms(median(seconds)),
        "p99_ms": ms(percentile(seconds, 99)),
        "max_ms": ms(max(seconds)),
    }


def latencies(
    http,
    recorder,
    target: str,
    writes: int,
    queries: int,
    warmup: int,
    before_write: Callable[[], None] = lambda: None,
) -> dict:
    """`writes` purchases and `queries` timeline pages of `target`, interleaved (write, page,
    write, page, ...), after `warmup` of each. `before_write` runs outside the timing."""
    timings: dict[str, list[float]] = {"write": [], "query": []}
    inside: dict[str, list[float]] = {"write": [], "query": []}
    operations: dict[str, dict] = {}
    path = f"/customers/{target}/interactions"

    def write() -> None:
        http.request("POST", path, PURCHASE, expect=201)

    def query() -> None:
        page = http.get(f"{path}?limit=25")
        if len(page["items"]) != 25:
            raise AssertionError(f"timeline page of {len(page['items'])} items")

    steps = {"write": (write, "TransactWriteItems"), "query": (query, "Query")}
    for _ in range(warmup):
        before_write()
        write()
        query()
    for i in range(max(writes, queries)):
        for name, count in (("write", writes), ("query", queries)):
            if i >= count:
                continue
            fn, operation = steps[name]
            if name == "write":
                before_write()
            with recorder.record() as rec:
                start = time.perf_counter()
                fn()
                elapsed = time.perf_counter() - start
            timings[name].append(elapsed)
            inside[name].append(rec.operation_seconds[operation])
            operations[name] = dict(rec.operations())
    return {
        name: {
            "http": summary(timings[name]),
            steps[name][1]: summary(inside[name]),
            "requests": operations.get(name, {}),
        }
        for name in ("write", "query")
        if timings[name]
    }


def stream_throughput(recorder, batches: int, warmup: int) -> dict:
    """Batches of 100 purchase records of 10 customers through the loyalty consumer, as the
    stream section measures it on moto; here the table state is not restored between batches
    (DynamoDB Local's cost does not grow with the table)."""
    import random
    from datetime import timedelta

    from bench import data
    from bench.inprocess import consume

    rng = random.Random(5)
    customers = data.CustomerWriter().write(
        (data.new_customer(data.filler_name(rng), data.EPOCH), None) for _ in range(STREAM_CUSTOMERS)
    )
    sequence = 1
    seconds: list[float] = []
    inside: list[float] = []
    for n in range(warmup + batches):
        records = data.purchase_batch(customers, 10, sequence, data.EPOCH + timedelta(days=n))
        sequence += len(records)
        with recorder.record() as rec:
            start = time.perf_counter()
            consume(records)
            elapsed = time.perf_counter() - start
        if n >= warmup:
            seconds.append(elapsed)
            inside.append(rec.seconds["dynamodb"])
    batch_s = median(seconds)
    return {
        "batches": batches,
        "records_per_batch": 100,
        "customers_per_batch": STREAM_CUSTOMERS,
        "batch_ms_median": ms(batch_s),
        "records_per_second": round(100 / batch_s, 1),
        "dynamodb_share": round(median([d / s for d, s in zip(inside, seconds, strict=True)]), 3),
    }


# -- DynamoDB Local, in a subprocess ------------------------------------------------------


def _recreate_tables(client, template: dict) -> None:
    from chalicelib.local import tables

    for request in tables.table_requests(template, {"Stage": "local"}).values():
        client.delete_table(TableName=request["TableName"])
        client.get_waiter("table_not_exists").wait(
            TableName=request["TableName"], WaiterConfig={"Delay": 0.2, "MaxAttempts": 100}
        )
    tables.create_tables(client, template, {"Stage": "local"})


def _item_counts(client, names: list[str]) -> dict[str, int]:
    return {name: client.describe_table(TableName=name)["Table"]["ItemCount"] for name in names}


PHASES = ("small", "loaded", "large")  # what the worker has done when it prints each


def _phase_done(phase: str) -> None:
    """Tell the bench (on stdout) that `phase` is done, and wait until it says "go" (stdin)
    before going on: the bench runs the worker's bulk load beside its own, never a timing."""
    print(phase, flush=True)
    if phase != PHASES[-1] and sys.stdin.readline().strip() != "go":
        raise SystemExit(f"bench.backends: no 'go' after {phase}")


def local_worker(args: argparse.Namespace) -> dict:
    """Runs in a fresh process: DynamoDB Local on a free port, the tables from
    infra/resources.json, the local stage's environment pointed at it, then the figures, in
    three phases (see PHASES and _phase_done)."""
    import os

    from chalicelib.local.dynamodb_local import DYNAMODB_LOCAL_VERSION, DynamoDBLocal
    from chalicelib.local.stack import apply_environment, load_template, local_environment

    def note(message: str) -> None:
        print(f"[backends/local] {message}", file=sys.stderr, flush=True)

    result: dict = {"backend": f"DynamoDB Local {DYNAMODB_LOCAL_VERSION}"}
    started = time.perf_counter()
    server = DynamoDBLocal.start(0)
    try:
        result["start_s"] = round(time.perf_counter() - started, 2)
        # Every endpoint on loopback: DynamoDB (and streams) to DynamoDB Local; nothing else is
        # called, and anything that were would reach DynamoDB Local's port and fail there.
        port = server.port
        apply_environment(local_environment(port, port, "local", server.url))
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        import boto3

        from chalicelib.config import get_settings
        from chalicelib.local import tables

        client = boto3.client("dynamodb")
        template = load_template()
        start = time.perf_counter()
        tables.create_tables(client, template, {"Stage": "local"})
        result["create_tables_s"] = round(time.perf_counter() - start, 2)
        result["rss_mb"] = {"empty": _mb(server.rss_bytes())}

        from bench.inprocess import Http
        from bench.mock import Recorder

        recorder = Recorder()
        http = Http()
        note(f"stream: {args.stream_batches} batches of 100 records ...")
        result["stream"] = stream_throughput(recorder, args.stream_batches, warmup=2)
        _recreate_tables(client, template)

        from bench import data

        settings = get_settings()
        names = [settings.customers_table, settings.interactions_table]
        dataset = data.ScaleData()
        start = time.perf_counter()
        target = dataset.write_small(args.small)
        result["small_load_s"] = round(time.perf_counter() - start, 2)
        result["sizes"] = {"small": _item_counts(client, names)}
        result["rss_mb"]["small"] = _mb(server.rss_bytes())
        note(f"{result['sizes']['small']}: {args.writes} writes, {args.queries} pages ...")
        result["small"] = latencies(http, recorder, target, args.writes, args.queries, warmup=30)
        _phase_done("small")
        note(f"loading up to {args.large:,} items ({args.large_tables}) with BatchWriteItem ...")
        start = time.perf_counter()
        dataset.grow(
            args.small, args.large, workers=args.load_workers, customers_too=args.large_tables == "both"
        )
        load_s = time.perf_counter() - start
        result["large_load_s"] = round(load_s, 1)
        result["sizes"]["large"] = _item_counts(client, names)
        loaded = sum(result["sizes"]["large"].values()) - sum(result["sizes"]["small"].values())
        result["loaded_items"] = loaded
        result["load_items_per_second"] = round(loaded / load_s)
        result["rss_mb"]["large"] = _mb(server.rss_bytes())
        _phase_done("loaded")
        note(f"{result['sizes']['large']} in {load_s:.0f} s: {args.writes} writes, {args.queries} pages ...")
        result["large"] = latencies(http, recorder, target, args.writes, args.queries, warmup=30)
        result["rss_mb"]["after"] = _mb(server.rss_bytes())
        result["rss_mb"]["peak"] = _peak_mb(server.process.pid)
    finally:
        server.stop()
    return result


def _mb(value: int | None) -> float | None:
    return round(value / 2**20, 1) if value is not None else None


def _peak_mb(pid: int) -> float | None:
    from bench.local_stack import rss_kb

    memory = rss_kb(pid)
    return round(memory["VmHWM"] / 1024, 1) if memory and "VmHWM" in memory else None


class LocalWorker:
    """The DynamoDB Local half, `python -m bench.backends` in a fresh process (the app reads
    its endpoints once), driven phase by phase: `wait(phase)`, then `go()` for the next."""

    def __init__(self, args: argparse.Namespace, timeout: float = 1200) -> None:
        self.output = ROOT / "build" / "bench-backends-local.json"
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.output.unlink(missing_ok=True)
        self.deadline = time.monotonic() + timeout
        self.error: str | None = None
        command = [
            sys.executable,
            "-m",
            "bench.backends",
            "--small",
            str(args.small),
            "--large",
            str(args.large),
            "--writes",
            str(args.backends_writes),
            "--queries",
            str(args.backends_queries),
            "--stream-batches",
            str(args.stream_batches),
            "--large-tables",
            args.backends_large_tables,
            "--output",
            str(self.output),
        ]
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=process_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def wait(self, phase: str) -> bool:
        """Block until the worker reports `phase` done; False (and `error`) if it never does."""
        if self.error is not None:
            return False
        assert self.process.stdout is not None
        line = None
        while line not in ("", phase):  # "": the worker's stdout closed; other lines are logs
            line = self.process.stdout.readline()
            line = line.strip() if line else ""
        if line != phase:
            self.stop()
            self.error = (
                f"bench.backends stopped before '{phase}' (exit {self.process.returncode}; stderr above)"
            )
            return False
        return True

    def go(self) -> None:
        if self.error is None:
            assert self.process.stdin is not None
            self.process.stdin.write("go\n")
            self.process.stdin.flush()

    def result(self) -> dict:
        if self.wait(PHASES[-1]):
            self.process.wait(max(1.0, self.deadline - time.monotonic()))
            if self.output.exists():
                return json.loads(self.output.read_text())
            self.error = f"bench.backends exited with {self.process.returncode} without a result"
        return {"error": self.error}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


# -- moto, in the bench process -------------------------------------------------------------


def moto(http, recorder, loaded: dict, args: argparse.Namespace) -> dict:
    """The same figures on in-process moto, with the scale section's tables swapped in (at the
    large size the customers table stays at the small size unless --backends-large-tables
    both, as on DynamoDB Local). moto deep-copies every table a transaction touches (seconds
    per write at 100,000 items), so its runs are short; stream records are trimmed before each
    write, outside the timing, or moto would copy them too."""
    from bench.mock import install, item_count, trim_streams
    from chalicelib.config import get_settings

    settings = get_settings()
    small, large = loaded["tables"]["small"], loaded["tables"]["large"]
    states = {
        "small": small,
        "large": large
        if args.backends_large_tables == "both"
        else {**small, settings.interactions_table: large[settings.interactions_table]},
    }
    operations = {
        "small": (args.moto_writes_small, args.moto_queries_small),
        "large": (args.moto_writes_large, args.moto_queries_large),
    }
    result: dict = {"backend": "moto 5 (in-process)", "sizes": {}}
    for size, tables in states.items():
        install(tables)
        result["sizes"][size] = {name: item_count(name) for name in tables}
        writes, queries = operations[size]
        result[size] = latencies(
            http, recorder, loaded["target"], writes, queries, warmup=1, before_write=trim_streams
        )
    install(large)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the DynamoDB Local half of bench section 'backends'")
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--stream-batches", type=int, default=9)
    parser.add_argument("--load-workers", type=int, default=4, help="threads writing the bulk data")
    parser.add_argument("--large-tables", choices=("interactions", "both"), default="interactions")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    result = local_worker(args)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    _phase_done(PHASES[-1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
