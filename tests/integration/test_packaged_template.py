"""The template `make package` deploys is production-correct for every function, event, table and
queue in it, whatever app.py and infra/resources.json declare.

The template is rendered offline (Chalice's own template generation and merge, without building
deployment.zip); `python -m infra.package` checks that `chalice package` writes the same one.
"""

from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from infra.package import (
    PackagingError,
    build_merge_template,
    chalice_sam,
    dump_json,
    merge_templates,
    render_template,
)
from infra.policy import MAIL_IDENTITIES

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("dev", "prod")
DECLARED = json.loads((ROOT / "infra" / "resources.json").read_text())["Resources"]
CHALICE_CONFIG = json.loads((ROOT / ".chalice" / "config.json").read_text())
KNOWN_EVENT_TYPES = {"DynamoDB", "SQS", "Schedule", "CloudWatchEvent"}
WILDCARD_RESOURCE_ACTIONS = {"dynamodb:ListStreams", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
STREAM_READ = {"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator"}
QUEUE_CONSUME = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
}
TABLE_ITEMS = {
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
}


@pytest.fixture(scope="module")
def templates() -> dict[str, dict[str, Any]]:
    return {stage: render_template(stage) for stage in STAGES}


@pytest.fixture(scope="module")
def prod_sam() -> dict[str, Any]:
    return chalice_sam("prod")


def _of_type(template: dict[str, Any], type_: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == type_}


def _functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: r["Properties"] for name, r in _of_type(template, "AWS::Serverless::Function").items()}


