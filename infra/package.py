"""The cloud deployment artifacts: `python -m infra.package --stage prod --out build/prod`.

Chalice generates the app's SAM template (functions, API, role, event sources); the merge template
built here adds infra/resources.json to it and sets what Chalice leaves out for production: stream
retries and their on-failure queue, partial batch responses, queue alarms, a written-out IAM
policy and the names of the buckets the stack makes. `chalice package --merge-template` then
writes `sam.json` and `deployment.zip`.

Chalice's merge is a deep merge of dicts: a dict given here for a key whose value Chalice
generated as a dict would be mixed into it (`{"Fn::Sub": ..., "Fn::GetAtt": ...}`). So every
value replaced here is one Chalice generates as a string or list, or it uses the same intrinsic
function as Chalice's; `check_merged` fails on any mixed value.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from botocore.session import Session
from chalice.awsclient import TypedAWSClient
from chalice.cli.factory import CLIFactory
from chalice.deploy import deployer, models
from chalice.deploy.appgraph import ApplicationGraphBuilder, DependencyBuilder
from chalice.deploy.swagger import CFNSwaggerGenerator
from chalice.deploy.validate import validate_lambda_architecture, validate_resource_policy
from chalice.package import (
    PackageOptions,
    ResourceBuilder,
    SAMCodeLocationPostProcessor,
    SAMTemplateGenerator,
    TemplateDeepMerger,
)
from chalice.utils import UI, OSUtils

from infra.policy import buckets, policy_document, streamed_tables

ROOT = Path(__file__).resolve().parent.parent
RESOURCES_FILE = ROOT / "infra" / "resources.json"
CHALICE_CONFIG_FILE = ROOT / ".chalice" / "config.json"
DEFAULT_REGION = "eu-north-1"

STREAM_FAILURE_QUEUE = "StreamFailureQueue"
STREAM_EVENT_SETTINGS: dict[str, Any] = {
    "BisectBatchOnFunctionError": True,
    "FunctionResponseTypes": ["ReportBatchItemFailures"],
    # A poison record is retried 5 times (halving the batch each time), then parked on the
    # on-failure queue, so it never blocks its shard for the stream's 24 hours of retention.
    "MaximumRecordAgeInSeconds": 86400,
    "MaximumRetryAttempts": 5,
}
QUEUE_EVENT_SETTINGS: dict[str, Any] = {"FunctionResponseTypes": ["ReportBatchItemFailures"]}
# AWS's advice for queues that trigger Lambda: a message must not become visible again while a
# batch that holds it may still be retried by the poller.
VISIBILITY_TIMEOUT_FACTOR = 6
SQS_DEFAULT_VISIBILITY_TIMEOUT = 30
ALARM_TOPIC_PARAMETER = "AlarmTopicArn"
# Queues whose in-flight messages (received, not yet deleted) are alarmed on, and above how
# many. The webhooks-out queue holds each retry as an in-flight message for up to 12 hours; a
# FIFO queue takes no more than 120,000 in flight, after which its consumer receives nothing.
IN_FLIGHT_ALARMS = {"WebhooksOutQueue": 100_000}
CURSOR_SECRET_PARAMETER = "CursorSecret"
PREVIOUS_CURSOR_SECRETS_PARAMETER = "PreviousCursorSecrets"
LINK_SECRET_PARAMETER = "LinkSecret"
# The Cognito post-confirmation trigger (chalicelib/events/identities.py) and who may invoke it.
SIGN_UP_FUNCTION = "LinkCustomerOnSignUp"
USER_POOL_PARAMETER = "UserPoolArn"
USER_POOL_CONDITION = "HasUserPool"


def _gateway_problem(status: int | None, title: str, detail: str) -> dict[str, Any]:
    body = {"type": "urn:problem-type:crm:gateway", "title": title, "detail": detail}
    if status is not None:
        body["status"] = status
    return {
        **({"StatusCode": str(status)} if status is not None else {}),
        "ResponseParameters": {"Headers": {"Content-Type": "'application/problem+json'"}},
        "ResponseTemplates": {"application/json": json.dumps(body)},
    }


# Answers API Gateway gives before the function runs (an unknown path, throttling, a payload
# over its limit) are problem+json too, like every error of the application.
GATEWAY_RESPONSES = {
    "MISSING_AUTHENTICATION_TOKEN": _gateway_problem(
        404, "Not Found", "No route matches this method and path."
    ),
    "DEFAULT_4XX": _gateway_problem(None, "Bad Request", "$context.error.messageString"),
    "DEFAULT_5XX": _gateway_problem(None, "Internal Server Error", "$context.error.messageString"),
}
ALARM_TOPIC_CONDITION = "HasAlarmTopic"

_STREAM_ARN = re.compile(r"arn:[^:]+:dynamodb:[^:]*:[^:]*:table/(?P<table>[^/]+)/stream/.+")


class PackagingError(Exception):
    """The app, .chalice/config.json and infra/resources.json do not fit together."""


def load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def dump_json(document: Any) -> str:
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def config_stages(config_file: Path = CHALICE_CONFIG_FILE) -> list[str]:
    return list(load_json(config_file).get("stages", {}))


# --- Chalice's template, without the deployment package -------------------------------------


class _NoZip(deployer.BaseDeployStep):
    """Names the zip `chalice package` writes, without building it."""

    def handle_deploymentpackage(self, config: Any, resource: models.DeploymentPackage) -> None:
        if isinstance(resource.filename, models.Placeholder):
            resource.filename = "./deployment.zip"


class _ZipNamedFirst:
    """Chalice's own build stage (defaults, IAM policy, swagger, event source policies), run once
    `_NoZip` has named the zip: Chalice's packaging step builds a zip only for a deployment package
    whose filename is still a placeholder, so it builds none. Built from Chalice's public
    constructors alone (`create_build_stage`, `BuildStage(steps)`); a test of the packaged
    template fails if a Chalice version builds a zip here all the same."""

    def __init__(self, chalice_stage: deployer.BuildStage) -> None:
        self._stages = (deployer.BuildStage([_NoZip()]), chalice_stage)

    def execute(self, config: Any, resources: list[models.Model]) -> None:
        for stage in self._stages:
            stage.execute(config, resources)


class _NoCopy(OSUtils):
    def copy(self, source: str, destination: str) -> None:
        pass


def _package_options() -> PackageOptions:
    session = Session()
    if not session.get_config_variable("region"):
        session.set_config_variable("region", DEFAULT_REGION)
    return PackageOptions(TypedAWSClient(session=session))


def chalice_sam(
    stage: str, *, project_dir: Path = ROOT, environ: MutableMapping[str, str] | None = None
) -> dict[str, Any]:
    """The SAM template `chalice package --stage <stage>` generates before merging, built by
    Chalice's own resource graph and generator but without building deployment.zip.

    Like `chalice package`, this imports app.py after putting the stage's environment variables
    into `environ`: by default a copy of os.environ, so the caller's environment stays as it is
    (an app.py that is already imported is not imported again).
    """
    factory = CLIFactory(str(project_dir), environ=dict(os.environ) if environ is None else environ)
    config = factory.create_config_obj(stage)
    validate_lambda_architecture(config)
    if config.automatic_layer:
        raise PackagingError("automatic_layer is set: the offline template cannot tell an empty layer")
    build_stage = _ZipNamedFirst(deployer.create_build_stage(OSUtils(), UI(), CFNSwaggerGenerator(), config))
    validate_resource_policy(config)
    builder = ResourceBuilder(ApplicationGraphBuilder(), DependencyBuilder(), build_stage)
    resources = builder.construct_resources(config, stage)
    template = SAMTemplateGenerator(config, _package_options()).generate(resources)
    SAMCodeLocationPostProcessor(osutils=_NoCopy()).process(template, config, str(project_dir), stage)
    return template


# --- The merge template ----------------------------------------------------------------------


def _resolve_name(value: Any, stage: str) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        name = value["Fn::Sub"].replace("${Stage}", stage)
        return None if "${" in name else name
    return None


def _find_declared(
    declared: Mapping[str, Any], type_: str, name_property: str, name: str, stages: list[str]
) -> str | None:
    """The logical id of the resource named `name`, trying the stage being packaged first: the
    placeholder ARNs of app.py may name another stage's table."""
    for stage in stages:
        hits = sorted(
            logical_id
            for logical_id, resource in declared.items()
            if resource.get("Type") == type_
            and _resolve_name(resource.get("Properties", {}).get(name_property), stage) == name
        )
        if len(hits) > 1:
            raise PackagingError(f"{name!r} is the name of several resources in infra/resources.json: {hits}")
        if hits:
            return hits[0]
    return None


