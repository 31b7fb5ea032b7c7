"""HTTP plumbing every route shares: the route decorator, authentication, body and query
parsing, and the one mapping from errors to RFC 9457 problem+json responses.

`api_route` registers a view on a Chalice blueprint and records its contract (roles, query,
body and response models) in `ROUTES`, from which `openapi.py` writes the document.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

from chalice import Blueprint, Response
from pydantic import BaseModel

from chalicelib.api.requests import (
    check_body_size,
    check_path_parameters,
    parse_json_body,
    query_params,
    refuse_body,
    validate,
)
from chalicelib.api.responses import problem
from chalicelib.domain.audit import Actor
from chalicelib.errors import CrmError, Forbidden, MergedInto, MovedToSurvivor, NotFound, NotLinked


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
    # False: the body may be left out (it is then read as `{}`).
    body_required: bool = True
    # Header parameters the route reads, as OpenAPI parameter objects (name, schema, ...).
    request_headers: tuple[dict[str, Any], ...] = ()


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


_WRITES = ("POST", "PATCH", "PUT", "DELETE")
# The methods whose bodies the HTTP middleware holds to the size limit (413).
_SIZED = ("POST", "PATCH", "PUT")


Authenticator = Callable[[Any], Any]


def _not_configured(authorization: Any) -> Any:
    raise RuntimeError("api.http.configure() was not called: no route can authenticate")


_authenticate: Authenticator = _not_configured
_max_body_bytes = 1024 * 1024
_validation_context: Callable[[], dict] = dict
# The customer a merged id now is (None: not merged), asked only when a route of a customer
# answered 404, so requests that find their customer pay nothing for it.
AliasResolver = Callable[[str], "str | None"]
_resolve_alias: AliasResolver = lambda customer_id: None  # noqa: E731


def configure(
    authenticate: Authenticator,
    max_body_bytes: int,
    validation_context: Callable[[], dict],
    resolve_alias: AliasResolver | None = None,
) -> None:
    """Wire the collaborators in: `validation_context()` gives models what they may need
    beyond the request, such as the current time; `resolve_alias(customer_id)` the customer
    a merged id was merged into."""
    global _authenticate, _max_body_bytes, _validation_context, _resolve_alias
    _authenticate = authenticate
    _max_body_bytes = max_body_bytes
    _validation_context = validation_context
    if resolve_alias is not None:
        _resolve_alias = resolve_alias


def validation_context() -> dict:
    """What models may need beyond the request (see `configure`), for a view that validates
    parts of its body itself (a batch's items)."""
    return _validation_context()


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
    body_required: bool = True,
    request_headers: tuple[dict[str, Any], ...] = (),
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Register a view with its contract. `roles=()` means no authentication; `also` names
        other success statuses (with their body model and a description) the view may answer;
        `error_headers` are added to every problem the route answers; `description` documents
        rules the schemas cannot express. A route without a `body` model refuses a body; a `body` that
    is a map of media type to JSON Schema (not JSON) is documented, not parsed; with
    `body_required=False` an empty body is read as `{}`."""

    def decorator(view: Callable[..., Response]) -> Callable[..., Response]:
        def handler(**path_params: str) -> Response:
            request = bp.current_request
            try:
                principal = None
                if roles:
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
                if isinstance(body, dict):
                    check_body_size(request.raw_body, _max_body_bytes)
                elif body is not None and not body_required and not (request.raw_body or b"").strip():
                    parsed_body = validate(body, {}, _validation_context())
                elif body is not None:
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
                    # As received: what a signature (an inbound webhook's) is computed over.
                    raw_body=request.raw_body or b"",
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
                    lambda: _merged_or(lambda: view(call, **path_params), path, method, path_params, {}),
                )
            except CrmError as error:
                error = _if_merged(error, path, method, path_params, _query_lists(request))
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
                body_required=body_required,
                request_headers=request_headers,
            )
        )
        return handler

    return decorator


def _run_once(
    call: Call, key: str, body: bytes | None, lambda_context: Any, run: Callable[[], Response]
) -> Response:
    """Run the view once per `Idempotency-Key` (see idempotency.py); its 4xx are remembered too."""
    from chalicelib.api.idempotency import REPLAYED_HEADER, run_once

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

    outcome = run_once(
        caller=f"{principal.role}:{principal.subject}" if principal else "anonymous",
        # The path's parameters too: one key on two customers' timelines is two requests.
        route=" ".join([call.route, *(f"{k}={v}" for k, v in sorted(call.path_params.items()))]),
        key=key,
        body=body or b"",
        run=view_or_problem,
        lambda_context=lambda_context,
        owner=owner,
    )
    record = outcome.record
    response = Response(
        body=record["body"], status_code=int(record["status"]), headers=dict(record["headers"])
    )
    if outcome.replayed:
        response.headers[REPLAYED_HEADER] = "true"
    return response


def _query_lists(request: Any) -> dict[str, list[str]]:
    params = request.query_params or {}
    return {name: params.getlist(name) for name in params} if params else {}


def _if_merged(
    error: CrmError, template: str, method: str, path_params: dict[str, str], query: dict[str, list[str]]
) -> CrmError:
    """A NotFound of a route under a customer whose id was merged into another: a read is
    redirected (308) to the same path, and query, under that customer; a write is refused
    (409). Both name it in `merged_into`. Any other answer is left as it is."""
    customer_id = path_params.get("customer_id")
    if not isinstance(error, NotFound) or not customer_id:
        return error
    into = _resolve_alias(customer_id)
    if into is None:
        return error
    if method != "GET":
        return MergedInto(
            f"Customer {customer_id} was merged into {into}: write to customer {into} instead.", into
        )
    values = {name: quote(value, safe="") for name, value in path_params.items()}
    location = template.format(**{**values, "customer_id": quote(into, safe="")})
    if query:
        location += "?" + urlencode(query, doseq=True)
    return MovedToSurvivor(f"Customer {customer_id} was merged into {into}: see {location}.", into, location)


def _merged_or(
    run: Callable[[], Response], template: str, method: str, path_params: dict[str, str], query: dict
) -> Response:
    """`run`, whose NotFound of a merged customer is answered as `_if_merged` says (the
    answer a keyed POST remembers)."""
    try:
        return run()
    except NotFound as error:
        merged = _if_merged(error, template, method, path_params, query)
        if merged is error:
            raise
        raise merged from None


def _implied_errors(path: str, method: str, roles: tuple[str, ...], query: Any, body: Any) -> set[int]:
    codes = set()
    if "{customer_id}" in path:
        # A customer id merged into another: a read is redirected, a write refused.
        codes.add(308 if method == "GET" else 409)
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