def _events(template: dict[str, Any], type_: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for function, properties in _functions(template).items():
        for event_name, event in properties.get("Events", {}).items():
            if event["Type"] == type_:
                yield function, event_name, event["Properties"]


def _getatt(value: Any) -> tuple[str, str] | None:
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target, attribute = value["Fn::GetAtt"]
        return target, attribute
    return None


def _arn_of(value: Any) -> str | None:
    """The logical id in `{"Fn::GetAtt": [X, "Arn"]}` or `{"Fn::Sub": "${X.Arn}"}`."""
    getatt = _getatt(value)
    if getatt:
        return getatt[0] if getatt[1] == "Arn" else None
    if isinstance(value, dict) and set(value) == {"Fn::Sub"}:
        match = re.fullmatch(r"\$\{(\w+)\.Arn\}", str(value["Fn::Sub"]))
        return match[1] if match else None
    return None


def _resolve(template: dict[str, Any], value: Any) -> Any:
    """Fn::If and conditions evaluated with the template's parameter defaults."""

    def evaluate(node: Any) -> Any:
        if isinstance(node, dict) and len(node) == 1:
            (function, arguments), *_ = node.items()
            if function == "Ref" and arguments in template["Parameters"]:
                return template["Parameters"][arguments]["Default"]
            if function == "Condition":
                return evaluate(template["Conditions"][arguments])
            if function == "Fn::Equals":
                return evaluate(arguments[0]) == evaluate(arguments[1])
            if function == "Fn::Not":
                return not evaluate(arguments[0])
            if function == "Fn::And":
                return all(evaluate(a) for a in arguments)
            if function == "Fn::Or":
                return any(evaluate(a) for a in arguments)
            if function == "Fn::If":
                condition, when_true, when_false = arguments
                return evaluate(when_true if evaluate(template["Conditions"][condition]) else when_false)
        return node

    return evaluate(value)


def _statements(template: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, resource in template["Resources"].items():
        properties = resource.get("Properties", {})
        documents = []
        if resource["Type"] == "AWS::IAM::Role":
            assert not properties.get("ManagedPolicyArns"), f"{name} has managed policies"
            documents = [policy["PolicyDocument"] for policy in properties.get("Policies", [])]
        elif resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents = [properties["PolicyDocument"]]
        elif resource["Type"] == "AWS::Serverless::Function":
            policies = properties.get("Policies", [])
            assert all(isinstance(p, dict) and "Statement" in p for p in policies), (
                f"{name}: SAM policy templates"
            )
            documents = policies
        for document in documents:
            for statement in document["Statement"]:
                yield name, statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _allowed(template: dict[str, Any], role: str) -> list[tuple[set[str], list[Any]]]:
    return [
        (set(_as_list(s["Action"])), _as_list(s["Resource"]))
        for name, s in _statements(template)
        if name == role and s["Effect"] == "Allow"
    ]


def _grants(template: dict[str, Any], role: str, actions: set[str], resource: Any) -> bool:
    return all(
        any(action in granted and resource in resources for granted, resources in _allowed(template, role))
        for action in actions
    )


def _role_of(properties: dict[str, Any]) -> str:
    role = _getatt(properties["Role"])
    assert role is not None, f"a function uses a role outside the template: {properties['Role']!r}"
    return role[0]


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_and_event_is_of_a_checked_kind(templates, stage):
    template = templates[stage]
    functions = _functions(template)
    assert functions
    for name, properties in functions.items():
        assert properties["Role"] and _role_of(properties) in _of_type(template, "AWS::IAM::Role"), name
        for event_name, event in properties.get("Events", {}).items():
            assert event["Type"] in KNOWN_EVENT_TYPES, (
                f"{name}.{event_name}: add checks for {event['Type']} events"
            )
    assert list(_events(template, "DynamoDB")), "the app has stream consumers"


@pytest.mark.parametrize("stage", STAGES)
def test_stream_events_retry_bounded_and_park_failures(templates, stage):
    template = templates[stage]
    for function, event, properties in _events(template, "DynamoDB"):
        where = f"{function}.{event}"
        table, attribute = _getatt(properties["Stream"]) or (None, None)
        assert attribute == "StreamArn", where
        assert DECLARED.get(table, {}).get("Type") == "AWS::DynamoDB::Table", where
        assert DECLARED[table]["Properties"]["StreamSpecification"]["StreamViewType"], where
        assert properties["StartingPosition"] in ("TRIM_HORIZON", "LATEST"), where
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"], where
        assert properties["BisectBatchOnFunctionError"] is True, where
        assert 0 <= properties["MaximumRetryAttempts"] <= 10, where
        assert 60 <= properties["MaximumRecordAgeInSeconds"] <= 86400, where
        assert properties["DestinationConfig"] == {
            "OnFailure": {"Destination": {"Fn::GetAtt": ["StreamFailureQueue", "Arn"]}}
        }, where
        assert DECLARED["StreamFailureQueue"]["Type"] == "AWS::SQS::Queue"


@pytest.mark.parametrize("stage", STAGES)
def test_queue_events_report_partial_failures_on_declared_queues(templates, stage):
    template = templates[stage]
    for function, event, properties in _events(template, "SQS"):
        where = f"{function}.{event}"
        assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"], where
        queue = _arn_of(properties["Queue"])
        assert DECLARED.get(queue, {}).get("Type") == "AWS::SQS::Queue", where
        visibility = template["Resources"][queue]["Properties"].get("VisibilityTimeout", 30)
        assert visibility >= 6 * _functions(template)[function]["Timeout"], where


@pytest.mark.parametrize("stage", STAGES)
def test_queues_have_dead_letter_queues_and_keep_failures_14_days(templates, stage):
    template = templates[stage]
    queues = _of_type(template, "AWS::SQS::Queue")
    dead_letter = {"StreamFailureQueue"}
    for queue in queues.values():
        if "RedrivePolicy" in queue["Properties"]:
            dead_letter.add(_arn_of(queue["Properties"]["RedrivePolicy"]["deadLetterTargetArn"]))
    assert dead_letter <= set(queues)
    for name, queue in queues.items():
        properties = queue["Properties"]
        assert properties.get("SqsManagedSseEnabled") or properties.get("KmsMasterKeyId"), name
        if name in dead_letter:
            assert "RedrivePolicy" not in properties, name
            assert properties["MessageRetentionPeriod"] == 1209600, name
        else:
            # Outbound webhooks receive a message once per attempt (8) on their own schedule,
            # and again when it comes back early: more room before the dead-letter queue.
            most = 20 if name == "WebhooksOutQueue" else 10
            assert 1 <= properties["RedrivePolicy"]["maxReceiveCount"] <= most, name


@pytest.mark.parametrize("stage", STAGES)
def test_tables_are_recoverable_encrypted_and_protected_in_prod(templates, stage):
    template = templates[stage]
    assert template["Parameters"]["Stage"]["Default"] == stage
    assert template["Parameters"]["Stage"]["AllowedValues"] == [stage]
    tables = _of_type(template, "AWS::DynamoDB::Table")
    assert set(tables) == {n for n, r in DECLARED.items() if r["Type"] == "AWS::DynamoDB::Table"}
    for name, table in tables.items():
        properties = table["Properties"]
        assert properties["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True, name
        assert properties["SSESpecification"]["SSEEnabled"] is True, name
        assert _resolve(template, properties["DeletionProtectionEnabled"]) is (stage == "prod"), name
        if stage == "prod":
            assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain", name


@pytest.mark.parametrize("stage", STAGES)
def test_every_dead_letter_and_stream_failure_queue_has_a_depth_alarm(templates, stage):
    template = templates[stage]
    queues = _of_type(template, "AWS::SQS::Queue")
    expected = {"StreamFailureQueue"} | {
        _arn_of(q["Properties"]["RedrivePolicy"]["deadLetterTargetArn"])
        for q in queues.values()
        if "RedrivePolicy" in q["Properties"]
    }
    alarmed = set()
    for alarm in _of_type(template, "AWS::CloudWatch::Alarm").values():
        properties = alarm["Properties"]
        if (
            properties["Namespace"] == "AWS/SQS"
            and properties["MetricName"] == "ApproximateNumberOfMessagesVisible"
        ):
            assert properties["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
            assert properties["Threshold"] <= 1
            (dimension,) = properties["Dimensions"]
            assert dimension["Name"] == "QueueName"
            queue, attribute = _getatt(dimension["Value"])
            assert attribute == "QueueName"
            alarmed.add(queue)
    assert expected <= alarmed


@pytest.mark.parametrize("stage", STAGES)
def test_the_webhooks_out_queue_warns_before_its_in_flight_messages_reach_the_fifo_limit(templates, stage):
    # Its retries are in-flight messages (a lane per subscription and customer, up to 12 hours
    # each); SQS FIFO holds at most 120,000 in flight, then hands out nothing more.
    alarms = [
        alarm["Properties"]
        for alarm in _of_type(templates[stage], "AWS::CloudWatch::Alarm").values()
        if alarm["Properties"]["MetricName"] == "ApproximateNumberOfMessagesNotVisible"
    ]
    [properties] = alarms
    assert properties["Namespace"] == "AWS/SQS"
    (dimension,) = properties["Dimensions"]
    assert _getatt(dimension["Value"]) == ("WebhooksOutQueue", "QueueName")
    assert properties["ComparisonOperator"] in ("GreaterThanThreshold", "GreaterThanOrEqualToThreshold")
    assert 50_000 <= properties["Threshold"] <= 110_000
    assert properties["Statistic"] == "Maximum"
    assert properties["AlarmActions"] == {
        "Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]
    }


@pytest.mark.parametrize("stage", STAGES)
def test_iam_names_actions_and_resources(templates, stage):
    template = templates[stage]
    statements = list(_statements(template))
    assert statements
    for role, statement in statements:
        actions = _as_list(statement["Action"])
        assert "NotAction" not in statement and "NotResource" not in statement, role
        assert not [a for a in actions if "*" in a], f"{role}: wildcard action in {statement}"
        for resource in _as_list(statement["Resource"]):
            if resource == "*":
                assert set(actions) <= WILDCARD_RESOURCE_ACTIONS, f"{role}: {actions} on *"
            text = resource.get("Fn::Sub") if isinstance(resource, dict) else resource
            if isinstance(text, str) and text.startswith("arn:"):
                fields = re.sub(r"\$\{[^}]*\}", "x", text).split(":")
                assert "*" not in fields[1:5], f"{role}: partition, service, region or account * in {text}"


@pytest.mark.parametrize("stage", STAGES)
def test_iam_grants_what_the_functions_use(templates, stage):
    template = templates[stage]
    tables = [n for n, r in DECLARED.items() if r["Type"] == "AWS::DynamoDB::Table"]
    for function, properties in _functions(template).items():
        role = _role_of(properties)
        # Acknowledgements and confirmation links are mailed from the consumers' functions.
        assert _grants(template, role, {"ses:SendEmail"}, MAIL_IDENTITIES), function
        for table in tables:
            assert _grants(template, role, TABLE_ITEMS, {"Fn::GetAtt": [table, "Arn"]}), (function, table)
            assert _grants(template, role, {"dynamodb:Query"}, {"Fn::Sub": f"${{{table}.Arn}}/index/*"})
        for event in properties.get("Events", {}).values():
            if event["Type"] == "DynamoDB":
                assert _grants(template, role, STREAM_READ, event["Properties"]["Stream"]), function
                assert _grants(template, role, {"dynamodb:ListStreams"}, "*"), function
                assert _grants(
                    template, role, {"sqs:SendMessage"}, {"Fn::GetAtt": ["StreamFailureQueue", "Arn"]}
                ), function
            if event["Type"] == "SQS":
                queue = {"Fn::GetAtt": [_arn_of(event["Properties"]["Queue"]), "Arn"]}
                assert _grants(template, role, QUEUE_CONSUME, queue), function


@pytest.mark.parametrize("stage", STAGES)
def test_functions_keep_the_stage_settings_and_get_the_stream_arns(templates, stage):
    template = templates[stage]
    configured = {
        **CHALICE_CONFIG["environment_variables"],
        **CHALICE_CONFIG["stages"][stage]["environment_variables"],
    }
    for function, properties in _functions(template).items():
        variables = properties["Environment"]["Variables"]
        for key, value in configured.items():
            if not key.endswith("_STREAM_ARN"):
                assert variables[key] == value, (function, key)
        assert variables["CRM_CUSTOMERS_STREAM_ARN"] == {"Fn::GetAtt": ["CustomersTable", "StreamArn"]}
        assert variables["CRM_INTERACTIONS_STREAM_ARN"] == {"Fn::GetAtt": ["InteractionsTable", "StreamArn"]}
        assert variables["CRM_STAGE"] == stage


@pytest.mark.parametrize("stage", STAGES)
def test_no_value_mixes_two_intrinsic_functions(templates, stage):
    def walk(node: Any, path: str) -> Iterator[str]:
        if isinstance(node, dict):
            if len(node) > 1 and any(k == "Ref" or k.startswith("Fn::") for k in node):
                yield path
            for key, value in node.items():
                yield from walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                yield from walk(value, f"{path}[{index}]")

    assert list(walk(templates[stage], "")) == []


def test_the_merge_template_is_deterministic(prod_sam):
    first = dump_json(build_merge_template("prod", prod_sam))
    assert first == dump_json(build_merge_template("prod", copy.deepcopy(prod_sam)))
    assert first == json.dumps(json.loads(first), indent=2, sort_keys=True) + "\n"


def test_rendering_the_template_offline_builds_no_deployment_package(monkeypatch):
    # infra.package names the zip before Chalice's build stage runs, relying on its packaging step
    # to skip a deployment package whose filename is set: pinned here for the chalice version in
    # requirements-dev.txt.
    from chalice.deploy import packager

    def build(*args: Any, **kwargs: Any) -> str:
        raise AssertionError(
            "Chalice built a deployment package while infra.package rendered the template offline: "
            "its packaging step no longer skips a package whose filename is set (see _ZipNamedFirst)"
        )

    base = packager.BaseLambdaDeploymentPackager
    for kind in (base, *base.__subclasses__()):
        monkeypatch.setattr(kind, "create_deployment_package", build)
    functions = _functions(chalice_sam("dev"))
    assert functions
    assert {properties["CodeUri"] for properties in functions.values()} == {"./deployment.zip"}


def _with_consumer(sam: dict[str, Any], event: dict[str, Any], timeout: int = 30) -> dict[str, Any]:
    """`sam` with one more function, the way Chalice generates an event handler."""
    sam = copy.deepcopy(sam)
    handler = copy.deepcopy(next(iter(_of_type(sam, "AWS::Serverless::Function").values())))
    handler["Properties"].update(Timeout=timeout, Events={"NewConsumerEventSource": event})
    sam["Resources"]["NewConsumer"] = handler
    return sam


@pytest.mark.parametrize(
    ("queue", "expected"),
    [
        (  # on_sqs_message(queue="crm-prod-events.fifo")
            {"Fn::Sub": "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:crm-prod-events.fifo"},
            {"Fn::Sub": "${EventsQueue.Arn}"},
        ),
        (  # on_sqs_message(queue_arn=<a placeholder ARN>)
            "arn:aws:sqs:eu-north-1:000000000000:crm-local-events.fifo",
            {"Fn::GetAtt": ["EventsQueue", "Arn"]},
        ),
    ],
)
def test_a_new_queue_consumer_gets_the_declared_queue(prod_sam, queue, expected):
    sam = _with_consumer(prod_sam, {"Type": "SQS", "Properties": {"Queue": queue, "BatchSize": 10}})
    merged = merge_templates(build_merge_template("prod", sam), sam)
    events = merged["Resources"]["NewConsumer"]["Properties"]["Events"]
    assert events["NewConsumerEventSource"]["Properties"] == {
        "BatchSize": 10,
        "FunctionResponseTypes": ["ReportBatchItemFailures"],
        "Queue": expected,
    }


def test_a_queue_consumer_too_slow_for_the_visibility_timeout_fails_packaging(prod_sam):
    arn = "arn:aws:sqs:eu-north-1:000000000000:crm-local-events.fifo"
    sam = _with_consumer(prod_sam, {"Type": "SQS", "Properties": {"Queue": arn}}, timeout=300)
    with pytest.raises(PackagingError, match=r"EventsQueue has VisibilityTimeout 180.*NewConsumer"):
        build_merge_template("prod", sam)


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"Type": "SQS", "Properties": {"Queue": "arn:aws:sqs:eu-north-1:1:other"}}, "does not declare"),
        (
            {"Type": "DynamoDB", "Properties": {"Stream": "arn:aws:dynamodb:eu-north-1:1:table/x/stream/1"}},
            "does not declare",
        ),
    ],
)
def test_a_consumer_of_an_undeclared_queue_or_stream_fails_packaging(prod_sam, event, message):
    with pytest.raises(PackagingError, match=message):
        build_merge_template("prod", _with_consumer(prod_sam, event))


