"""ETags are the profile's version; If-Match names the version a change was based on."""

from __future__ import annotations

import re

from chalicelib.errors import FieldError, ValidationFailed

_ETAG = re.compile(r'^(W/)?"v(\d{1,18})"$')


def etag(version: int) -> str:
    return f'"v{version}"'


def if_match(headers) -> int | None:
    value = (headers.get("if-match") or "").strip()
    if not value or value == "*":
        return None
    match = _ETAG.match(value)
    if not match:
        raise ValidationFailed([FieldError("If-Match", 'must be an ETag of this resource, such as "v3"')])
    return int(match.group(2))
