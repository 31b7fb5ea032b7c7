"""HTTP plumbing every route shares: the route decorator, authentication, body and query
parsing, and the one mapping from errors to RFC 9457 problem+json responses.

`api_route` registers a view on a Chalice blueprint and records its contract (roles, query,
body and response models) in `ROUTES`, from which `openapi.py` writes the document.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chalice import Blueprint, Response
from pydantic import BaseModel, ValidationError

from chalicelib.domain.audit import Actor
from chalicelib.errors import (
    BadRequest,
    CrmError,
    FieldError,
    Forbidden,
    NotFound,
    NotLinked,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
)

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"


@dataclass(frozen=True)
class RouteSpec:
    path: str
    method: str
    name: str
    summary: str
    roles: tuple[str, ...]
    query: type[BaseModel] | None
    body: Any
    # A pydantic model (a JSON body), or a map of media type → JSON Schema for other bodies.
    response: Any
    status: int
    errors: tuple[int, ...]
    headers: tuple[str, ...] = ()
    # Other success answers: (status, response model, description), e.g. a 202 beside a 200.
    also: tuple[tuple[int, Any, str], ...] = ()
    # Headers every problem of the route carries (e.g. Cache-Control).
    error_headers: tuple[str, ...] = ()
    # The operation's description: what its schemas cannot say (rules across parameters).
    description: str | None = None


ROUTES: list[RouteSpec] = []
_OPTIONS_PATHS: set[str] = set()


@dataclass
class Call:
    """What a view gets: who is calling, and the validated query and body."""

    principal: Any
    query: Any
    body: Any
    headers: Any
    path: str
    raw_body: bytes = b""
    path_params: dict[str, str] = field(default_factory=dict)
    route: str = ""

    @property
    def actor(self) -> Actor:
        """Who is making this change, for the audit trail."""
        return Actor(self.principal.subject, self.principal.role, self.route)


class RequestFieldErrors(Exception):
    """Raised by model validators that need several fields at once (e.g. prices and their
    currency). Not a ValueError on purpose: pydantic lets it through, keeping its field names."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__(errors)
        self.errors = errors


def problem(error: CrmError, instance: str | None = None) -> Response:
    body: dict[str, Any] = {
        "type": f"urn:problem-type:crm:{error.type_slug}",
        "title": error.title,
        "status": error.status,
        "detail": error.detail,
    }
    if instance:
        body["instance"] = instance
    if error.errors:
        body["errors"] = [{"field": e.field, "message": e.message} for e in error.errors]
    return Response(
        body=json.dumps(body, ensure_ascii=False),
        status_code=error.status,
        headers={"Content-Type": PROBLEM_JSON, **error.headers},
    )


def to_json(payload: Any) -> str:
    """A response body's JSON: UTF-8 text (not ASCII escapes), decimals as strings."""
    return json.dumps(payload, ensure_ascii=False, default=_json_default)


def page_response(page: Any, out: Callable[[Any], Any]) -> Response:
    """A list's answer: `{"items", "next_cursor"}`, each item of the page through `out`."""
    return json_response({"items": [out(item) for item in page.items], "next_cursor": page.next_cursor})


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = "" if payload is None else to_json(payload)
    base = {"Content-Type": JSON} if payload is not None else {}
    return Response(body=body, status_code=status, headers={**base, **(headers or {})})


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


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


def parse_json_body(headers: Any, raw: bytes | str | None, max_bytes: int) -> Any:
    raw_bytes = raw.encode() if isinstance(raw, str) else (raw or b"")
    if len(raw_bytes) > max_bytes:
        raise PayloadTooLarge(f"The body is {len(raw_bytes)} bytes; the limit is {max_bytes}.")
    content_type = (headers.get("content-type") or "").split(";")[0].strip().lower()
    if content_type != JSON and not (
        content_type.startswith("application/") and content_type.endswith("+json")
    ):
        raise UnsupportedMediaType(
            f"The body must be JSON sent as {JSON}, not {content_type or 'no Content-Type'}."
        )
    if not raw_bytes.strip():
        raise BadRequest("The body is empty; a JSON object is expected.")
    try:
        document = json.loads(raw_bytes, parse_float=Decimal)
    except RecursionError:
        raise BadRequest(f"The body nests JSON deeper than {MAX_JSON_DEPTH} levels.") from None
    except (ValueError, UnicodeDecodeError) as error:
        raise BadRequest(f"The body is not valid JSON: {error}.") from None
    if _depth(document) > MAX_JSON_DEPTH:
        raise BadRequest(f"The body nests JSON deeper than {MAX_JSON_DEPTH} levels.")
    return document


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


_WRITES = ("POST", "PATCH", "PUT", "DELETE")
# The methods whose bodies the HTTP middleware holds to the size limit (413).
_SIZED = ("POST", "PATCH", "PUT")


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


Authenticator = Callable[[Any], Any]
_authenticate: Authenticator | None = None
_max_body_bytes = 1024 * 1024
_validation_context: Callable[[], dict] = dict


def configure(
    authenticate: Authenticator, max_body_bytes: int, validation_context: Callable[[], dict]
) -> None:
    """Wire the collaborators in: `validation_context()` gives models what they may need
    beyond the request, such as the current time."""
    global _authenticate, _max_body_bytes, _validation_context
    _authenticate = authenticate
    _max_body_bytes = max_body_bytes
    _validation_context = validation_context


