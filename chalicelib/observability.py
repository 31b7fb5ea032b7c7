"""Structured logging. One Logger for the service; keys are appended, never f-strings of PII."""

from __future__ import annotations

from aws_lambda_powertools import Logger

logger = Logger(service="crm")
