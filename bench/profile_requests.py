"""Section `profile`: where the CPU of one request goes in the local stack on DynamoDB Local.

In a fresh process (`python -m bench.profile_requests`): DynamoDB Local, the tables, the app
served by chalicelib.local.server.LocalApiServer (what `make run` serves) on a loopback port,
and the load section's request mix sent by one client, one request at a time. The server's
request thread is profiled with cProfile on its own CPU clock (time.thread_time), so neither
the client nor waiting for DynamoDB Local counts; the DynamoDB Local JVM's CPU is read from
/proc over the same requests, and then per DynamoDB operation with raw boto3 calls."""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from bench.common import ROOT, process_env

# (component, path fragments of the modules it is made of): the first match wins.
COMPONENTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("waiting for DynamoDB Local (socket recv, GIL released)", ("recv_into",)),
    ("PynamoDB", ("/pynamodb/",)),
    ("botocore + urllib3 (request building, SigV4, response parsing)", ("/botocore/", "/urllib3/")),
    (
        "http.client + socket (to DynamoDB Local)",
        ("/http/client.py", "/socket.py", "/selectors.py", "_socket"),
    ),
    ("pydantic", ("/pydantic/", "/pydantic_core/")),
    ("Powertools (logging, batch)", ("/aws_lambda_powertools/",)),
    ("logging + json", ("/logging/", "/json/")),
    ("JWT (PyJWT, cryptography, hmac)", ("/jwt/", "/cryptography/", "/hmac.py", "_hashlib")),
    ("Chalice (local gateway, routing, event)", ("/chalice/",)),
    ("http.server + socketserver (the API server)", ("/http/server.py", "/socketserver.py")),
    ("the app (chalicelib, app.py)", ("/chalicelib/", "/app.py")),
    ("uuid, datetime, re, copy, other stdlib", ("/python3.", "<built-in", "{built-in", "{method")),
)


def component(where: str) -> str:
    for name, fragments in COMPONENTS:
        if any(fragment in where for fragment in fragments):
            return name
    return "other"


class _HandlerProfile:
    """Wraps the API server's request handling: the CPU seconds of its request threads
    (handle_one_request on their own CPU clock), and while `profiling` a wall-clock cProfile
    of the handling after the request head is read (do_GET, do_POST, ...), so the only waits
    inside are those for DynamoDB Local."""

    def __init__(self) -> None:
        self.profiling = False
        self.cpu_s = 0.0
        self.requests = 0
        self.profilers: list[cProfile.Profile] = []
        self._local = threading.local()

    def install(self, handler_class: type) -> None:
        profile = self
        handle_one = handler_class.handle_one_request

        def handle_one_request(handler) -> None:
            start = time.thread_time()
            handle_one(handler)
            profile.cpu_s += time.thread_time() - start
            profile.requests += 1

        handler_class.handle_one_request = handle_one_request
        for method in ("do_GET", "do_POST", "do_PATCH", "do_PUT", "do_DELETE"):
            setattr(handler_class, method, self._profiled(getattr(handler_class, method)))

    def _profiled(self, handle):
        profile = self

        def profiled(handler) -> None:
            if not profile.profiling:
                return handle(handler)
            profiler = getattr(profile._local, "profiler", None)
            if profiler is None:
                profiler = profile._local.profiler = cProfile.Profile()
                profile.profilers.append(profiler)
            return profiler.runcall(handle, handler)

        return profiled


def _by_component(profilers: list[cProfile.Profile], requests: int) -> tuple[dict, list]:
    stats = pstats.Stats(profilers[0])
    for profiler in profilers[1:]:
        stats.add(profiler)
    if os.environ.get("BENCH_PROFILE_DUMP"):
        stats.dump_stats(os.environ["BENCH_PROFILE_DUMP"])
    totals: Counter = Counter()
    functions = []
    for (path, line, name), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
        totals[component(f"{path}:{name}")] += own
        functions.append((own, cumulative, calls, f"{path.split('site-packages/')[-1]}:{line}({name})"))
    total = sum(totals.values())
    shares = {
        name: {"ms_per_request": round(seconds / requests * 1000, 2), "share": round(seconds / total, 3)}
        for name, seconds in totals.most_common()
    }
    functions.sort(reverse=True)
    top = [
        {
            "own_ms_per_request": round(own / requests * 1000, 3),
            "cumulative_ms_per_request": round(cum / requests * 1000, 3),
            "calls_per_request": round(calls / requests, 1),
            "function": where,
        }
        for own, cum, calls, where in functions[:25]
    ]
    return shares, top


