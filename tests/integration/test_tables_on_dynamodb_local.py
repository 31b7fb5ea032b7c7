"""DynamoDB Local accepted every table, index and key of infra/resources.json as declared:
what DescribeTable and DescribeTimeToLive report is what the template says. (Names under 3
characters, say, would have failed CreateTable; a setting dropped on the way would show here.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chalicelib.config import get_settings
from tests.conftest import aws_client

pytestmark = pytest.mark.dynamodb_local

TEMPLATE = json.loads((Path(__file__).resolve().parents[2] / "infra" / "resources.json").read_text())
TABLES = {
    logical_id: resource["Properties"]
    for logical_id, resource in TEMPLATE["Resources"].items()
    if resource["Type"] == "AWS::DynamoDB::Table"
}


def _name(properties: dict) -> str:
    return properties["TableName"]["Fn::Sub"].replace("${Stage}", get_settings().stage)


def _keys(schema: list[dict]) -> list[tuple[str, str]]:
    return [(k["AttributeName"], k["KeyType"]) for k in schema]


def _projection(projection: dict) -> tuple[str, frozenset[str]]:
    return projection["ProjectionType"], frozenset(projection.get("NonKeyAttributes", ()))


def test_the_backend_holds_the_templates_tables_and_no_others(aws):
    settings = get_settings()
    declared = {_name(p) for p in TABLES.values()}
    assert declared == {
        settings.customers_table,
        settings.interactions_table,
        settings.cases_table,
        settings.idempotency_table,
        settings.jobs_table,
        settings.campaigns_table,
        settings.campaign_sends_table,
        settings.webhooks_table,
        settings.imports_table,
    }
    assert set(aws_client("dynamodb").list_tables()["TableNames"]) == declared


@pytest.mark.parametrize("logical_id", sorted(TABLES))
def test_each_table_has_the_keys_indexes_stream_and_ttl_of_the_template(aws, logical_id):
    declared = TABLES[logical_id]
    name = _name(declared)
    table = aws_client("dynamodb").describe_table(TableName=name)["Table"]

    assert table["TableStatus"] == "ACTIVE"
    assert _keys(table["KeySchema"]) == _keys(declared["KeySchema"])
    assert sorted(table["AttributeDefinitions"], key=str) == sorted(declared["AttributeDefinitions"], key=str)
    assert table["BillingModeSummary"]["BillingMode"] == declared["BillingMode"]
    # The template's Fn::If gives deletion protection in prod only; the local stage has none.
    assert table["DeletionProtectionEnabled"] is False

    described = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
    expected = {i["IndexName"]: i for i in declared.get("GlobalSecondaryIndexes", [])}
    assert set(described) == set(expected)
    for index_name, index in expected.items():
        got = described[index_name]
        assert got["IndexStatus"] == "ACTIVE", index_name
        assert _keys(got["KeySchema"]) == _keys(index["KeySchema"]), index_name
        assert _projection(got["Projection"]) == _projection(index["Projection"]), index_name
    assert not table.get("LocalSecondaryIndexes") and not declared.get("LocalSecondaryIndexes")

    stream = declared.get("StreamSpecification")
    if stream is None:
        assert not table.get("StreamSpecification", {}).get("StreamEnabled")
    else:
        assert table["StreamSpecification"] == {
            "StreamEnabled": True,
            "StreamViewType": stream["StreamViewType"],
        }
        assert table["LatestStreamArn"].startswith(table["TableArn"] + "/stream/")

    ttl = aws_client("dynamodb").describe_time_to_live(TableName=name)["TimeToLiveDescription"]
    declared_ttl = declared.get("TimeToLiveSpecification")
    if declared_ttl is None:
        assert ttl["TimeToLiveStatus"] == "DISABLED"
    else:
        assert declared_ttl["Enabled"] is True
        assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", declared_ttl["AttributeName"])