def _getatt_target(value: Any) -> str | None:
    if isinstance(value, dict) and set(value) == {"Fn::GetAtt"}:
        target = value["Fn::GetAtt"]
        return target[0] if isinstance(target, list) else str(target).split(".", 1)[0]
    return None


def _stream_event(
    function: str, properties: Mapping[str, Any], declared: Mapping[str, Any], stages: list[str]
) -> dict[str, Any]:
    arn = properties.get("Stream")
    match = _STREAM_ARN.fullmatch(arn) if isinstance(arn, str) else None
    if match is None:
        raise PackagingError(f"{function}: stream {arn!r} is not a DynamoDB stream ARN naming its table")
    table = _find_declared(declared, "AWS::DynamoDB::Table", "TableName", match["table"], stages)
    if table is None:
        raise PackagingError(
            f"{function} reads the stream of table {match['table']!r}, which infra/resources.json does not "
            f"declare (tried stages {stages})"
        )
    if not declared[table]["Properties"].get("StreamSpecification"):
        raise PackagingError(f"{function} reads the stream of {table}, which has no StreamSpecification")
    if declared.get(STREAM_FAILURE_QUEUE, {}).get("Type") != "AWS::SQS::Queue":
        raise PackagingError(
            f"{function} reads a stream: infra/resources.json must declare {STREAM_FAILURE_QUEUE}"
        )
    return {
        "Stream": {"Fn::GetAtt": [table, "StreamArn"]},
        **copy.deepcopy(STREAM_EVENT_SETTINGS),
        "DestinationConfig": {"OnFailure": {"Destination": {"Fn::GetAtt": [STREAM_FAILURE_QUEUE, "Arn"]}}},
    }


