"""Section `imports`: rows per second of a bulk import of customers, then of interactions (one
purchase each, for those customers by email), and the DynamoDB, SQS and S3 requests it makes
per row, on DynamoDB Local (tables) and a moto server (S3, SQS), as `make run` has them.

It runs in a subprocess of its own (`python -m bench.imports`), so the endpoints are set before
the app is imported. The file is uploaded through the presigned URL `POST /imports` answers;
the upload's S3 event and the chunk messages are received from the queues and handed to the
consumers (`start_imports`, `run_imports`) by `--workers` threads, as Lambda's pollers would
with that much concurrency. The stream consumers (loyalty, habits, cases, ...) do not run: the
figure is the import's own work."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from bench.common import ROOT, process_env


class Calls:
    """Every botocore call (boto3 and PynamoDB both go through BaseClient._make_api_call), by
    service and operation, while `counting`."""

    def __init__(self) -> None:
        import botocore.client

        self.counts: Counter = Counter()
        self._on = False
        self._lock = threading.Lock()
        self._local = threading.local()
        original = botocore.client.BaseClient._make_api_call
        calls = self

        def counted(client, operation_name, api_params):
            if calls._on and not getattr(calls._local, "paused", False):
                with calls._lock:
                    calls.counts[(client.meta.service_model.service_name, operation_name)] += 1
            return original(client, operation_name, api_params)

        botocore.client.BaseClient._make_api_call = counted

    @contextmanager
    def paused(self):
        """This thread's calls (the bench's polls of the import's status) are left out."""
        self._local.paused = True
        try:
            yield
        finally:
            self._local.paused = False

    @contextmanager
    def counting(self):
        self.counts.clear()
        self._on = True
        try:
            yield self.counts
        finally:
            self._on = False


# Names as the customers of the seed articles' languages have them: 5 languages of 12 first
# names and 12 family names, so a name recurs (as in any real customer base) and duplicate
# detection finds candidates by the shared words, as it would in production.
_NAMES = {
    "fi-FI": (
        "Pirkko Jyrki Aino Eero Liisa Matti Sanna Ville Tuula Juha Kaisa Onni",
        "Järvinen Häkkinen Virtanen Mäkelä Nieminen Koskinen Lahtinen Heikkinen Laine Hämäläinen Saarinen"
        " Ojala",
    ),
    "sv-SE": (
        "Åsa Björn Ingrid Lars Karin Sven Maja Nils Elsa Olof Sofia Gustav",
        "Lindqvist Åkesson Andersson Johansson Karlsson Nilsson Eriksson Larsson Olsson Persson Svensson"
        " Berg",
    ),
    "sl-SI": (
        "Špela Žiga Nataša Matej Urška Luka Petra Jure Maja Anže Tina Rok",
        "Kovačič Novak Horvat Krajnc Zupančič Potočnik Kovač Mlakar Vidmar Golob Turk Kos",
    ),
    "fil-PH": (
        "Maria Jose Ana Juan Rosa Pedro Liza Mario Grace Ramon Joy Andres",
        "Dela Cruz,Santos,Bautista,Reyes,Garcia,Mendoza,Ramos,Aquino,Castillo,Villanueva,Torres,Flores",
    ),
    "en-GB": (
        "Emma Oliver Grace Harry Chloe Jack Lucy George Amelia Thomas Sophie William",
        "Smith Jones Taylor Brown Williams Wilson Johnson Davies Evans Thomas Roberts Walker",
    ),
}
_PEOPLE = [
    (locale, first, last)
    for locale, (firsts, lasts) in _NAMES.items()
    for first in firsts.split()
    for last in (lasts.split(",") if "," in lasts else lasts.split())
]


def _customer(n: int) -> tuple[str, str, str]:
    """Row n's name, email and locale: 720 names, each email its own."""
    locale, first, last = _PEOPLE[(n * 7919) % len(_PEOPLE)]
    return f"{first} {last}", f"customer{n}@example.com", locale