def _java_per_operation(client, settings, rounds: int, java_cpu) -> dict:
    """DynamoDB Local's CPU per call, by operation, for calls like the app's."""
    customers, interactions = settings.customers_table, settings.interactions_table
    ids = [f"cus_bench{n:04d}" for n in range(rounds)]
    streams = __import__("boto3").client("dynamodbstreams")
    arn = client.describe_table(TableName=interactions)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]

    written = iter(range(10**9))

    def transact(n: int) -> None:
        n = next(written)
        client.transact_write_items(
            TransactItems=[
                {
                    "ConditionCheck": {
                        "TableName": customers,
                        "Key": {"pk": {"S": "CUSTOMER#x"}, "sk": {"S": "PROFILE"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": interactions,
                        "Item": {
                            "customer_id": {"S": ids[n % 10]},
                            "id": {"S": f"int_{n:06d}"},
                            "type": {"S": "visit"},
                            "customer_type": {"S": f"{ids[n % 10]}#visit"},
                        },
                        "ConditionExpression": "attribute_not_exists(id)",
                    }
                },
            ]
        )

    operations = {
        "TransactWriteItems (ConditionCheck + Put)": transact,
        "GetItem": lambda n: client.get_item(
            TableName=customers, Key={"pk": {"S": f"CUSTOMER#{ids[n % 10]}"}, "sk": {"S": "PROFILE"}}
        ),
        "Query (26 of one partition)": lambda n: client.query(
            TableName=interactions,
            KeyConditionExpression="customer_id = :c",
            ExpressionAttributeValues={":c": {"S": ids[n % 10]}},
            ScanIndexForward=False,
            Limit=26,
        ),
        "BatchGetItem (2 keys)": lambda n: client.batch_get_item(
            RequestItems={
                customers: {
                    "Keys": [
                        {"pk": {"S": f"CUSTOMER#{ids[n % 10]}"}, "sk": {"S": sk}}
                        for sk in ("PROFILE", "LOYALTY")
                    ]
                }
            }
        ),
        "GetShardIterator + GetRecords (the pump's poll of one stream)": lambda n: streams.get_records(
            ShardIterator=streams.get_shard_iterator(
                StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST"
            )["ShardIterator"],
            Limit=1000,
        ),
    }
    figures = {}
    for name, call in operations.items():
        for n in range(20):
            call(n)
        java0, python0, wall0 = java_cpu(), time.process_time(), time.perf_counter()
        for n in range(rounds):
            call(n)
        figures[name] = {
            "java_cpu_ms": round((java_cpu() - java0) / rounds * 1000, 2),
            "python_cpu_ms": round((time.process_time() - python0) / rounds * 1000, 2),
            "wall_ms": round((time.perf_counter() - wall0) / rounds * 1000, 2),
        }
    return figures


def worker(args: argparse.Namespace) -> dict:
    from chalicelib.local.dynamodb_local import DynamoDBLocal
    from chalicelib.local.stack import apply_environment, load_template, local_environment

    server = DynamoDBLocal.start(0)
    try:
        apply_environment(local_environment(server.port, server.port, "local", server.url))
        import boto3

        from bench.load import MIX, Client, prepare
        from bench.local_stack import process_cpu_s
        from bench.mock import Recorder
        from chalicelib.config import get_settings
        from chalicelib.local import tables
        from chalicelib.local.server import LocalApiServer, _QuietRequestHandler
        from chalicelib.local.token import issue

        client = boto3.client("dynamodb")
        tables.create_tables(client, load_template(), {"Stage": "local"})
        from app import app

        profile = _HandlerProfile()
        profile.install(_QuietRequestHandler)
        api = LocalApiServer(app, port=0).start()
        token = issue("local")
        pool = prepare(api.port, token, args.customers)
        barrier = threading.Barrier(1)
        driver = Client(0, api.port, token, pool, barrier, seconds=0, max_requests=0)
        operations, weights = zip(*MIX, strict=True)
        rng = random.Random(9)

        def mix(count: int) -> None:
            for _ in range(count):
                operation = rng.choices(operations, weights)[0]
                getattr(driver, "_" + operation.replace(" ", "_"))(rng.choice(pool.customers))

        def java_cpu() -> float:
            return process_cpu_s(server.process.pid) or 0.0

        mix(args.warmup)
        recorder = Recorder()
        profile.cpu_s, profile.requests = 0.0, 0
        java0, wall0 = java_cpu(), time.perf_counter()
        with recorder.record() as calls:
            mix(args.requests)
        wall = time.perf_counter() - wall0
        requests = profile.requests
        result: dict = {
            "requests": requests,
            "wall_ms_per_request": round(wall / requests * 1000, 2),
            "server_thread_cpu_ms_per_request": round(profile.cpu_s / requests * 1000, 2),
            "java_cpu_ms_per_request": round((java_cpu() - java0) / requests * 1000, 2),
            "dynamodb_calls_per_request": round(calls.total() / requests, 2),
            "dynamodb_calls": dict(calls.operations().most_common()),
        }
        recorder.uninstall()
        profile.requests = 0
        profile.profiling = True
        mix(args.requests)
        profile.profiling = False
        result["profiled_requests"] = profile.requests
        result["components"], result["top_functions"] = _by_component(profile.profilers, profile.requests)
        api.stop()
        result["dynamodb_local_cpu_per_operation"] = _java_per_operation(
            client, get_settings(), args.operation_rounds, java_cpu
        )
    finally:
        server.stop()
    return result


def profile(timeout: float = 600) -> dict:
    """The section: the worker in a fresh process (the app reads its endpoints once)."""
    from chalicelib.local import dynamodb_local

    reason = dynamodb_local.why_unavailable()
    if reason is not None:
        return {"error": f"DynamoDB Local unavailable: {reason}"}
    output = ROOT / "build" / "bench-profile.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "bench.profile_requests", "--output", str(output)]
    # The app logs a JSON line per request to stdout, as in the stack; nobody reads it here.
    done = subprocess.run(
        command, cwd=ROOT, env=process_env(), timeout=timeout, check=False, stdout=subprocess.DEVNULL
    )
    if done.returncode != 0:
        return {"error": f"bench.profile_requests exited with {done.returncode} (its stderr is above)"}
    return json.loads(output.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--operation-rounds", type=int, default=300)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    os.environ.pop("POWERTOOLS_LOG_LEVEL", None)  # the stack's level: one log line per request
    args.output.write_text(json.dumps(worker(args), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