def _queue_event(
    function: str,
    timeout: int,
    properties: Mapping[str, Any],
    declared: Mapping[str, Any],
    stages: list[str],
) -> dict[str, Any]:
    value = properties.get("Queue")
    # Chalice writes `queue_arn=` as given and `queue=` as an Fn::Sub of the ARN; a GetAtt would be
    # mixed into that Fn::Sub, so the queue's ARN is substituted into it instead.
    if isinstance(value, str):
        arn = value
    elif isinstance(value, dict) and set(value) == {"Fn::Sub"} and isinstance(value["Fn::Sub"], str):
        arn = value["Fn::Sub"]
    else:
        raise PackagingError(f"{function}: cannot tell which queue {value!r} is")
    name = arn.rsplit(":", 1)[-1]
    queue = _find_declared(declared, "AWS::SQS::Queue", "QueueName", name, stages)
    if queue is None:
        raise PackagingError(
            f"{function} consumes queue {name!r}, which infra/resources.json does not declare "
            f"(tried stages {stages})"
        )
    visibility = declared[queue]["Properties"].get("VisibilityTimeout", SQS_DEFAULT_VISIBILITY_TIMEOUT)
    if not isinstance(visibility, int) or visibility < VISIBILITY_TIMEOUT_FACTOR * timeout:
        raise PackagingError(
            f"{queue} has VisibilityTimeout {visibility!r}; its consumer {function} has Timeout {timeout} s, "
            f"so the queue needs at least {VISIBILITY_TIMEOUT_FACTOR} × {timeout} = "
            f"{VISIBILITY_TIMEOUT_FACTOR * timeout} s: raise it in infra/resources.json or lower the "
            "function's lambda_timeout in .chalice/config.json"
        )
    replacement = (
        {"Fn::GetAtt": [queue, "Arn"]} if isinstance(value, str) else {"Fn::Sub": f"${{{queue}.Arn}}"}
    )
    return {"Queue": replacement, **copy.deepcopy(QUEUE_EVENT_SETTINGS)}


