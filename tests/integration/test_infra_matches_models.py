"""infra/resources.json is the one declaration of the tables; the PynamoDB models must agree
with it on names, keys, attribute types and indexes."""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path

import pytest
from pynamodb.models import Model

from chalicelib.config import get_settings
from chalicelib.store import models

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = json.loads((ROOT / "infra" / "resources.json").read_text())


def _tables() -> dict[str, dict]:
    found = {}
    for resource in TEMPLATE["Resources"].values():
        if resource["Type"] == "AWS::DynamoDB::Table":
            props = resource["Properties"]
            name = props["TableName"]["Fn::Sub"].replace("${Stage}", get_settings().stage)
            found[name] = props
    return found


def _model_classes() -> list[type]:
    # Every module of the package: its __init__ does not re-export them all (not the
    # campaigns' models, which only the campaign repositories import).
    modules = [models] + [
        importlib.import_module(f"{models.__name__}.{module.name}")
        for module in pkgutil.iter_modules(models.__path__)
    ]
    found = {
        m: None
        for module in modules
        for m in vars(module).values()
        if isinstance(m, type) and issubclass(m, Model) and m is not Model
    }
    return list(found)


def _keys(schema: list[dict]) -> dict[str, str]:
    return {k["AttributeName"]: k["KeyType"] for k in schema}


def test_every_model_names_a_table_of_the_template():
    tables = _tables()
    for model in _model_classes():
        assert model.Meta.table_name in tables, model.__name__
    # Powertools owns the idempotency table; only the attempts' seeds and claims sit beside.
    assert {m.Meta.table_name for m in _model_classes()} == set(tables)


def test_the_idempotency_table_has_the_shape_powertools_expects():
    table = _tables()[get_settings().idempotency_table]
    assert _keys(table["KeySchema"]) == {"id": "HASH"}
    assert table["AttributeDefinitions"] == [{"AttributeName": "id", "AttributeType": "S"}]
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expiration", "Enabled": True}


@pytest.mark.parametrize("model", _model_classes(), ids=lambda m: m.__name__)
def test_model_keys_indexes_and_attribute_types_match_the_template(model):
    table = _tables()[model.Meta.table_name]
    schema = model._get_schema()
    assert _keys(schema["key_schema"]) == _keys(table["KeySchema"])
    declared = {a["AttributeName"]: a["AttributeType"] for a in table["AttributeDefinitions"]}
    for attribute in schema["attribute_definitions"]:
        assert declared.get(attribute["AttributeName"]) == attribute["AttributeType"], attribute
    template_indexes = {i["IndexName"]: i for i in table.get("GlobalSecondaryIndexes", [])}
    for index in schema.get("global_secondary_indexes", []):
        declared_index = template_indexes[index["index_name"]]
        assert _keys(index["key_schema"]) == _keys(declared_index["KeySchema"])
        assert index["projection"]["ProjectionType"] == declared_index["Projection"]["ProjectionType"]
    # Index key attributes that a model writes must have the type the template declares.
    for name, attr in model.get_attributes().items():
        if attr.attr_name in declared:
            assert attr.attr_type == declared[attr.attr_name], (model.__name__, name)


def test_every_index_of_the_template_is_modelled():
    for table_name, table in _tables().items():
        modelled = {
            index["index_name"]
            for model in _model_classes()
            if model.Meta.table_name == table_name
            for index in model._get_schema().get("global_secondary_indexes", [])
        }
        assert modelled == {i["IndexName"] for i in table.get("GlobalSecondaryIndexes", [])}


def test_the_interactions_table_streams_new_and_old_images():
    table = _tables()[get_settings().interactions_table]
    assert table["StreamSpecification"] == {"StreamViewType": "NEW_AND_OLD_IMAGES"}
