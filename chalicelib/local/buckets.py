"""What moto's CloudFormation leaves out of the buckets infra/resources.json declares, applied
through the S3 API after the stack is made: their event notifications to SQS (moto's S3 then
delivers ObjectCreated events, S3's own JSON, to the queue, as S3 does; an imported file's
upload starts its import locally as in the cloud) and their lifecycle rules.

moto 5.2's CloudFormation creates `AWS::S3::Bucket` without NotificationConfiguration or
LifecycleConfiguration, and skips `AWS::SQS::QueuePolicy` (with a warning): locally no policy
is needed, moto does not check who sends."""

from __future__ import annotations

from typing import Any


def _queue_arn(sqs: Any, resources: dict[str, Any], logical_id: str, stage: str) -> str:
    name = resources[logical_id]["Properties"]["QueueName"]["Fn::Sub"].replace("${Stage}", stage)
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]


def _queue_configuration(sqs: Any, resources: dict, declared: dict, stage: str) -> dict:
    target = declared["Queue"]["Fn::GetAtt"][0]
    configuration: dict[str, Any] = {
        "QueueArn": _queue_arn(sqs, resources, target, stage),
        "Events": [declared["Event"]],
    }
    rules = declared.get("Filter", {}).get("S3Key", {}).get("Rules")
    if rules:
        configuration["Filter"] = {"Key": {"FilterRules": rules}}
    return configuration


def configure_buckets(template: dict[str, Any], stage: str) -> None:
    import boto3

    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    # moto's DescribeStackResource fails on a stack with a resource type it skipped: the
    # bucket's name is worked out as CloudFormation does.
    names = {
        "${Stage}": stage,
        "${AWS::AccountId}": boto3.client("sts").get_caller_identity()["Account"],
        "${AWS::Region}": s3.meta.region_name,
    }
    resources = template["Resources"]
    for resource in resources.values():
        if resource.get("Type") != "AWS::S3::Bucket":
            continue
        properties = resource.get("Properties", {})
        bucket = properties["BucketName"]["Fn::Sub"]
        for placeholder, value in names.items():
            bucket = bucket.replace(placeholder, value)
        queues = properties.get("NotificationConfiguration", {}).get("QueueConfigurations", [])
        if queues:
            s3.put_bucket_notification_configuration(
                Bucket=bucket,
                NotificationConfiguration={
                    "QueueConfigurations": [_queue_configuration(sqs, resources, q, stage) for q in queues]
                },
            )
        rules = properties.get("LifecycleConfiguration", {}).get("Rules", [])
        if rules:
            s3.put_bucket_lifecycle_configuration(
                Bucket=bucket, LifecycleConfiguration={"Rules": [_lifecycle_rule(rule) for rule in rules]}
            )


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    converted: dict[str, Any] = {
        "ID": rule["Id"],
        "Status": rule["Status"],
        "Filter": {"Prefix": rule.get("Prefix", "")},
    }
    if "ExpirationInDays" in rule:
        converted["Expiration"] = {"Days": rule["ExpirationInDays"]}
    if "AbortIncompleteMultipartUpload" in rule:
        converted["AbortIncompleteMultipartUpload"] = rule["AbortIncompleteMultipartUpload"]
    return converted
