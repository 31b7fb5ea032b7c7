"""Structured logging. One Logger for the service; keys are appended, never f-strings of PII."""

from __future__ import annotations

import logging

from aws_lambda_powertools import Logger

logger = Logger(service="crm")

# The AWS SDK and PynamoDB log whole requests (items with names, emails, phones) at DEBUG:
# they stay at WARNING whatever level the service logs at, so personal data never reaches logs.
for _name in ("botocore", "boto3", "pynamodb", "urllib3"):
    logging.getLogger(_name).setLevel(logging.WARNING)
