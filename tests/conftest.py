"""Test environment: fake credentials and the local stage's settings before anything imports
boto3 or the app; moto in-process with the resources deployed from infra/.

`--dynamodb=moto` (the default) keeps DynamoDB in moto too; `--dynamodb=local` puts the tables
and their streams on DynamoDB Local (started by the session, one for all workers) while SQS,
SES, S3 and CloudFormation stay in moto. `--suites` picks the tests: `storage` (the integration
and functional tests that touch DynamoDB, but for the HTTP-contract suites: what DynamoDB
enforces), `others`, or `all`. `--dynamodb=local` runs the storage suites; where DynamoDB Local
cannot run (no Java 17 or npm) they run on moto instead, and the header says why. Tests marked
`moto_only` rely on moto itself and never count as storage suites; tests marked
`dynamodb_local` exercise rules only DynamoDB enforces and are skipped on moto.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_config = json.loads((ROOT / ".chalice" / "config.json").read_text())
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-north-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        **_config["environment_variables"],
        **_config["stages"]["local"]["environment_variables"],
    }
)

from datetime import UTC  # noqa: E402

import boto3  # noqa: E402
import pytest  # noqa: E402
from moto import mock_aws  # noqa: E402

from chalicelib.config import get_settings  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--dynamodb",
        choices=("moto", "local"),
        default="moto",
        help="where the tables live: moto (default) or DynamoDB Local (needs Java 17 and npm)",
    )
    parser.addoption(
        "--suites",
        choices=("all", "storage", "others"),
        default=None,
        help="which tests: the storage suites (integration and functional tests that touch "
        "DynamoDB), the others, or all; default: storage with --dynamodb=local, else all",
    )


_SHARED_URL = "CRM_TEST_DYNAMODB_URL"
_UNAVAILABLE = "CRM_TEST_DYNAMODB_UNAVAILABLE"


def pytest_configure(config):
    config.addinivalue_line("markers", "moto_only: relies on moto itself; not run with --dynamodb=local")
    config.addinivalue_line("markers", "dynamodb_local: needs DynamoDB's own rules; skipped on moto")
    # One DynamoDB Local for the whole run, started before the xdist workers (they inherit the
    # environment); each worker signs with its own access key, which gives it tables of its own.
    if config.getoption("dynamodb") != "local":
        return
    if hasattr(config, "workerinput"):
        # Before any client exists: boto3 keeps the credentials its first client found.
        # DynamoDB Local takes access keys of letters and digits only.
        os.environ["AWS_ACCESS_KEY_ID"] = f"testing{config.workerinput['workerid']}"
    else:
        from chalicelib.local import dynamodb_local

        reason = dynamodb_local.why_unavailable()
        if reason is not None:
            os.environ[_UNAVAILABLE] = reason
        else:
            config._dynamodb_local = dynamodb_local.DynamoDBLocal.start(shared_db=False)
            os.environ[_SHARED_URL] = config._dynamodb_local.url


def pytest_unconfigure(config):
    server = getattr(config, "_dynamodb_local", None)
    if server is not None:
        server.stop()


# Suites about the HTTP contract (parsing, problems, roles, the document, the fuzzer): their
# DynamoDB calls are plain reads and writes that the suites about storage already run on
# DynamoDB Local, so they run on moto only, which keeps `make test` within its budget.
_CONTRACT_SUITES = {
    "test_fuzz.py",
    "test_http_errors.py",
    "test_openapi_and_cors.py",
    "test_docs.py",
    "test_auth_http.py",
    "test_security.py",
    "test_smoke.py",
    "test_consistent_reads.py",
}


def _moto_only(item) -> bool:
    return bool(item.get_closest_marker("moto_only")) or item.path.name in _CONTRACT_SUITES


_STORAGE_FOLDERS = ("integration", "functional")


def _is_storage_suite(item) -> bool:
    """A test of what DynamoDB enforces (conditions, transactions, item sizes, streams): an
    integration or functional test that touches the tables, but for the contract suites."""
    return item.path.parent.name in _STORAGE_FOLDERS and "aws" in item.fixturenames and not _moto_only(item)


def _backend(config) -> str:
    """Where the tables are: DynamoDB Local when asked for and it can run here, else moto."""
    if config.getoption("dynamodb") == "local" and not os.environ.get(_UNAVAILABLE):
        return "local"
    return "moto"


def pytest_report_header(config):
    if config.getoption("dynamodb") == "local" and os.environ.get(_UNAVAILABLE):
        return [
            f"DynamoDB Local cannot run here ({os.environ[_UNAVAILABLE]}): the storage suites run on "
            "moto, and the tests that need DynamoDB's own rules are skipped"
        ]
    return []


def pytest_collection_modifyitems(config, items):
    suites = config.getoption("suites") or ("storage" if config.getoption("dynamodb") == "local" else "all")
    local = _backend(config) == "local"
    kept, left_out = [], []
    for item in items:
        if suites != "all" and (suites == "storage") != _is_storage_suite(item):
            left_out.append(item)
            continue
        if not local and item.get_closest_marker("dynamodb_local"):
            item.add_marker(pytest.mark.skip(reason="needs DynamoDB Local: run with --dynamodb=local"))
        kept.append(item)
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = kept


@pytest.fixture(scope="session")
def dynamodb_backend(request) -> str:
    return _backend(request.config)


@pytest.fixture(scope="session")
def aws(dynamodb_backend):
    """moto for the whole session (and DynamoDB Local for the tables with --dynamodb=local),
    with the stack from infra/resources.json."""
    from chalicelib.local import stack

    url = None
    if dynamodb_backend == "local":
        url = os.environ[_SHARED_URL]
        os.environ.update(stack.dynamodb_environment(url))
    # moto would put its own fake credentials in the environment: ours name the worker.
    with mock_aws(config={"core": {"mock_credentials": False}}):
        outputs = stack.deploy("local", dynamodb=dynamodb_backend)
        # Every DynamoDB request of the session goes where the backend says: a client made
        # before the environment was set would silently test moto instead.
        assert boto3.client("dynamodb").meta.endpoint_url == (
            url or "https://dynamodb.eu-north-1.amazonaws.com"
        )
        yield outputs


@functools.cache
def aws_client(service: str):
    """One boto3 client per service for the session's fixtures: making one takes ~10 ms."""
    return boto3.client(service)