def _customers_file(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("name,email,locale,tags\r\n")
        for n in range(rows):
            name, email, locale = _customer(n)
            out.write(f"{name},{email},{locale},import;bench\r\n")


def _interactions_file(path: Path, rows: int, customers: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for n in range(rows):
            line = {
                "customer_email": _customer(n % customers)[1],
                "type": "purchase",
                "channel": "web",
                "occurred_at": f"2025-{1 + n % 12:02d}-{1 + n % 28:02d}T12:00:00Z",
                "currency": "EUR",
                "items": [
                    {
                        "sku": "SKU-KAHVI-500",
                        "name": "Kahvi 500 g",
                        "quantity": 1 + n % 3,
                        "unit_price": "8.90",
                    }
                ],
            }
            out.write(json.dumps(line, ensure_ascii=False) + "\n")


def _run_import(http, calls: Calls, app, path: Path, options: dict, workers: int) -> dict:
    import boto3
    import requests

    from chalicelib.config import get_settings
    from chalicelib.local.lambda_events import LambdaContext, lambda_sqs_record

    settings = get_settings()
    sqs = boto3.client("sqs")
    urls = {
        name: sqs.get_queue_url(QueueName=name)["QueueUrl"]
        for name in (settings.import_uploads_queue_name, settings.imports_queue_name)
    }
    arns = {
        name: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        for name, url in urls.items()
    }

    lock = threading.Lock()
    cpu_s: Counter = Counter()
    invocations: Counter = Counter()

    def deliver(function: str, queue: str, message: dict) -> None:
        context = LambdaContext(
            function, 1024, f"arn:aws:lambda:eu-north-1:123456789012:function:{function}", 300_000
        )
        cpu = time.thread_time()
        reply = app.handler_map[function]({"Records": [lambda_sqs_record(message, arns[queue])]}, context)
        # This thread's CPU in the function (moto's server and the JVM run elsewhere): what
        # Lambda would bill as compute, the figure its memory setting is chosen for.
        with lock:
            cpu_s[function] += time.thread_time() - cpu
            invocations[function] += 1
        if reply["batchItemFailures"]:
            raise RuntimeError(f"{function} failed a message")
        sqs.delete_message(QueueUrl=urls[queue], ReceiptHandle=message["ReceiptHandle"])

    def poll(queue: str, function: str, until) -> None:
        while not until():
            messages = sqs.receive_message(
                QueueUrl=urls[queue],
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
                WaitTimeSeconds=1,
            ).get("Messages", [])
            for message in messages:
                deliver(function, queue, message)

    created = http("POST", "/imports", options)
    import_id = created["id"]
    status = {"done": False}

    def finished() -> bool:
        return status["done"]

    with calls.counting() as counts:
        started = reported = time.perf_counter()
        with path.open("rb") as body:
            reply = requests.put(created["upload"]["url"], data=body, timeout=600)
        reply.raise_for_status()
        with ThreadPoolExecutor(max_workers=workers + 1) as pool:
            pool.submit(poll, settings.import_uploads_queue_name, "start_imports", finished)
            pollers = [
                pool.submit(poll, settings.imports_queue_name, "run_imports", finished)
                for _ in range(workers)
            ]
            try:
                while True:
                    with calls.paused():
                        imp = http("GET", f"/imports/{import_id}")
                    if imp["status"] not in ("awaiting_upload", "processing"):
                        break
                    if time.perf_counter() - reported > 10:
                        reported = time.perf_counter()
                        print(
                            f"[imports] {imp['processed']:,} of {imp['rows']:,} rows",
                            file=sys.stderr,
                            flush=True,
                        )
                    if any(p.done() for p in pollers):
                        [p.result() for p in pollers if p.done()]
                    time.sleep(0.5)
            finally:
                status["done"] = True  # the pollers stop, also when this was interrupted
            seconds = time.perf_counter() - started
        requests_by_service = Counter()
        for (service, operation), n in counts.items():
            # Lambda's event source mapping receives and deletes the messages, not the functions.
            if service == "sqs" and operation in ("ReceiveMessage", "DeleteMessage", "GetQueueUrl"):
                continue
            requests_by_service[service] += n
        operations = {f"{s}:{o}": n for (s, o), n in sorted(counts.items())}
    rows = imp["rows"] or 1
    return {
        "import": {
            k: imp[k] for k in ("status", "rows", "processed", "created", "updated", "skipped", "failed")
        },
        "file_bytes": path.stat().st_size,
        "seconds": round(seconds, 2),
        "rows_per_s": round(imp["processed"] / seconds, 1),
        "requests_per_row": {s: round(n / rows, 4) for s, n in sorted(requests_by_service.items())},
        "operations": operations,
        "functions": {
            function: {
                "invocations": invocations[function],
                "cpu_ms_per_invocation": round(1000 * cpu_s[function] / invocations[function], 1),
                "cpu_ms_per_row": round(1000 * cpu_s[function] / rows, 2),
            }
            for function in sorted(invocations)
        },
    }


def _without_streams(endpoint: str) -> list[str]:
    """Turn the tables' streams off: DynamoDB Local looks up a table's stream for each action of
    a TransactWriteItems on it, at a cost that grows with the records the stream holds (24
    hours of them). Measured here: at 2,000 customers, an import's transaction of 33
    interactions took about 1 s with the streams on, 0.15 s off; at 100,000 it would be the
    emulator's stream that is measured. AWS's streams cost the writes nothing, and the stream
    consumers do not run here anyway."""
    import boto3

    client = boto3.client("dynamodb", endpoint_url=endpoint)
    turned_off = []
    for name in client.list_tables()["TableNames"]:
        if client.describe_table(TableName=name)["Table"].get("StreamSpecification", {}).get("StreamEnabled"):
            client.update_table(TableName=name, StreamSpecification={"StreamEnabled": False})
            turned_off.append(name)
    return turned_off


def worker(args: argparse.Namespace) -> dict:
    from chalicelib.local.dynamodb_local import DYNAMODB_LOCAL_VERSION, DynamoDBLocal
    from chalicelib.local.stack import apply_environment, deploy, local_environment, start_moto

    server = DynamoDBLocal.start(0, long_run=True)
    moto = None
    try:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            aws_port = probe.getsockname()[1]
        apply_environment(local_environment(aws_port, aws_port, "local", server.url))
        os.environ["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        moto = start_moto(aws_port)
        outputs = deploy("local", dynamodb="local")
        _without_streams(server.url)
        os.environ["CRM_IMPORTS_BUCKET"] = outputs["ImportsBucketName"]
        calls = Calls()
        from chalice.test import Client

        from app import app
        from chalicelib.local.token import issue

        token = issue()
        client = Client(app)

        def http(method: str, path: str, body: dict | None = None) -> dict:
            headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
            reply = client.http.request(method, path, headers=headers, body=json.dumps(body) if body else b"")
            if reply.status_code >= 300:
                raise RuntimeError(f"{method} {path}: {reply.status_code} {reply.body[:300]!r}")
            return json.loads(reply.body)

        result: dict = {
            "backend": f"DynamoDB Local {DYNAMODB_LOCAL_VERSION} + moto server (S3, SQS)",
            "workers": args.workers,
        }
        with tempfile.TemporaryDirectory() as tmp:
            customers, interactions = Path(tmp) / "customers.csv", Path(tmp) / "interactions.ndjson"
            _customers_file(customers, args.customers)
            _interactions_file(interactions, args.interactions, args.customers)
            print(f"[imports] {args.customers} customers ...", file=sys.stderr, flush=True)
            result["customers"] = _run_import(
                http, calls, app, customers, {"kind": "customers", "format": "csv"}, args.workers
            )
            print(f"[imports] {args.interactions} interactions ...", file=sys.stderr, flush=True)
            result["interactions"] = _run_import(
                http, calls, app, interactions, {"kind": "interactions", "format": "ndjson"}, args.workers
            )
        return result
    finally:
        if moto is not None:
            moto.stop()
        server.stop()


def run(customers: int, interactions: int, workers: int, log) -> dict:
    """The section, in a subprocess: its result as JSON on the subprocess's last stdout line."""
    import subprocess

    command = [
        sys.executable,
        "-m",
        "bench.imports",
        "--customers",
        str(customers),
        "--interactions",
        str(interactions),
        "--workers",
        str(workers),
    ]
    log(f"imports: {customers:,} customers and {interactions:,} interactions ({workers} workers) ...")
    done = subprocess.run(command, cwd=ROOT, env=process_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": (done.stderr or done.stdout).strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.imports")
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--interactions", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2, help="chunk consumers at once (Lambda concurrency)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from chalicelib.local.processes import Stop, stop_on_signals

    stop_on_signals()  # SIGTERM or Ctrl-C stops DynamoDB Local and moto too, not only this
    try:
        print(json.dumps(worker(args)))
    except Stop:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())


def rows(results: dict) -> list[tuple[str, str, str, str]]:
    section = results.get("imports")
    if not section:
        return []
    if "error" in section:
        return [("13. bulk import", f"error: {str(section['error'])[:80]}", "", "FAIL")]
    out = []
    for kind in ("customers", "interactions"):
        part = section[kind]
        imp = part["import"]
        per_row = ", ".join(f"{service} {n:.3g}" for service, n in part["requests_per_row"].items())
        chunks = part.get("functions", {}).get("run_imports")
        cpu = f"; run_imports CPU {chunks['cpu_ms_per_row']} ms per row" if chunks else ""
        exact = imp["status"] == "completed" and imp["created"] == imp["rows"] and not imp["failed"]
        out.append(
            (
                f"13. import of {imp['rows']:,} {kind}, {section['workers']} workers",
                f"{part['rows_per_s']:,} rows/s ({part['seconds']} s); requests per row: {per_row}{cpu}",
                "every row created once",
                "pass" if exact else "FAIL",
            )
        )
    return out
