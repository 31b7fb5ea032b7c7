"""The export document: everything we hold on a person (services/export.py gathers it) as one
JSON document, in the API's own output models.

It is written in pieces, a page of the timeline, cases or audit trail at a time, so neither way
of getting it holds more than a page and what it sends: `GET …/export` answers it inline while
it fits a Lambda response, and `POST …/exports` starts a job that streams it to S3
(services/jobs.py), whatever its size.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from chalicelib.api.audit import AuditEntryOut
from chalicelib.api.case_schemas import CaseOut
from chalicelib.api.customer_schemas import CustomerOut
from chalicelib.api.interaction_schemas import InteractionOut
from chalicelib.api.loyalty_schemas import LoyaltyDetail
from chalicelib.api.responses import to_json
from chalicelib.api.schemas import Out
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import to_rfc3339

if TYPE_CHECKING:
    from chalicelib.services.export import CustomerData

FORMAT = "crm-export/1"


class ExportOut(Out):
    """The export document (`format` names its version)."""

    format: str
    exported_at: str
    customer: CustomerOut
    loyalty: LoyaltyDetail
    interactions: list[InteractionOut]
    cases: list[CaseOut]
    audit: list[dict[str, Any]]


def _array(name: str, items: Iterable[Any], first: bool = False) -> Iterator[str]:
    yield ("" if first else ", ") + f'"{name}": ['
    for index, item in enumerate(items):
        yield (", " if index else "") + to_json(item)
    yield "]"


def _unmasked(entry: AuditEntry) -> dict:
    # The person's own data, so unmasked; who changed it is part of the record.
    changes = [{"field": c.field, "before": c.before, "after": c.after} for c in entry.changes]
    return AuditEntryOut.of(entry) | {"changes": changes}


def document_chunks(data: CustomerData, base_currency: str) -> Iterator[str]:
    """The export document as JSON text, in pieces; reading `data`'s lists as it goes."""
    head = {
        "format": FORMAT,
        "exported_at": to_rfc3339(data.exported_at),
        "customer": CustomerOut.of(data.customer),
        "loyalty": LoyaltyDetail.of(data.loyalty, base_currency),
    }
    yield to_json(head)[:-1] + ", "
    yield from _array("interactions", (InteractionOut.of(i) for i in data.interactions), first=True)
    yield from _array("cases", (CaseOut.of(c) for c in data.cases))
    yield from _array("audit", (_unmasked(e) for e in data.audit))
    yield "}"