@functools.cache
@functools.cache  # a table's keys never change in a session: one DescribeTable, not one a test
def _key_names(table_name: str) -> tuple[str, ...]:
    table = aws_client("dynamodb").describe_table(TableName=table_name)["Table"]
    return tuple(k["AttributeName"] for k in table["KeySchema"])


def _wipe(table_name: str) -> None:
    dynamodb = aws_client("dynamodb")
    keys = _key_names(table_name)
    names = {f"#{i}": k for i, k in enumerate(keys)}
    scan = {
        "TableName": table_name,
        "ProjectionExpression": ", ".join(names),
        "ExpressionAttributeNames": names,
    }
    while True:
        page = dynamodb.scan(**scan)
        items = page["Items"]
        for start in range(0, len(items), 25):
            requests = [{"DeleteRequest": {"Key": item}} for item in items[start : start + 25]]
            while requests:
                unprocessed = dynamodb.batch_write_item(RequestItems={table_name: requests})
                requests = unprocessed.get("UnprocessedItems", {}).get(table_name, [])
        if "LastEvaluatedKey" not in page:
            return
        scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _wipe_in_moto(table_name: str) -> None:
    """moto keeps a table's items in one dict (its indexes are computed from it on each query):
    emptying it is what deleting every item is, without a request per item."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    dynamodb_backends[DEFAULT_ACCOUNT_ID]["eu-north-1"].tables[table_name].items.clear()


def _trim_stream(table_name: str) -> None:
    """moto deep-copies a table, stream records included, on every transaction: records left
    by earlier tests would make each test slower than the one before."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["eu-north-1"].tables[table_name].stream_shard
    if shard is not None:
        shard.starting_sequence_number += len(shard.items)
        shard.items.clear()


def _purge_queues() -> None:
    # SQS allows one PurgeQueue a minute; emptying moto's queues directly has no such limit.
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sqs.models import sqs_backends

    for queue in sqs_backends[DEFAULT_ACCOUNT_ID]["eu-north-1"].queues.values():
        queue._messages.clear()
        queue._pending_messages.clear()


def _clear_sent_mail() -> None:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    ses_backends[DEFAULT_ACCOUNT_ID]["eu-north-1"].sent_messages.clear()


def _empty_bucket(bucket: str) -> None:
    s3 = aws_client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def _streamed_tables() -> tuple[str, ...]:
    settings = get_settings()
    return (
        settings.customers_table,
        settings.interactions_table,
        settings.cases_table,
        settings.jobs_table,
        settings.campaigns_table,
    )


def _emptied_tables() -> tuple[str, ...]:
    # Emptied too, though not streamed: moto copies a table on every transaction, so each
    # earlier test's run decisions would slow the next test down; and the webhooks table, whose
    # deliveries and guards a later test would find.
    settings = get_settings()
    return (
        *_streamed_tables(),
        settings.campaign_sends_table,
        settings.webhooks_table,
        settings.imports_table,
    )


