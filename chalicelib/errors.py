"""The one error hierarchy. Services raise these; the API maps them to problem+json in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str


class CrmError(Exception):
    status = 500
    title = "Internal Server Error"
    type_slug = "internal"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extensions: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}
        # Members of the problem beside the standard ones (RFC 9457 extensions).
        self.extensions = extensions or {}


class BadRequest(CrmError):
    status, title, type_slug = 400, "Bad Request", "bad-request"


class ValidationFailed(BadRequest):
    title, type_slug = "Validation Failed", "validation"

    def __init__(self, errors: list[FieldError], detail: str | None = None) -> None:
        fields = ", ".join(dict.fromkeys(e.field for e in errors))
        super().__init__(detail or f"The request has invalid fields: {fields}.", errors=errors)


class Unauthorized(CrmError):
    status, title, type_slug = 401, "Unauthorized", "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="crm"'})


class SignatureUnauthorized(Unauthorized):
    """An inbound webhook's signature headers are missing, malformed, too old or new, or match
    none of the source's secrets: `errors` names the header. The challenge names the scheme
    (Standard Webhooks), not a bearer token: the route takes none."""

    type_slug = "invalid-signature"
    CHALLENGE = 'Webhook-Signature realm="crm", headers="webhook-id webhook-timestamp webhook-signature"'

    def __init__(self, header: str, detail: str) -> None:
        CrmError.__init__(
            self, detail, errors=[FieldError(header, detail)], headers={"WWW-Authenticate": self.CHALLENGE}
        )


class Forbidden(CrmError):
    status, title, type_slug = 403, "Forbidden", "forbidden"


class NotLinked(Forbidden):
    """A customer token (Cognito) whose user no customer is linked to yet."""

    type_slug = "not-linked"


class NotFound(CrmError):
    status, title, type_slug = 404, "Not Found", "not-found"


class Gone(CrmError):
    status, title, type_slug = 410, "Gone", "gone"


class MethodNotAllowed(CrmError):
    status, title, type_slug = 405, "Method Not Allowed", "method-not-allowed"


class Conflict(CrmError):
    status, title, type_slug = 409, "Conflict", "conflict"


class MergedInto(Conflict):
    """A write to (or a merge of) a customer id that was merged into another: `merged_into`."""

    type_slug = "merged"

    def __init__(self, detail: str, merged_into: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail, errors=errors, extensions={"merged_into": merged_into})


class MovedToSurvivor(CrmError):
    """A read of a customer id that was merged into another: the same path under that one."""

    status, title, type_slug = 308, "Permanent Redirect", "merged"

    def __init__(self, detail: str, merged_into: str, location: str) -> None:
        super().__init__(detail, headers={"Location": location}, extensions={"merged_into": merged_into})


class PreconditionFailed(CrmError):
    status, title, type_slug = 412, "Precondition Failed", "precondition-failed"


class PayloadTooLarge(CrmError):
    status, title, type_slug = 413, "Payload Too Large", "payload-too-large"


class ExportTooLarge(PayloadTooLarge):
    """An export document too large for a response: it is had as a job instead."""

    title, type_slug = "Export Too Large", "export-too-large"


class UnsupportedMediaType(CrmError):
    status, title, type_slug = 415, "Unsupported Media Type", "unsupported-media-type"


class Unprocessable(CrmError):
    status, title, type_slug = 422, "Unprocessable Content", "unprocessable"


class TooManyRequests(CrmError):
    """The caller asked for this too often; `Retry-After` says when they may again."""

    status, title, type_slug = 429, "Too Many Requests", "too-many-requests"

    def __init__(self, detail: str, retry_after_s: int) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class ServiceBusy(CrmError):
    """Other writes to the same items kept winning (DynamoDB's TransactionConflict, retried
    with backoff first): nothing was written, and the same request may pass in a moment."""

    status, title, type_slug = 503, "Service Unavailable", "busy"

    def __init__(self, detail: str, retry_after_s: int = 1) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)})


class TooLargeToStore(Unprocessable):
    """The change would make a stored item larger than DynamoDB allows (400 KB). It fails the
    same way however often it is sent: not a race, never "retry"."""

    title, type_slug = "Too Large to Store", "too-large"
