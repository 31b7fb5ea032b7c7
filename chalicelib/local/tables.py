"""The template's DynamoDB tables, created with the DynamoDB API where CloudFormation is not there.

moto deploys infra/resources.json whole through its CloudFormation. DynamoDB Local has no
CloudFormation, so its tables are made from the same `AWS::DynamoDB::Table` declarations with
CreateTable (and UpdateTimeToLive), and the rest of the template goes to moto without them:
there is still one declaration of every table, index and key. A table property this module does
not know is an error, so the template cannot grow a setting the local tables silently lack.
"""

from __future__ import annotations

import copy
import re
import time
from typing import Any

TABLE = "AWS::DynamoDB::Table"
# Properties that change nothing an emulator can observe: backups and encryption at rest.
_NOT_EMULATED = {"PointInTimeRecoverySpecification", "SSESpecification"}
_CREATE_TABLE = {
    "TableName",
    "AttributeDefinitions",
    "KeySchema",
    "BillingMode",
    "GlobalSecondaryIndexes",
    "LocalSecondaryIndexes",
    "ProvisionedThroughput",
    "DeletionProtectionEnabled",
    "TableClass",
}
_HANDLED = _CREATE_TABLE | _NOT_EMULATED | {"StreamSpecification", "TimeToLiveSpecification"}
_SUB = re.compile(r"\$\{([A-Za-z0-9_.:]+)\}")


class TemplateError(ValueError):
    """The template uses something this module cannot resolve or create."""


class _Resolver:
    """Ref, Fn::Sub, Fn::If and Fn::Equals over parameters and conditions: what table
    properties use. Ref/GetAtt of resources resolve only where `attributes` knows them."""

    def __init__(self, template: dict, parameters: dict[str, str], attributes: dict[str, Any]) -> None:
        declared = template.get("Parameters", {})
        self.values = {name: spec.get("Default") for name, spec in declared.items()}
        self.values.update(parameters)
        self.values.setdefault("AWS::NoValue", None)
        self.attributes = attributes
        self.conditions = template.get("Conditions", {})

    def condition(self, name: str) -> bool:
        if name not in self.conditions:
            raise TemplateError(f"unknown condition {name!r}")
        return bool(self(self.conditions[name]))

    def reference(self, name: str) -> Any:
        if name in self.values:
            return self.values[name]
        if name in self.attributes:
            return self.attributes[name]
        raise TemplateError(f"cannot resolve Ref {name!r}")

    def __call__(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return self.reference(value)
            if key == "Fn::Sub" and isinstance(value, str):
                return _SUB.sub(lambda match: str(self.reference(match.group(1))), value)
            if key == "Fn::If":
                name, when_true, when_false = value
                return self(when_true if self.condition(name) else when_false)
            if key == "Fn::Equals":
                left, right = self(value)
                return left == right
            if key == "Fn::GetAtt":
                name = ".".join(value) if isinstance(value, list) else value
                if name in self.attributes:
                    return self.attributes[name]
                raise TemplateError(f"cannot resolve Fn::GetAtt {name!r}")
            if key.startswith("Fn::"):
                raise TemplateError(f"{key} is not supported here")
        return {key: self(value) for key, value in node.items()}


def table_resources(template: dict) -> dict[str, dict]:
    return {name: r for name, r in template.get("Resources", {}).items() if r.get("Type") == TABLE}


def _create_table_request(logical_id: str, properties: dict) -> dict[str, Any]:
    unknown = set(properties) - _HANDLED
    if unknown:
        raise TemplateError(f"{logical_id}: table properties {sorted(unknown)} are not created locally")
    request = {name: properties[name] for name in _CREATE_TABLE if name in properties}
    if "DeletionProtectionEnabled" in request and request["DeletionProtectionEnabled"] is None:
        del request["DeletionProtectionEnabled"]
    stream = properties.get("StreamSpecification")
    if stream:
        request["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
    return request


def table_requests(template: dict, parameters: dict[str, str]) -> dict[str, dict[str, Any]]:
    """CreateTable arguments per logical id, with `TimeToLiveSpecification` kept aside as
    `_ttl` (it is a separate call)."""
    resolve = _Resolver(template, parameters, {})
    requests = {}
    for logical_id, resource in table_resources(template).items():
        properties = resolve(copy.deepcopy(resource.get("Properties", {})))
        request = _create_table_request(logical_id, properties)
        ttl = properties.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            request["_ttl"] = {"AttributeName": ttl["AttributeName"], "Enabled": True}
        requests[logical_id] = request
    return requests


def without_tables(template: dict) -> dict:
    """The template minus its tables and the outputs that name them: what moto deploys
    when the tables live elsewhere."""
    tables = set(table_resources(template))
    rest = copy.deepcopy(template)
    rest["Resources"] = {k: v for k, v in rest["Resources"].items() if k not in tables}
    for name, resource in rest["Resources"].items():
        if _mentions(resource, tables):
            raise TemplateError(f"{name} refers to a table; it cannot be deployed without them")
    rest["Outputs"] = {k: v for k, v in rest.get("Outputs", {}).items() if not _mentions(v, tables)}
    return rest


def _mentions(node: Any, names: set[str]) -> bool:
    if isinstance(node, list):
        return any(_mentions(item, names) for item in node)
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref" and value in names:
                return True
            if key == "Fn::GetAtt":
                target = value[0] if isinstance(value, list) else str(value).split(".")[0]
                if target in names:
                    return True
            if _mentions(value, names):
                return True
    return False


def create_tables(client: Any, template: dict, parameters: dict[str, str], *, timeout: float = 60) -> dict:
    """Create every table of `template` with `client` (boto3 DynamoDB) and return the
    template's outputs that name them (table names, stream ARNs)."""
    attributes: dict[str, Any] = {}
    for logical_id, request in table_requests(template, parameters).items():
        request = dict(request)
        ttl = request.pop("_ttl", None)
        client.create_table(**request)
        deadline = time.monotonic() + timeout
        while (table := client.describe_table(TableName=request["TableName"])["Table"])[
            "TableStatus"
        ] != "ACTIVE":
            if time.monotonic() > deadline:
                raise TimeoutError(f"table {request['TableName']} is still {table['TableStatus']}")
            time.sleep(0.05)
        if ttl:
            client.update_time_to_live(TableName=request["TableName"], TimeToLiveSpecification=ttl)
        attributes[logical_id] = table["TableName"]
        attributes[f"{logical_id}.Arn"] = table["TableArn"]
        if "LatestStreamArn" in table:
            attributes[f"{logical_id}.StreamArn"] = table["LatestStreamArn"]
    resolve = _Resolver(template, parameters, attributes)
    tables = set(table_resources(template))
    return {
        name: resolve(output["Value"])
        for name, output in template.get("Outputs", {}).items()
        if _mentions(output, tables)
    }
