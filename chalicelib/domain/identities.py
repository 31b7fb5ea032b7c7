"""A sign-in identity (a Cognito user: issuer and `sub`) linked to a customer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Identity:
    customer_id: str
    issuer: str
    subject: str
    linked_at: datetime
    linked_by: str
