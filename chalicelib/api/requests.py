"""What every request goes through before its view: the JSON body, the query, the path
parameters, and validation into pydantic models with every bad field named."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from chalicelib.api.responses import JSON
from chalicelib.errors import (
    BadRequest,
    FieldError,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)


class RequestFieldErrors(Exception):
    """Raised by model validators that need several fields at once (e.g. prices and their
    currency). Not a ValueError on purpose: pydantic lets it through, keeping its field names."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(errors)
        self.errors = errors


def field_errors(error: ValidationError, tagged_union: bool = False) -> list[FieldError]:
    found = []
    for e in error.errors(include_url=False):
        loc = list(e["loc"])
        message = e["msg"].removeprefix("Value error, ")
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            tag = e["ctx"]["discriminator"].strip("'")
            expected = e["ctx"].get("expected_tags", "")
            found.append(FieldError(tag, f"must be one of {expected}" if expected else "is required"))
            continue
        if tagged_union and loc:
            loc = loc[1:]  # a discriminated union puts the tag value first
        if e["type"] == "extra_forbidden":
            message = "is not a known field"
        elif e["type"] == "missing":
            message = "is required"
        found.append(FieldError(".".join(str(part) for part in loc) or "body", message))
    return found


# Checks that need several fields (a price and its currency) run after the fields validated;
# registered here for a model, they also run on the raw body when some field did not, so that
# every bad field is named at once.
RawCheck = Callable[[Any], list[FieldError]]
_RAW_CHECKS: dict[int, RawCheck] = {}


def check_raw_too(model: Any, check: RawCheck) -> None:
    _RAW_CHECKS[id(model)] = check


def validate(model: Any, data: Any, context: dict | None = None) -> Any:
    from pydantic import TypeAdapter

    adapter = model if isinstance(model, TypeAdapter) else None
    try:
        if adapter is not None:
            return adapter.validate_python(data, context=context)
        return model.model_validate(data, context=context)
    except ValidationError as error:
        errors = field_errors(error, tagged_union=adapter is not None)
        check = _RAW_CHECKS.get(id(model))
        if check is not None:
            named = {e.field for e in errors}
            errors += [e for e in check(data) if e.field not in named]
        raise ValidationFailed(errors) from None
    except RequestFieldErrors as error:
        raise ValidationFailed(error.errors) from None


def check_body_size(raw: bytes | str | None, max_bytes: int) -> bytes:
    """The body as bytes; PayloadTooLarge (413) over `max_bytes`."""
    raw_bytes = raw.encode() if isinstance(raw, str) else (raw or b"")
    if len(raw_bytes) > max_bytes:
        raise PayloadTooLarge(f"The body is {len(raw_bytes)} bytes; the limit is {max_bytes}.")
    return raw_bytes


def check_json_media_type(headers: Any) -> None:
    """UnsupportedMediaType unless the body is sent as application/json (or a +json type)."""
    content_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != JSON and not (
        content_type.startswith("application/") and content_type.endswith("+json")
    ):
        raise UnsupportedMediaType(
            f"The body must be JSON sent as {JSON}, not {content_type or 'no Content-Type'}."
        )


def load_json(raw_bytes: bytes) -> Any:
    """The JSON document of a body: UTF-8 only (RFC 8259; json.loads would also take UTF-16
    and UTF-32), numbers with a fraction as Decimal, nested at most MAX_JSON_DEPTH levels;
    ValueError saying what is wrong."""
    try:
        text = raw_bytes.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"is not UTF-8: {error}") from None
    try:
        document = json.loads(text, parse_float=Decimal)
    except RecursionError:
        raise ValueError(f"nests JSON deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError as error:
        raise ValueError(f"is not valid JSON: {error}") from None
    if _depth(document) > MAX_JSON_DEPTH:
        raise ValueError(f"nests JSON deeper than {MAX_JSON_DEPTH} levels")
    return document


def parse_json_body(headers: Any, raw: bytes | str | None, max_bytes: int) -> Any:
    raw_bytes = check_body_size(raw, max_bytes)
    check_json_media_type(headers)
    if not raw_bytes.strip():
        raise BadRequest("The body is empty; a JSON object is expected.")
    try:
        return load_json(raw_bytes)
    except ValueError as error:
        raise BadRequest(f"The body {error}.") from None


# No request body of this API nests deeper than a few levels; a bound keeps every later step
# (validation, storage) far from Python's recursion limit.
MAX_JSON_DEPTH = 32
# An id in a path is a key of DynamoDB (at most 2,048 bytes for a partition key, 1,024 for a
# sort key); no id of this API comes near this bound.
MAX_PATH_PARAMETER_BYTES = 512


def _depth(document: Any) -> int:
    """How deeply `document` nests lists and objects, without recursion."""
    deepest, pending = 0, [(document, 1)]
    while pending:
        value, level = pending.pop()
        if isinstance(value, dict | list):
            deepest = max(deepest, level)
            if level <= MAX_JSON_DEPTH:
                children = value.values() if isinstance(value, dict) else value
                pending.extend((child, level + 1) for child in children)
    return deepest


def refuse_body(raw: bytes | str | None) -> None:
    """A route that declares no body takes none: a body sent to it would be silently ignored
    (a reason for an erasure, a filter for an export). Nothing, or only whitespace, is none."""
    if raw and raw.strip():
        raise ValidationFailed(
            [FieldError("body", "this route takes no body")],
            "This route takes no request body: send none (an empty body).",
        )


def check_path_parameters(path_params: dict[str, str]) -> None:
    """A path parameter becomes a key: DynamoDB refuses an empty or oversized one. An empty
    one (`/customers//interactions`) matches no documented path, as on API Gateway: 404."""
    empty = [name for name, value in path_params.items() if not value]
    if empty:
        raise NotFound(f"Nothing is at this path: {empty[0]} is empty.")
    errors = [
        FieldError(name, f"must be at most {MAX_PATH_PARAMETER_BYTES} bytes")
        for name, value in path_params.items()
        if len(value.encode()) > MAX_PATH_PARAMETER_BYTES
    ]
    if errors:
        raise ValidationFailed(errors)


def query_params(request: Any) -> dict[str, str]:
    params = request.query_params or {}
    return {name: params.getlist(name)[-1] for name in params} if params else {}