@pytest.fixture
def tables(aws, dynamodb_backend):
    """Empty tables, queues, exports bucket and mailbox for each test (the stack itself is
    deployed once).

    moto's stream records of earlier tests are dropped; on DynamoDB Local they stay, and a
    test that reads streams asks for `streams_from_now`."""
    _purge_queues()
    _clear_sent_mail()
    _empty_bucket(get_settings().exports_bucket)
    _empty_bucket(get_settings().imports_bucket)
    for name in _emptied_tables():
        if dynamodb_backend == "moto":
            _wipe_in_moto(name)
            _trim_stream(name)
        else:
            _wipe(name)
    return aws


@pytest.fixture
def streams_from_now(tables, dynamodb_backend):
    """Stream readers of this test see only what it writes (tests/integration/streams.py)."""
    if dynamodb_backend == "local":
        from tests.integration import streams

        streams.mark(_streamed_tables())


def event_pump(chalice_app, dynamodb_backend, *, leave_out: tuple[str, ...] = ()):
    from chalicelib.local.pump import EventPump

    if dynamodb_backend == "moto":
        pump = EventPump(chalice_app, poll_interval=0.01)  # `tables` emptied moto's streams
    else:
        # DynamoDB Local keeps earlier tests' records: the first poll takes the positions now.
        # It never swaps a shard, so the pump follows NextShardIterator there, as `make run` does.
        pump = EventPump(chalice_app, poll_interval=0.01, starting_position="LATEST", held_iterators=True)
    pump.queue_consumers = [c for c in pump.queue_consumers if c.name not in leave_out]
    if dynamodb_backend != "moto":
        pump.poll_once(schedules=False)
    return pump


# The events queue's consumer (outbound webhooks' fan-out) is left out of `pump`: tests read
# what was published there. The outbound webhook tests pump it (`webhook_pump`).
EVENTS_QUEUE_CONSUMERS = ("fan_out_events",)


@pytest.fixture
def pump(chalice_app, tables, dynamodb_backend):
    """The local event pump over the app's consumers, for `pump.drain()` in a test."""
    return event_pump(chalice_app, dynamodb_backend, leave_out=EVENTS_QUEUE_CONSUMERS)


@pytest.fixture
def webhook_pump(chalice_app, tables, dynamodb_backend):
    """The event pump with every consumer, outbound webhooks' fan-out included."""
    return event_pump(chalice_app, dynamodb_backend)


class NoDns:
    """No test looks a name up in the real DNS: outbound webhooks resolve through this, which
    knows the names a test gives it (`names[host] = [addresses]`) and no other."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}
        self.asked: list[str] = []

    def __call__(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        return list(self.names.get(host.lower(), []))


@pytest.fixture(autouse=True)
def dns(monkeypatch) -> NoDns:
    from chalicelib import wiring

    resolver = NoDns()
    monkeypatch.setattr(wiring, "webhook_resolver", lambda: resolver)
    return resolver


@pytest.fixture(scope="session")
def chalice_app(aws):
    from app import app

    return app


@pytest.fixture
def client(chalice_app, tables):
    from chalice.test import Client

    with Client(chalice_app) as test_client:
        yield test_client


@pytest.fixture
def frozen_clock(monkeypatch):
    from datetime import datetime

    from chalicelib import wiring
    from chalicelib.domain.clock import FrozenClock

    clock = FrozenClock(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    monkeypatch.setattr(wiring, "clock", clock)
    return clock


def token(role: str = "staff", subject: str = "staff-1", **kwargs) -> str:
    from chalicelib.auth import issue_token

    settings = get_settings()
    return issue_token(
        settings.jwt_secret,
        subject,
        role,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        **kwargs,
    )


@pytest.fixture(scope="session")
def staff_token() -> str:
    return token()


_PRODUCTION_CODE = str(Path(__file__).resolve().parent.parent / "chalicelib")
_LOCAL_STACK = str(Path(_PRODUCTION_CODE) / "local")


def _called_from_production_code() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        path = frame.f_code.co_filename
        if path.startswith(_PRODUCTION_CODE) and not path.startswith(_LOCAL_STACK):
            return True
        frame = frame.f_back
    return False


@pytest.fixture(autouse=True)
def no_scans(request):
    """No request, consumer or job may Scan a table: every DynamoDB call that production code
    (chalicelib/, but for the local stack's set-up) makes in a test with tables is checked.
    Tests may scan to look at what was written."""
    if "tables" not in request.fixturenames:
        yield []
        return
    import botocore.client

    scans: list[str] = []
    original = botocore.client.BaseClient._make_api_call

    def recording(self, operation_name, api_params):
        if operation_name == "Scan" and _called_from_production_code():
            scans.append(api_params.get("TableName", "?"))
        return original(self, operation_name, api_params)

    patch = pytest.MonkeyPatch()
    patch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    try:
        yield scans
    finally:
        patch.undo()
    assert not scans, f"production code scanned {scans}: use a Query or GetItem on a key or index"
