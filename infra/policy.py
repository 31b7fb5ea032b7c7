"""The Lambda functions' IAM policy, written out from the resources infra/resources.json declares.

Chalice's automatic policy cannot see PynamoDB's DynamoDB calls, and it grants logs and streams on
wildcards; this one names every table, index, stream, queue and bucket of the stack, and SES
for the mail.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TABLE_ITEM_ACTIONS = (
    "dynamodb:BatchGetItem",
    "dynamodb:BatchWriteItem",
    "dynamodb:ConditionCheckItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
)
STREAM_READ_ACTIONS = ("dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator")
QUEUE_ACTIONS = (
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:GetQueueUrl",
    "sqs:ReceiveMessage",
    "sqs:SendMessage",
)
MAIL_ACTIONS = ("ses:SendEmail", "ses:SendRawEmail")
MAIL_IDENTITIES = {"Fn::Sub": "arn:${AWS::Partition}:ses:${AWS::Region}:${AWS::AccountId}:identity/*"}
# Objects of the stack's buckets: written in parts, read through presigned URLs (which act with
# the signer's permissions), deleted; ListBucket on the bucket itself, to find a prefix's objects.
OBJECT_ACTIONS = (
    "s3:AbortMultipartUpload",
    "s3:DeleteObject",
    "s3:GetObject",
    "s3:ListMultipartUploadParts",
    "s3:PutObject",
)
BUCKET_ACTIONS = ("s3:ListBucket",)
LOG_ACTIONS = ("logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents")
TRACING_ACTIONS = ("xray:PutTelemetryRecords", "xray:PutTraceSegments")
# These actions have no resource type: IAM accepts them only with Resource "*".
WILDCARD_RESOURCE_ACTIONS = frozenset({"dynamodb:ListStreams", *TRACING_ACTIONS})

# Functions get CloudFormation-generated names (`<stack>-<logical id>-<suffix>`, truncated when
# long), so the log groups are matched by Lambda's prefix rather than by the stack name.
LAMBDA_LOG_GROUPS = {
    "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}:log-group:/aws/lambda/*"
}


def _of_type(resources: Mapping[str, Any], type_: str) -> list[str]:
    return sorted(name for name, resource in resources.items() if resource.get("Type") == type_)


def streamed_tables(resources: Mapping[str, Any]) -> list[str]:
    tables = _of_type(resources, "AWS::DynamoDB::Table")
    return [name for name in tables if resources[name].get("Properties", {}).get("StreamSpecification")]


def buckets(resources: Mapping[str, Any]) -> list[str]:
    return _of_type(resources, "AWS::S3::Bucket")


def policy_document(resources: Mapping[str, Any], *, tracing: bool = False) -> dict[str, Any]:
    """`resources` is the Resources section of infra/resources.json."""
    tables = _of_type(resources, "AWS::DynamoDB::Table")
    streams = streamed_tables(resources)
    queues = _of_type(resources, "AWS::SQS::Queue")
    statements: list[dict[str, Any]] = [
        {"Sid": "Logs", "Effect": "Allow", "Action": list(LOG_ACTIONS), "Resource": [LAMBDA_LOG_GROUPS]}
    ]
    if tables:
        table_arns: list[Any] = []
        for name in tables:
            table_arns += [{"Fn::GetAtt": [name, "Arn"]}, {"Fn::Sub": f"${{{name}.Arn}}/index/*"}]
        statements.append(
            {
                "Sid": "TableItems",
                "Effect": "Allow",
                "Action": list(TABLE_ITEM_ACTIONS),
                "Resource": table_arns,
            }
        )
    if streams:
        statements += [
            {
                "Sid": "TableStreams",
                "Effect": "Allow",
                "Action": list(STREAM_READ_ACTIONS),
                "Resource": [{"Fn::GetAtt": [name, "StreamArn"]} for name in streams],
            },
            {"Sid": "ListStreams", "Effect": "Allow", "Action": ["dynamodb:ListStreams"], "Resource": "*"},
        ]
    if queues:
        statements.append(
            {
                "Sid": "Queues",
                "Effect": "Allow",
                "Action": list(QUEUE_ACTIONS),
                "Resource": [{"Fn::GetAtt": [name, "Arn"]} for name in queues],
            }
        )
    # Acknowledgements and email-confirmation links go out through SES, from a verified
    # identity of this account and region (CRM_MAIL_FROM).
    statements.append(
        {
            "Sid": "Mail",
            "Effect": "Allow",
            "Action": list(MAIL_ACTIONS),
            "Resource": [MAIL_IDENTITIES],
        }
    )
    if buckets(resources):
        statements += [
            {
                "Sid": "BucketObjects",
                "Effect": "Allow",
                "Action": list(OBJECT_ACTIONS),
                "Resource": [{"Fn::Sub": f"${{{name}.Arn}}/*"} for name in buckets(resources)],
            },
            {
                "Sid": "Buckets",
                "Effect": "Allow",
                "Action": list(BUCKET_ACTIONS),
                "Resource": [{"Fn::GetAtt": [name, "Arn"]} for name in buckets(resources)],
            },
        ]
    if tracing:
        statements.append(
            {"Sid": "Tracing", "Effect": "Allow", "Action": list(TRACING_ACTIONS), "Resource": "*"}
        )
    return {"Version": "2012-10-17", "Statement": statements}
