"""The served OpenAPI document as a contract every functional test's exchange must keep.

For each response: its status is documented for the operation (or, for a path or method the
document does not have, it is the 404 or 405 problem), every header the document requires is
there, every documented header it carries matches its schema, and its Content-Type and body
match the documented content (problem+json included, whose `status` is the HTTP status). For
each request the server accepted (status < 400): its JSON body and its documented query
parameters match their schemas, so the document never rejects what the server takes. `format`
is checked in responses only: in OpenAPI 3.1's dialect it is an annotation, and the server may
take more than a format says (a date-time with a space for "T", or whose "+" arrived unencoded).

The document is written once per process; a validator is built once per schema it checks.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

DOCUMENT_URI = "urn:crm:openapi"
PROBLEM_JSON = "application/problem+json"


class ContractViolation(AssertionError):
    pass


def _pointer(*parts: str) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in parts)


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


def _types(schema: dict) -> set[str]:
    kind = schema.get("type")
    found = set(kind) if isinstance(kind, list) else {kind} if kind else set()
    for branch in [*schema.get("anyOf", ()), *schema.get("oneOf", ())]:
        found |= _types(branch)
    return found


class Contract:
    def __init__(self, document: dict) -> None:
        self.document = document
        resource = DRAFT202012.create_resource(document)
        self._registry = Registry().with_resource(DOCUMENT_URI, resource)
        # Literal segments win over templated ones, as OpenAPI matches paths.
        templates = sorted(document["paths"], key=lambda t: (t.count("{"), -t.count("/")))
        self._paths = [
            (re.compile("^" + re.sub(r"\\{\w+\\}", "[^/]+", re.escape(t)) + "$"), t) for t in templates
        ]

    @functools.cache  # noqa: B019 - one Contract per process
    def _validator(self, pointer: str, formats: bool) -> Draft202012Validator:
        return Draft202012Validator(
            {"$ref": f"{DOCUMENT_URI}#{pointer}"},
            registry=self._registry,
            format_checker=Draft202012Validator.FORMAT_CHECKER if formats else None,
        )

    def _validate(self, pointer: str, instance: Any, what: str, formats: bool = True) -> None:
        error = next(iter(self._validator(pointer, formats).iter_errors(instance)), None)
        if error is not None:
            at = "/".join(str(p) for p in error.absolute_path) or "(root)"
            raise ContractViolation(f"{what}: {error.message} at {at} (schema {pointer})")

    def template(self, path: str) -> str | None:
        return next((t for pattern, t in self._paths if pattern.match(path)), None)

    def request_body_errors(self, method: str, template: str, body: Any) -> list[str]:
        """What the document finds wrong with `body` as the operation's JSON request body."""
        pointer = _pointer("paths", template, method.lower(), "requestBody", "content", "application/json")
        validator = self._validator(pointer + "/schema", False)
        return [error.message for error in validator.iter_errors(body)]

    def check(
        self,
        method: str,
        url: str,
        request_headers: dict[str, str],
        request_body: bytes | str | None,
        status: int,
        headers: dict[str, str],
        body: bytes,
    ) -> None:
        """`headers` with lower-case names."""
        path, _, query = url.partition("?")
        exchange = f"{method} {path} → {status}"
        if method == "OPTIONS":  # CORS preflight, answered on every path; not an operation
            if status != 204:
                raise ContractViolation(f"{exchange}: a preflight is answered with 204")
            return
        template = self.template(path)
        operation = self.document["paths"].get(template, {}).get(method.lower()) if template else None
        if template is None and status == 403 and "x-amzn-errortype" in headers:
            # chalice.test.Client answers a path no route matches as API Gateway does before any
            # mapping; the deployed API (gateway responses) and the local server answer 404.
            return
        if operation is None:
            expected = 404 if template is None else 405
            if status != expected:
                raise ContractViolation(f"{exchange}: no operation is documented, so {expected} is expected")
            problem = _pointer("components", "schemas", "Problem")
            self._check_body(problem, PROBLEM_JSON, status, headers, body, exchange)
            return
        where = f"{exchange} ({method} {template})"
        documented = operation["responses"].get(str(status))
        if documented is None:
            raise ContractViolation(
                f"{where}: status {status} is not documented (only {', '.join(operation['responses'])})"
            )
        response_pointer = _pointer("paths", template, method.lower(), "responses", str(status))
        for name, header in documented.get("headers", {}).items():
            value = headers.get(name.lower())
            if value is None:
                if header.get("required"):
                    raise ContractViolation(f"{where}: the required header {name} is missing")
                continue
            self._validate(
                response_pointer + _pointer("headers", name, "schema"), value, f"{where}: header {name}"
            )
        content = documented.get("content")
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if content is None:
            if body:
                raise ContractViolation(f"{where}: no body is documented, but one came ({media_type})")
        elif media_type not in content:
            raise ContractViolation(f"{where}: Content-Type {media_type!r} is not one of {sorted(content)}")
        else:
            schema = response_pointer + _pointer("content", media_type, "schema")
            self._check_body(schema, media_type, status, headers, body, where)
        if status < 400:
            self._check_request(operation, template, method, query, request_headers, request_body, where)

    def _check_body(
        self, pointer: str, media_type: str, status: int, headers: dict, body: bytes, where: str
    ) -> None:
        if headers.get("content-type", "").split(";")[0].strip().lower() != media_type:
            raise ContractViolation(
                f"{where}: Content-Type {headers.get('content-type')!r}, not {media_type}"
            )
        text = body.decode("utf-8") if isinstance(body, bytes) else body
        instance = json.loads(text) if _is_json(media_type) else text
        self._validate(pointer, instance, f"{where}: body")
        if media_type == PROBLEM_JSON and instance.get("status") != status:
            raise ContractViolation(f"{where}: the problem's status is {instance.get('status')}")

    def _check_request(
        self,
        operation: dict,
        template: str,
        method: str,
        query: str,
        request_headers: dict[str, str],
        request_body: bytes | str | None,
        where: str,
    ) -> None:
        base = _pointer("paths", template, method.lower())
        for index, parameter in enumerate(operation.get("parameters", [])):
            if parameter["in"] != "query":
                continue
            values = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == parameter["name"]]
            if not values:
                continue
            value: Any = values[-1]  # the server takes the last one
            if "integer" in _types(parameter["schema"]) and re.fullmatch(r"-?[0-9]+", value):
                value = int(value)
            self._validate(
                base + _pointer("parameters", str(index), "schema"),
                value,
                f"{where}: the server accepted query parameter {parameter['name']}={values[-1]!r}",
                formats=False,
            )
        content = operation.get("requestBody", {}).get("content", {})
        sent = {k.lower(): v for k, v in request_headers.items()}.get("content-type", "")
        media_type = sent.split(";")[0].strip().lower()
        if not request_body or media_type not in content or not _is_json(media_type):
            return
        try:
            instance = json.loads(request_body)
        except ValueError:
            return
        self._validate(
            base + _pointer("requestBody", "content", media_type, "schema"),
            instance,
            f"{where}: the server accepted a request body the document rejects",
            formats=False,
        )


@functools.cache
def contract() -> Contract:
    from chalicelib.api.openapi import document

    # Through JSON, as it is served.
    return Contract(json.loads(json.dumps(document())))
