"""The guard of tests/conftest.py catches a Scan made by production code, and only that."""

from __future__ import annotations

from pathlib import Path

import boto3

from chalicelib.config import get_settings

PRODUCTION_FILE = str(Path(__file__).resolve().parents[2] / "chalicelib" / "services" / "probe.py")


def _scan_as_production_code(table_name: str) -> None:
    namespace: dict = {}
    code = compile("def scan(table):\n    return table.scan(Limit=1)\n", PRODUCTION_FILE, "exec")
    exec(code, namespace)
    namespace["scan"](boto3.resource("dynamodb").Table(table_name))


def test_a_scan_by_production_code_is_recorded_and_fails_the_test(tables, no_scans):
    table = get_settings().customers_table
    _scan_as_production_code(table)
    assert no_scans == [table]
    no_scans.clear()  # this test wanted the Scan; the guard would fail it at teardown


def test_a_scan_by_the_test_itself_is_allowed(tables, no_scans):
    boto3.resource("dynamodb").Table(get_settings().customers_table).scan(Limit=1)
    assert no_scans == []
