"""Test environment: fake credentials and the local stage's settings before anything imports
boto3 or the app; moto in-process with the resources deployed from infra/."""

from __future__ import annotations

import json
import os
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


@pytest.fixture(scope="session")
def aws():
    """moto for the whole session, with the stack from infra/resources.json."""
    with mock_aws():
        cloudformation = boto3.client("cloudformation")
        cloudformation.create_stack(
            StackName="crm-local",
            TemplateBody=(ROOT / "infra" / "resources.json").read_text(),
            Parameters=[{"ParameterKey": "Stage", "ParameterValue": "local"}],
        )
        stack = cloudformation.describe_stacks(StackName="crm-local")["Stacks"][0]
        assert stack["StackStatus"] == "CREATE_COMPLETE"
        boto3.client("ses").verify_email_identity(EmailAddress=get_settings().mail_from)
        yield {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}


def _wipe(table_name: str) -> None:
    table = boto3.resource("dynamodb").Table(table_name)
    keys = [k["AttributeName"] for k in table.key_schema]
    with table.batch_writer() as batch:
        for item in table.scan(
            ProjectionExpression=", ".join(f"#{i}" for i in range(len(keys))),
            ExpressionAttributeNames={f"#{i}": k for i, k in enumerate(keys)},
        )["Items"]:
            batch.delete_item(Key={k: item[k] for k in keys})


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


@pytest.fixture
def tables(aws):
    """Empty tables, queues and mailbox for each test (the stack itself is deployed once)."""
    _purge_queues()
    _clear_sent_mail()
    settings = get_settings()
    for name in (settings.customers_table, settings.interactions_table, settings.cases_table):
        _wipe(name)
        _trim_stream(name)
    return aws


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

    from chalicelib.api import deps
    from chalicelib.domain.clock import FrozenClock

    clock = FrozenClock(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    monkeypatch.setattr(deps, "clock", clock)
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