def _stream_variables(declared: Mapping[str, Any]) -> dict[str, Any]:
    """`CRM_CUSTOMERS_STREAM_ARN` for CustomersTable, and so on for every table with a stream."""
    variables = {}
    for table in streamed_tables(declared):
        words = re.sub(r"(?<!^)(?=[A-Z])", "_", table.removesuffix("Table")).upper()
        variables[f"CRM_{words}_STREAM_ARN"] = {"Fn::GetAtt": [table, "StreamArn"]}
    return variables


def _bucket_variables(declared: Mapping[str, Any]) -> dict[str, Any]:
    """`CRM_EXPORTS_BUCKET` for ExportsBucket, and so on for every bucket: its name is made by
    the stack (account and region in it), so the functions get it from there."""
    variables = {}
    for bucket in buckets(declared):
        words = re.sub(r"(?<!^)(?=[A-Z])", "_", bucket.removesuffix("Bucket")).upper()
        variables[f"CRM_{words}_BUCKET"] = {"Ref": bucket}
    return variables


def alarmed_queues(declared: Mapping[str, Any]) -> list[str]:
    """The dead-letter queues (targets of a RedrivePolicy) and the stream on-failure queue."""
    queues = {STREAM_FAILURE_QUEUE} if STREAM_FAILURE_QUEUE in declared else set()
    for logical_id, resource in declared.items():
        redrive = resource.get("Properties", {}).get("RedrivePolicy")
        if resource.get("Type") == "AWS::SQS::Queue" and redrive:
            target = _getatt_target(redrive.get("deadLetterTargetArn"))
            if target not in declared:
                raise PackagingError(
                    f"{logical_id}: its dead-letter queue must be a GetAtt of a declared queue"
                )
            queues.add(target)
    return sorted(queues)


def _depth_alarm(queue: str) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": {
                "Fn::Sub": f"${{AWS::StackName}}: messages are waiting in {queue}: records or messages a "
                "consumer gave up on. Read them, fix the cause, then redrive or delete them."
            },
            "AlarmActions": {
                "Fn::If": [ALARM_TOPIC_CONDITION, [{"Ref": ALARM_TOPIC_PARAMETER}], {"Ref": "AWS::NoValue"}]
            },
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}],
            "EvaluationPeriods": 1,
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Namespace": "AWS/SQS",
            "Period": 60,
            "Statistic": "Maximum",
            "Threshold": 1,
            "TreatMissingData": "notBreaching",
        },
    }


def _in_flight_alarm(queue: str, threshold: int) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": {
                "Fn::Sub": f"${{AWS::StackName}}: more than {threshold} messages are in flight in {queue} "
                "(retries held in their lanes; SQS FIFO takes at most 120,000 in flight, then delivers "
                "nothing): find the subscriptions failing across many customers and disable them."
            },
            "AlarmActions": {
                "Fn::If": [ALARM_TOPIC_CONDITION, [{"Ref": ALARM_TOPIC_PARAMETER}], {"Ref": "AWS::NoValue"}]
            },
            "ComparisonOperator": "GreaterThanThreshold",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [queue, "QueueName"]}}],
            "EvaluationPeriods": 1,
            "MetricName": "ApproximateNumberOfMessagesNotVisible",
            "Namespace": "AWS/SQS",
            "Period": 300,
            "Statistic": "Maximum",
            "Threshold": threshold,
            "TreatMissingData": "notBreaching",
        },
    }


def _condition_holds(template: Mapping[str, Any], condition: Any, stage: str) -> bool:
    """Evaluates a condition of infra/resources.json, which depend on the Stage parameter only."""

    def value(node: Any) -> Any:
        if node == {"Ref": "Stage"}:
            return stage
        if isinstance(node, dict):
            return holds(node)
        return node

    def holds(node: Any) -> bool:
        (function, arguments), *_ = node.items()
        if function == "Condition":
            return holds(template["Conditions"][arguments])
        if function == "Fn::Equals":
            return value(arguments[0]) == value(arguments[1])
        if function == "Fn::Not":
            return not holds(arguments[0])
        if function == "Fn::And":
            return all(holds(argument) for argument in arguments)
        if function == "Fn::Or":
            return any(holds(argument) for argument in arguments)
        raise PackagingError(f"cannot evaluate condition {node!r} offline")

    return holds(template["Conditions"][condition] if isinstance(condition, str) else condition)


