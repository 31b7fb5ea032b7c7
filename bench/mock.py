"""In-process moto with the stack from infra/resources.json (as tests/conftest.py deploys it),
and the instruments the benchmarks read: a DynamoDB request recorder, direct table access for
bulk loading and swapping, and an optional key-addressed Query for moto.

Import this module only after bench.common.apply_local_env()."""

from __future__ import annotations

import copy
import inspect
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import boto3
import botocore.client
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends
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


def trim_streams() -> None:
    """Drop the stream records written so far (nothing here consumes them; moto copies them
    with the table on every transaction)."""
    for name in table_names():
        shard = moto_table(name).stream_shard
        if shard is not None:
            shard.starting_sequence_number += len(shard.items)
            shard.items.clear()


def clear_tables() -> None:
    """Empty every table (and its stream) in place: much faster than deleting item by item."""
    for name in table_names():
        moto_table(name).items = defaultdict(dict)
    trim_streams()


@contextmanager
def streams_detached() -> Iterator[None]:
    """Bulk loading writes no stream records: nothing consumes them and they would cost memory."""
    shards = {name: moto_table(name).stream_shard for name in table_names()}
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
    (GSI, grouped once per table object), which is what DynamoDB reads. Only for read-only
    phases: the GSI grouping is not maintained on writes."""
    groups: dict[tuple[int, str], dict] = {}

    def candidates(table: Table, index_name: str | None, hash_key, hash_conditions) -> list:
        if not index_name:
            partition = table.items.get(hash_key) if hash_key is not None else None
            if partition is None:
                return []
            return list(partition.values()) if table.range_key_attr else [partition]
        attr, value = hash_conditions[0]
        key = (id(table), f"{index_name}/{attr}")
        if key not in groups:
            grouped: dict = defaultdict(list)
            for item in table.all_items():
                if attr in item.attrs:
                    grouped[item.attrs[attr]].append(item)
            groups[key] = grouped
        return list(groups[key].get(value, ()))

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

    Table.query = query
    try:
        yield
    finally:
        Table.query = _original_query


# -- request recorder ------------------------------------------------------------------


@dataclass
class Recording:
    calls: list[tuple[str, str]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # seconds per operation name ("Query", "TransactWriteItems", ...), all services together
    operation_seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # (operation, Count, ScannedCount) of each Query or Scan response
    reads: list[tuple[str, int, int]] = field(default_factory=list)

    def operations(self, service: str = "dynamodb") -> Counter:
        return Counter(op for s, op in self.calls if s == service)

    def total(self, service: str = "dynamodb") -> int:
        return sum(1 for s, _ in self.calls if s == service)


class Recorder:
    """Wraps botocore's BaseClient._make_api_call, which boto3 and PynamoDB both go through: every
    client of every session is seen. Records only inside `record()`."""

    def __init__(self) -> None:
        self._current: Recording | None = None
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
