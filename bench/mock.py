"""In-process moto with the stack from infra/resources.json (as tests/conftest.py deploys it),
and the instruments the benchmarks read: a DynamoDB request recorder, direct table access for
bulk loading and swapping, and an optional key-addressed Query for moto.

Import this module only after bench.common.apply_local_env()."""

from __future__ import annotations

import base64
import copy
import inspect
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import boto3
import botocore.client
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.dynamodb.models.table import Table

from bench.common import ROOT

REGION = "eu-north-1"


def start_moto() -> mock_aws:
    """moto on, the stack deployed through CloudFormation and the SES sender verified."""
    from chalicelib.config import get_settings

    mock = mock_aws()
    mock.start()
    cloudformation = boto3.client("cloudformation", region_name=REGION)
    cloudformation.create_stack(
        StackName="crm-local",
        TemplateBody=(ROOT / "infra" / "resources.json").read_text(),
        Parameters=[{"ParameterKey": "Stage", "ParameterValue": "local"}],
    )
    stack = cloudformation.describe_stacks(StackName="crm-local")["Stacks"][0]
    if stack["StackStatus"] != "CREATE_COMPLETE":
        raise RuntimeError(f"stack not created: {stack['StackStatus']}")
    boto3.client("ses", region_name=REGION).verify_email_identity(EmailAddress=get_settings().mail_from)
    return mock


def table_names() -> list[str]:
    from chalicelib.config import get_settings

    settings = get_settings()
    return [settings.customers_table, settings.interactions_table, settings.cases_table]


def _tables() -> dict[str, Table]:
    return dynamodb_backends[DEFAULT_ACCOUNT_ID][REGION].tables


def moto_table(name: str) -> Table:
    return _tables()[name]


def item_count(name: str) -> int:
    return len(moto_table(name))


def all_table_names() -> list[str]:
    return list(_tables())


def trim_streams(names: list[str] | None = None) -> None:
    """Drop the stream records written so far (nothing here consumes them; moto copies them
    with the table on every transaction)."""
    for name in names or table_names():
        shard = moto_table(name).stream_shard
        if shard is not None:
            shard.starting_sequence_number += len(shard.items)
            shard.items.clear()


def clear_tables(names: list[str] | None = None) -> None:
    """Empty every table (and its stream) in place: much faster than deleting item by item."""
    names = names or table_names()
    for name in names:
        moto_table(name).items = defaultdict(dict)
    trim_streams(names)


def clear_queues_and_mail() -> None:
    """Empty every SQS queue and SES's record of sent mail (no PurgeQueue: one a minute)."""
    from moto.ses.models import ses_backends
    from moto.sqs.models import sqs_backends

    for queue in sqs_backends[DEFAULT_ACCOUNT_ID][REGION].queues.values():
        queue._messages.clear()
        queue._pending_messages.clear()
    ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages.clear()


@contextmanager
def streams_detached(names: list[str] | None = None) -> Iterator[None]:
    """Bulk loading writes no stream records: nothing consumes them and they would cost memory."""
    shards = {name: moto_table(name).stream_shard for name in names or table_names()}
    for name in shards:
        moto_table(name).stream_shard = None
    try:
        yield
    finally:
        for name, shard in shards.items():
            moto_table(name).stream_shard = shard


def snapshot(names: list[str]) -> dict[str, Table]:
    return {name: copy.deepcopy(moto_table(name)) for name in names}


def install(tables: dict[str, Table]) -> None:
    """Put these Table objects in moto's backend under their names (swap whole tables)."""
    _tables().update(tables)


# -- key-addressed Query ---------------------------------------------------------------

_original_query = Table.query
_query_signature = inspect.signature(_original_query)