def test_cfn_lint_finds_no_errors_in_the_prod_template(templates, tmp_path):
    (tmp_path / "sam.json").write_text(dump_json(templates["prod"]))
    (tmp_path / "deployment.zip").write_bytes(b"")
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--format", "json", "--regions", "eu-north-1", "--", "sam.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode in (0, 2, 4, 6, 8, 10, 12, 14), result.stderr  # 2, 4, 8: errors, warnings, infos
    errors = [m for m in json.loads(result.stdout or "[]") if m["Level"] == "Error"]
    assert errors == [], json.dumps(errors, indent=2)


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_every_function_signs_cursors_and_links_with_secrets_given_at_deploy_time(stage):
    from infra.package import render_template

    template = render_template(stage)
    assert template["Parameters"]["CursorSecret"]["NoEcho"] is True
    assert template["Parameters"]["PreviousCursorSecrets"]["NoEcho"] is True
    assert template["Parameters"]["LinkSecret"]["NoEcho"] is True
    functions = [r for r in template["Resources"].values() if r["Type"] == "AWS::Serverless::Function"]
    assert functions
    for function in functions:
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables["CRM_CURSOR_SECRET"] == {"Ref": "CursorSecret"}
        assert variables["CRM_CURSOR_PREVIOUS_SECRETS"] == {"Ref": "PreviousCursorSecrets"}
        assert variables["CRM_LINK_SECRET"] == {"Ref": "LinkSecret"}