def api_route(
    bp: Blueprint,
    path: str,
    method: str,
    *,
    summary: str,
    roles: tuple[str, ...] = ("staff",),
    query: type[BaseModel] | None = None,
    body: Any = None,
    response: Any = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    headers: tuple[str, ...] = (),
    also: tuple[tuple[int, Any, str], ...] = (),
    error_headers: dict[str, str] | None = None,
    description: str | None = None,
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Register a view with its contract. `roles=()` means no authentication; `also` names
    other success statuses (with their body model and a description) the view may answer;
    `error_headers` are added to every problem the route answers; `description` documents
    rules the schemas cannot express. A route without a `body` model refuses a body."""

    def decorator(view: Callable[..., Response]) -> Callable[..., Response]:
        def handler(**path_params: str) -> Response:
            request = bp.current_request
            try:
                principal = None
                if roles:
                    assert _authenticate is not None, "api.http.configure() was not called"
                    principal = _authenticate(request.headers.get("authorization"))
                    if principal.role not in roles:
                        raise Forbidden(f"This route is for the role(s) {', '.join(roles)}.")
                    if getattr(principal, "unlinked", False) and (
                        roles == ("customer",) or getattr(principal, "link_only", False)
                    ):
                        # Self-service acts on the caller's own customer: there is none yet. A
                        # token in no group is a customer's only through that link.
                        raise NotLinked(
                            "Your sign-in is not linked to a customer profile: sign-up links it "
                            "by your verified email address, or customer service can link it."
                        )
                check_path_parameters(path_params)
                parsed_query = validate(query, query_params(request)) if query else None
                parsed_body = None
                if body is not None:
                    parsed_body = validate(
                        body,
                        parse_json_body(request.headers, request.raw_body, _max_body_bytes),
                        _validation_context(),
                    )
                elif method in _WRITES:
                    refuse_body(request.raw_body)
                call = Call(
                    principal=principal,
                    query=parsed_query,
                    body=parsed_body,
                    headers=request.headers,
                    path=request.context.get("path") or request.path,
                    path_params=path_params,
                    route=f"{method} {path}",
                )
                # Authenticated POSTs only: a stored response is scoped to (and erased with) its
                # caller, and an anonymous route has none.
                key = request.headers.get("idempotency-key") if method == "POST" and roles else None
                if key is None:
                    return view(call, **path_params)
                return _run_once(
                    call,
                    key,
                    request.raw_body if body is not None else b"",
                    bp.lambda_context,
                    lambda: view(call, **path_params),
                )
            except CrmError as error:
                answer = problem(error, request.context.get("path"))
                answer.headers.update(error_headers or {})
                return answer

        handler.__name__ = view.__name__
        handler.__doc__ = view.__doc__
        bp.route(path, methods=[method], content_types=["*/*"])(handler)
        if path not in _OPTIONS_PATHS:
            _OPTIONS_PATHS.add(path)
            bp.route(path, methods=["OPTIONS"], content_types=["*/*"])(_preflight)
        ROUTES.append(
            RouteSpec(
                path=path,
                method=method,
                name=view.__name__,
                summary=summary,
                roles=roles,
                query=query,
                body=body,
                response=response,
                status=status,
                errors=tuple(sorted(set(errors) | _implied_errors(path, method, roles, query, body))),
                headers=headers,
                also=also,
                error_headers=tuple(error_headers or ()),
                description=description,
            )
        )
        return handler

    return decorator


def _run_once(
    call: Call, key: str, body: bytes | None, lambda_context: Any, run: Callable[[], Response]
) -> Response:
    """Run the view once per `Idempotency-Key` (see idempotency.py); its 4xx are remembered too."""
    from chalicelib.api.idempotency import run_once

    def view_or_problem() -> Response:
        try:
            return run()
        except CrmError as error:
            return problem(error, call.path)

    principal = call.principal

    def owner(record: dict[str, Any]) -> str | None:
        """The customer whose data the stored response holds (erasure deletes the record)."""
        if call.route == "POST /customers/{customer_id}/erase":
            # The answer names the erasure's job and the customer's id, which the audit trail
            # keeps too: nothing to erase, and a retry after the erasure still gets its job.
            return None
        if call.path_params.get("customer_id"):
            return call.path_params["customer_id"]
        if principal is not None and principal.role == "customer":
            return principal.subject
        if call.route == "POST /customers" and int(record.get("status", 0)) == 201:
            try:
                return json.loads(record.get("body") or "{}").get("id")
            except (ValueError, AttributeError):
                return None
        return None

    return run_once(
        caller=f"{principal.role}:{principal.subject}" if principal else "anonymous",
        # The path's parameters too: one key on two customers' timelines is two requests.
        route=" ".join([call.route, *(f"{k}={v}" for k, v in sorted(call.path_params.items()))]),
        key=key,
        body=body or b"",
        run=view_or_problem,
        lambda_context=lambda_context,
        owner=owner,
        instance=call.path,
    )


def _implied_errors(path: str, method: str, roles: tuple[str, ...], query: Any, body: Any) -> set[int]:
    codes = set()
    if method in _WRITES:
        codes.add(503)  # concurrent writes kept winning (TransactionConflict): Retry-After
        codes.add(400)  # a body where none is taken, or a bad one
    if method in _SIZED:
        codes.add(413)  # the middleware measures every such body, taken or not
    if roles:
        codes |= {401, 403}
    if query is not None or body is not None or "{" in path:
        codes.add(400)  # a path parameter can be too long to be a key
    if body is not None:
        codes.add(415)
    return codes


def _preflight(**_: str) -> Response:
    # CORS headers are added by the HTTP middleware, which sees every response.
    return Response(body="", status_code=204, headers={})