@contextmanager
def keyed_queries() -> Iterator[None]:
    """moto's Table.query walks (and sorts) every item of the table to find one partition, so
    its cost grows with the table; DynamoDB addresses the partition by its key. Inside this
    block a Query sees only the items of its partition (base table) or of its index partition
    (GSI: grouped once per table object, and again after each write to the table), which is
    what DynamoDB reads."""
    groups: dict[tuple[int, str], tuple[Table, int, dict]] = {}
    writes: Counter = Counter()  # per table object: grouped again after a write

    def candidates(table: Table, index_name: str | None, hash_key, hash_conditions) -> list:
        if not index_name:
            partition = table.items.get(hash_key) if hash_key is not None else None
            if partition is None:
                return []
            return list(partition.values()) if table.range_key_attr else [partition]
        attr, value = hash_conditions[0]
        key = (id(table), f"{index_name}/{attr}")
        cached = groups.get(key)
        if cached is None or cached[0] is not table or cached[1] != writes[id(table)]:
            grouped: dict = defaultdict(list)
            for item in table.all_items():
                if attr in item.attrs:
                    grouped[item.attrs[attr]].append(item)
            cached = groups[key] = (table, writes[id(table)], grouped)
        return list(cached[2].get(value, ()))

    def counted(write: Callable, table_of: Callable) -> Callable:
        def wrapper(self, *args, **kwargs):
            try:
                return write(self, *args, **kwargs)
            finally:
                writes[id(table_of(self, *args, **kwargs))] += 1

        return wrapper

    def query(self: Table, *args, **kwargs):
        bound = _query_signature.bind(self, *args, **kwargs)
        arguments = bound.arguments
        items = candidates(
            self,
            arguments.get("index_name"),
            arguments.get("hash_key"),
            arguments.get("hash_key_conditions") or [],
        )
        self.all_items = lambda: items  # an instance attribute shadows the method for this call
        try:
            return _original_query(self, *args, **kwargs)
        finally:
            del self.all_items

    def own(table: Table, *args, **kwargs) -> Table:
        return table

    def named(backend: DynamoDBBackend, table_name: str, *args, **kwargs) -> Table:
        return backend.get_table(table_name)

    originals = (Table.put_item, Table.delete_item, DynamoDBBackend.update_item)
    Table.put_item = counted(Table.put_item, own)
    Table.delete_item = counted(Table.delete_item, own)
    # An update changes the item in place (moto's Table never sees it).
    DynamoDBBackend.update_item = counted(DynamoDBBackend.update_item, named)
    Table.query = query
    try:
        yield
    finally:
        Table.query = _original_query
        Table.put_item, Table.delete_item, DynamoDBBackend.update_item = originals


# -- transactions backed up item by item ------------------------------------------------

_original_transact = DynamoDBBackend.transact_write_items


class _TablesUncopied:
    """Stands in for the `copy` module inside moto.dynamodb.models while a transaction runs:
    its whole-table backups become the table itself (item_backups() backs up the items)."""

    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


@contextmanager
def item_backups() -> Iterator[None]:
    """moto backs up each table a TransactWriteItems touches by deep-copying the whole table,
    once per item of the transaction, so a transaction's cost follows the tables' size; on
    DynamoDB it follows the items written. Inside this block a transaction backs up only the
    items it names; if it fails, they are put back and the stream records it wrote are dropped:
    what moto's rollback leaves, without the copies (and without swapping in new table and
    shard objects)."""
    import moto.dynamodb.models as backend_module

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict]) -> None:
        saved: list[tuple[Table, object, object, object]] = []
        streams: dict[int, tuple[object, int]] = {}
        for entry in transact_items:
            operation = next(iter(entry.values()), {})
            table = self.tables.get(operation.get("TableName"))
            if table is None:
                continue  # moto reports it
            key = operation.get("Key") or {
                name: operation.get("Item", {})[name]
                for name in (table.hash_key_attr, table.range_key_attr)
                if name and name in operation.get("Item", {})
            }
            try:
                hash_value, range_value = self.get_keys_value(table, key)
            except Exception:
                continue  # a malformed key: moto reports it, having written nothing
            current = table.get_item(hash_value, range_value)
            saved.append((table, hash_value, range_value, copy.deepcopy(current)))
            if table.stream_shard is not None:
                streams.setdefault(id(table), (table.stream_shard, len(table.stream_shard.items)))
        backend_module.copy = _TablesUncopied
        try:
            return _original_transact(self, transact_items)
        except Exception:
            for table, hash_value, range_value, item in reversed(saved):
                partition = table.items[hash_value] if table.range_key_attr else table.items
                slot = range_value if table.range_key_attr else hash_value
                if item is None:
                    partition.pop(slot, None)
                else:
                    partition[slot] = item
            for shard, length in streams.values():
                del shard.items[length:]
            raise
        finally:
            backend_module.copy = copy

    DynamoDBBackend.transact_write_items = transact_write_items
    try:
        yield
    finally:
        DynamoDBBackend.transact_write_items = _original_transact