def test_the_given_user_pool_may_invoke_the_sign_up_trigger(templates):
    template = templates["prod"]
    trigger = template["Resources"]["LinkCustomerOnSignUp"]["Properties"]
    assert trigger["Handler"] == "chalicelib.events.identities.link_customer_on_sign_up"
    permission = template["Resources"]["SignUpTriggerPermission"]
    assert permission["Condition"] == "HasUserPool"
    assert permission["Properties"] == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": {"Fn::GetAtt": ["LinkCustomerOnSignUp", "Arn"]},
        "Principal": "cognito-idp.amazonaws.com",
        "SourceArn": {"Ref": "UserPoolArn"},
    }
    assert template["Parameters"]["UserPoolArn"]["Default"] == ""
    assert template["Outputs"]["SignUpTriggerArn"]["Value"] == {"Fn::GetAtt": ["LinkCustomerOnSignUp", "Arn"]}


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_api_gateway_answers_unknown_paths_and_its_own_errors_with_problems(stage):
    from infra.package import render_template

    responses = render_template(stage)["Resources"]["RestAPI"]["Properties"]["GatewayResponses"]
    assert responses["MISSING_AUTHENTICATION_TOKEN"]["StatusCode"] == "404"
    for response in responses.values():
        assert response["ResponseParameters"]["Headers"]["Content-Type"] == "'application/problem+json'"
        assert json.loads(response["ResponseTemplates"]["application/json"])["type"].startswith(
            "urn:problem-type:"
        )