def _check_no_collisions(sam: Mapping[str, Any], merge: Mapping[str, Any]) -> None:
    for section in ("Parameters", "Conditions", "Outputs"):
        clashes = sorted(set(sam.get(section, {})) & set(merge.get(section, {})))
        if clashes:
            raise PackagingError(
                f"{section} {clashes} are in both Chalice's template and infra/resources.json"
            )


def build_merge_template(
    stage: str,
    sam: Mapping[str, Any],
    resources: Mapping[str, Any] | None = None,
    stages: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The template to merge into `sam`, the template Chalice generated for `stage`.

    `resources` defaults to infra/resources.json; `stages` (default: the stages of
    .chalice/config.json) are the other stages whose names app.py's placeholder ARNs may use.
    """
    infra = copy.deepcopy(dict(resources) if resources is not None else load_json(RESOURCES_FILE))
    declared: dict[str, Any] = infra["Resources"]
    name_stages = [
        stage,
        *(other for other in (config_stages() if stages is None else stages) if other != stage),
    ]
    parameter = infra.get("Parameters", {}).get("Stage")
    if parameter is None:
        raise PackagingError("infra/resources.json has no Stage parameter")
    if not re.fullmatch(parameter.get("AllowedPattern", ".*"), stage):
        raise PackagingError(f"stage {stage!r} does not match {parameter['AllowedPattern']}")

    chalice_resources: Mapping[str, Any] = sam["Resources"]
    alarms = {f"{queue}DepthAlarm": _depth_alarm(queue) for queue in alarmed_queues(declared)}
    for queue, threshold in IN_FLIGHT_ALARMS.items():
        if queue not in declared:
            raise PackagingError(f"{queue} (IN_FLIGHT_ALARMS) is not declared in infra/resources.json")
        alarms[f"{queue}InFlightAlarm"] = _in_flight_alarm(queue, threshold)
    clashes = sorted(set(chalice_resources) & (set(declared) | set(alarms)))
    if clashes:
        raise PackagingError(f"logical ids {clashes} are in both Chalice's template and infra/resources.json")

    if "IsProd" in infra.get("Conditions", {}) and _condition_holds(infra, "IsProd", stage):
        for resource in declared.values():
            if resource["Type"] == "AWS::DynamoDB::Table":
                resource.setdefault("DeletionPolicy", "Retain")
                resource.setdefault("UpdateReplacePolicy", "Retain")
    merged_resources: dict[str, Any] = {**declared, **alarms}

    functions = {
        name: resource
        for name, resource in sorted(chalice_resources.items())
        if resource.get("Type") == "AWS::Serverless::Function"
    }
    # Cursors are signed with a per-deployment secret, never one kept in the repository.
    # So are the email-confirmation links.
    variables = {
        **_stream_variables(declared),
        **_bucket_variables(declared),
        "CRM_CURSOR_SECRET": {"Ref": CURSOR_SECRET_PARAMETER},
        "CRM_CURSOR_PREVIOUS_SECRETS": {"Ref": PREVIOUS_CURSOR_SECRETS_PARAMETER},
        "CRM_LINK_SECRET": {"Ref": LINK_SECRET_PARAMETER},
    }
    for name, function in functions.items():
        properties = function["Properties"]
        events: dict[str, Any] = {}
        for event_name, event in sorted(properties.get("Events", {}).items()):
            if event["Type"] == "DynamoDB":
                events[event_name] = {
                    "Properties": _stream_event(name, event["Properties"], declared, name_stages)
                }
            elif event["Type"] == "SQS":
                events[event_name] = {
                    "Properties": _queue_event(
                        name, properties["Timeout"], event["Properties"], declared, name_stages
                    )
                }
        override: dict[str, Any] = (
            {"Environment": {"Variables": copy.deepcopy(variables)}} if variables else {}
        )
        if events:
            override["Events"] = events
        if override:
            merged_resources[name] = {"Properties": override}

    for name, role in sorted(chalice_resources.items()):
        if role.get("Type") != "AWS::IAM::Role":
            continue
        policies = role["Properties"].get("Policies") or [{}]
        tracing = any(
            function["Properties"].get("Tracing") == "Active"
            and _getatt_target(function["Properties"].get("Role")) == name
            for function in functions.values()
        )
        merged_resources[name] = {
            "Properties": {
                "Policies": [
                    {
                        "PolicyName": policies[0].get("PolicyName", f"{name}Policy"),
                        "PolicyDocument": policy_document(declared, tracing=tracing),
                    }
                ]
            }
        }

    if "RestAPI" in chalice_resources:
        merged_resources["RestAPI"] = {"Properties": {"GatewayResponses": GATEWAY_RESPONSES}}
    outputs = dict(infra.get("Outputs", {}))
    if SIGN_UP_FUNCTION in functions:
        # The user pool lives outside this stack: given its ARN, Cognito may invoke the trigger;
        # the pool's LambdaConfig names the function (README, "Deploying to AWS").
        merged_resources["SignUpTriggerPermission"] = {
            "Type": "AWS::Lambda::Permission",
            "Condition": USER_POOL_CONDITION,
            "Properties": {
                "Action": "lambda:InvokeFunction",
                "FunctionName": {"Fn::GetAtt": [SIGN_UP_FUNCTION, "Arn"]},
                "Principal": "cognito-idp.amazonaws.com",
                "SourceArn": {"Ref": USER_POOL_PARAMETER},
            },
        }
        outputs["SignUpTriggerArn"] = {
            "Description": "The function to set as the user pool's post-confirmation trigger.",
            "Value": {"Fn::GetAtt": [SIGN_UP_FUNCTION, "Arn"]},
        }

    parameters = dict(infra["Parameters"])
    parameters["Stage"] = {**parameter, "Default": stage, "AllowedValues": [stage]}
    parameters[ALARM_TOPIC_PARAMETER] = {
        "Type": "String",
        "Default": "",
        "Description": "ARN of an SNS topic the queue alarms notify; empty: the alarms only change state.",
    }
    parameters[CURSOR_SECRET_PARAMETER] = {
        "Type": "String",
        "NoEcho": True,
        "MinLength": 32,
        "Description": "Key that signs page cursors (32+ random characters, e.g. `openssl rand -hex 32`).",
    }
    parameters[PREVIOUS_CURSOR_SECRETS_PARAMETER] = {
        "Type": "String",
        "NoEcho": True,
        "Default": "",
        "Description": "Keys that signed page cursors before CursorSecret, comma-separated, oldest "
        "first: cursors they signed stay valid (for CRM_CURSOR_MAX_AGE_SECONDS) after a rotation.",
    }
    parameters[LINK_SECRET_PARAMETER] = {
        "Type": "String",
        "NoEcho": True,
        "MinLength": 32,
        "Description": "Key that signs email-confirmation links (32+ random characters, another than "
        "CursorSecret).",
    }
    parameters[USER_POOL_PARAMETER] = {
        "Type": "String",
        "Default": "",
        "Description": "ARN of the Cognito user pool whose post-confirmation trigger is "
        f"{SIGN_UP_FUNCTION}; empty: no pool may invoke it.",
    }
    conditions = dict(infra.get("Conditions", {}))
    conditions[ALARM_TOPIC_CONDITION] = {"Fn::Not": [{"Fn::Equals": [{"Ref": ALARM_TOPIC_PARAMETER}, ""]}]}
    conditions[USER_POOL_CONDITION] = {"Fn::Not": [{"Fn::Equals": [{"Ref": USER_POOL_PARAMETER}, ""]}]}
    merge = {
        "Conditions": conditions,
        "Outputs": outputs,
        "Parameters": parameters,
        "Resources": merged_resources,
    }
    _check_no_collisions(sam, merge)
    return merge


# --- The merged template ---------------------------------------------------------------------


def _walk(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    yield path, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f"{path}.{key}" if path else key)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}[{index}]")


def check_merged(template: Mapping[str, Any]) -> None:
    """Fails on a value the deep merge mixed from two intrinsic functions."""
    for path, node in _walk(template):
        if (
            isinstance(node, dict)
            and len(node) > 1
            and any(key == "Ref" or key.startswith("Fn::") for key in node)
        ):
            raise PackagingError(
                f"{path} mixes {sorted(node)}: replace that value whole in the merge template"
            )


def merge_templates(merge: Mapping[str, Any], sam: Mapping[str, Any]) -> dict[str, Any]:
    """What `chalice package --merge-template` writes: Chalice's own deep merge."""
    merged = copy.deepcopy(TemplateDeepMerger().merge(copy.deepcopy(dict(merge)), copy.deepcopy(dict(sam))))
    check_merged(merged)
    return merged


def render_template(stage: str, *, environ: MutableMapping[str, str] | None = None) -> dict[str, Any]:
    """The final template of `stage`, offline and without building deployment.zip."""
    sam = chalice_sam(stage, environ=environ)
    return merge_templates(build_merge_template(stage, sam), sam)


def _differences(left: Any, right: Any, path: str = "") -> Iterator[str]:
    if isinstance(left, dict) and isinstance(right, dict):
        for key in sorted(set(left) | set(right)):
            yield from _differences(left.get(key), right.get(key), f"{path}.{key}" if path else key)
    elif left != right:
        yield path or "(root)"


def package(stage: str, out: Path) -> dict[str, Any]:
    """Writes out/merge.json, then runs `chalice package`, which writes out/sam.json and
    out/deployment.zip, and checks that sam.json is the template `render_template` predicts."""
    sam = chalice_sam(stage, environ=os.environ)
    merge = build_merge_template(stage, sam)
    expected = merge_templates(merge, sam)
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    merge_file = out / "merge.json"
    merge_file.write_text(dump_json(merge))
    chalice = Path(sys.executable).with_name("chalice")
    command = [str(chalice) if chalice.exists() else "chalice", "package", "--stage", stage]
    environment = {**os.environ, "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION}
    command += ["--merge-template", str(merge_file), str(out)]
    subprocess.run(command, cwd=ROOT, env=environment, check=True)  # noqa: S603 (our own arguments)
    written = load_json(out / "sam.json")
    differences = list(_differences(written, expected))
    if differences:
        raise PackagingError(
            f"chalice package wrote a template the offline renderer did not predict at {differences[:10]}"
        )
    (out / "sam.json").write_text(dump_json(written))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.package", description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="dev", help="a stage of .chalice/config.json (default: dev)")
    parser.add_argument("--out", type=Path, help="output directory (default: build/<stage>)")
    parser.add_argument(
        "--template-only",
        action="store_true",
        help="write merge.json and sam.json only: no chalice package, no deployment.zip",
    )
    args = parser.parse_args(argv)
    if args.stage not in config_stages():
        parser.error(f"stage {args.stage!r} is not in .chalice/config.json ({', '.join(config_stages())})")
    out: Path = args.out or ROOT / "build" / args.stage
    started = time.monotonic()
    try:
        if args.template_only:
            sam = chalice_sam(args.stage, environ=os.environ)
            merge = build_merge_template(args.stage, sam)
            template = merge_templates(merge, sam)
            out.mkdir(parents=True, exist_ok=True)
            (out / "merge.json").write_text(dump_json(merge))
            (out / "sam.json").write_text(dump_json(template))
            # An older zip next to this template could be deployed with it by mistake.
            (out / "deployment.zip").unlink(missing_ok=True)
        else:
            template = package(args.stage, out)
    except PackagingError as error:
        print(f"infra.package: {error}", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as error:
        print(f"infra.package: chalice package failed with exit code {error.returncode}", file=sys.stderr)
        return 1
    resources = template["Resources"]
    functions = sum(1 for r in resources.values() if r["Type"] == "AWS::Serverless::Function")
    print(
        f"{out / 'sam.json'}: stage {args.stage}, {functions} functions, {len(resources)} resources "
        f"({time.monotonic() - started:.1f} s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