# -- DynamoDB responses as plain JSON ---------------------------------------------------

_DATA_PLANE = {
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "TransactGetItems",
}


def _base64(value: object) -> str:
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(type(value).__name__)  # anything else: moto's own serializer


@contextmanager
def plain_json_responses() -> Iterator[None]:
    """moto serializes each response by walking the operation's output shape value by value
    (about 10 ms for a page of items): most of what a DynamoDB call costs in-process. Inside
    this block the responses of DynamoDB's item operations are written with json.dumps, which
    for them gives the same document (they hold strings, numbers, lists and maps, and binary
    values that are sent base64-encoded); errors and anything holding another type (a
    DescribeTable's times) still go through moto's serializer."""
    from moto.core.responses import ActionResult

    original = ActionResult.execute_result

    def execute_result(self: ActionResult, context):
        if (
            context.service_model.service_name != "dynamodb"
            or context.operation_model.name not in _DATA_PLANE
        ):
            return original(self, context)
        try:
            body = json.dumps(self.result, default=_base64)
        except TypeError:
            return original(self, context)
        return 200, {"Content-Type": "application/x-amz-json-1.0"}, body

    ActionResult.execute_result = execute_result
    try:
        yield
    finally:
        ActionResult.execute_result = original


# -- request recorder ------------------------------------------------------------------


@dataclass
class Recording:
    calls: list[tuple[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # seconds per operation name ("Query", "TransactWriteItems", ...), all services together
    operation_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # (operation, Count, ScannedCount) of each Query or Scan response
    reads: list[tuple[str, int, int]] = field(default_factory=list)
    # (label, service, operation) -> calls, the label being the recorder's at the call
    labelled: Counter = field(default_factory=Counter)

    def operations(self, service: str = "dynamodb") -> Counter:
        return Counter(op for s, op in self.calls if s == service)

    def total(self, service: str = "dynamodb") -> int:
        return sum(1 for s, _ in self.calls if s == service)


class Recorder:
    """Wraps botocore's BaseClient._make_api_call, which boto3 and PynamoDB both go through: every
    client of every session is seen. Records only inside `record()`; `label`, when set, tags
    the calls made meanwhile with who made them (a handler, a poller)."""

    def __init__(self) -> None:
        self._current: Recording | None = None
        self.label: str | None = None
        self._original = botocore.client.BaseClient._make_api_call
        recorder = self
        original = self._original

        def recording(client, operation_name, api_params):
            current = recorder._current
            if current is None:
                return original(client, operation_name, api_params)
            service = client.meta.service_model.service_name
            start = time.perf_counter()
            try:
                result = original(client, operation_name, api_params)
            finally:
                elapsed = time.perf_counter() - start
                current.seconds[service] += elapsed
                current.operation_seconds[operation_name] += elapsed
                current.calls.append((service, operation_name))
                if recorder.label is not None:
                    current.labelled[(recorder.label, service, operation_name)] += 1
            if operation_name in ("Query", "Scan"):
                current.reads.append((operation_name, result.get("Count", 0), result.get("ScannedCount", 0)))
            return result

        botocore.client.BaseClient._make_api_call = recording

    @contextmanager
    def record(self) -> Iterator[Recording]:
        previous, self._current = self._current, Recording()
        try:
            yield self._current
        finally:
            self._current = previous

    def uninstall(self) -> None:
        botocore.client.BaseClient._make_api_call = self._original