@pytest.mark.parametrize("stage", STAGES)
def test_buckets_are_encrypted_private_and_keep_exports_as_long_as_their_jobs(templates, stage):
    from chalicelib.domain.jobs import RETENTION

    template = templates[stage]
    buckets = _of_type(template, "AWS::S3::Bucket")
    assert (
        set(buckets)
        == {n for n, r in DECLARED.items() if r["Type"] == "AWS::S3::Bucket"}
        == {"ExportsBucket", "ImportsBucket"}
    )
    for bucket, prefix, days in (
        ("ExportsBucket", "exports/", RETENTION.days),
        ("ImportsBucket", "imports/", 7),
    ):
        properties = buckets[bucket]["Properties"]
        [encryption] = properties["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
        assert properties["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert properties["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
        [rule] = properties["LifecycleConfiguration"]["Rules"]
        assert (rule["Status"], rule["Prefix"]) == ("Enabled", prefix)
        # A job is readable while its document exists: S3 deletes it no sooner than the job's TTL.
        # An import's upload goes after 7 days; the import and its results stay 30.
        assert rule["ExpirationInDays"] == days
        assert rule["AbortIncompleteMultipartUpload"]["DaysAfterInitiation"] <= 1


def test_the_imports_bucket_sends_its_uploads_events_to_a_queue_that_lets_only_s3_of_that_bucket_send(
    templates,
):
    resources = templates["prod"]["Resources"]
    bucket = resources["ImportsBucket"]
    [notification] = bucket["Properties"]["NotificationConfiguration"]["QueueConfigurations"]
    assert notification["Event"] == "s3:ObjectCreated:*"
    assert notification["Queue"] == {"Fn::GetAtt": ["ImportUploadsQueue", "Arn"]}
    assert notification["Filter"] == {"S3Key": {"Rules": [{"Name": "prefix", "Value": "imports/"}]}}
    # S3 checks that it may send when the notification is set: the policy must exist first.
    assert "ImportUploadsQueuePolicy" in bucket["DependsOn"]
    policy = resources["ImportUploadsQueuePolicy"]["Properties"]
    assert policy["Queues"] == [{"Ref": "ImportUploadsQueue"}]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert (
        statement["Principal"] == {"Service": "s3.amazonaws.com"} and statement["Action"] == "sqs:SendMessage"
    )
    source = statement["Condition"]["ArnEquals"]["aws:SourceArn"]["Fn::Sub"]
    assert source.endswith(bucket["Properties"]["BucketName"]["Fn::Sub"])
    assert statement["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}


def test_the_import_functions_have_time_and_memory_for_their_work_and_their_queues_wait_for_them(templates):
    functions = _functions(templates["prod"])
    resources = templates["prod"]["Resources"]
    for name, queue, timeout in (
        ("StartImports", "ImportUploadsQueue", 300),
        ("RunImports", "ImportsQueue", 120),
    ):
        assert (functions[name]["Timeout"], functions[name]["MemorySize"]) == (timeout, 1024)
        assert resources[queue]["Properties"]["VisibilityTimeout"] >= 6 * timeout
        assert functions[name]["Environment"]["Variables"]["CRM_IMPORTS_BUCKET"] == {"Ref": "ImportsBucket"}


@pytest.mark.parametrize("stage", STAGES)
def test_every_function_gets_the_bucket_name_and_may_write_read_and_delete_its_objects(templates, stage):
    template = templates[stage]
    objects = {"s3:PutObject", "s3:GetObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
    for function, properties in _functions(template).items():
        assert properties["Environment"]["Variables"]["CRM_EXPORTS_BUCKET"] == {"Ref": "ExportsBucket"}
        role = _role_of(properties)
        assert _grants(template, role, objects, {"Fn::Sub": "${ExportsBucket.Arn}/*"}), function
        assert _grants(template, role, {"s3:ListBucket"}, {"Fn::GetAtt": ["ExportsBucket", "Arn"]}), function


def test_the_job_runner_has_time_for_its_work_and_its_queue_waits_for_it(templates):
    functions = _functions(templates["prod"])
    [runner] = [p for name, p in functions.items() if name == "RunJobs"]
    assert runner["Timeout"] == 300 and runner["MemorySize"] == 1024
    visibility = templates["prod"]["Resources"]["JobsQueue"]["Properties"]["VisibilityTimeout"]
    assert visibility >= 6 * runner["Timeout"]
