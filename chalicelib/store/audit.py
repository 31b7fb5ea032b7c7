"""Audit entries: written in the same transaction as the change they record."""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from chalicelib.domain.audit import Actor, AuditEntry, Change
from chalicelib.domain.clock import Deadline, parse_rfc3339, to_rfc3339
from chalicelib.store.keys import AUDIT_PREFIX, customer_pk
from chalicelib.store.models import AuditModel
from chalicelib.store.pagination import Key, newest_under
from chalicelib.store.transactions import BATCH_WRITE_ITEMS


def _partition(entry: AuditEntry) -> str:
    if entry.customer_id:
        return customer_pk(entry.customer_id)
    return f"{entry.entity.upper()}#{entry.entity_id}"


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def audit_item(entry: AuditEntry) -> AuditModel:
    return AuditModel(
        _partition(entry),
        f"{AUDIT_PREFIX}{entry.id}",
        entity=entry.entity,
        entity_id=entry.entity_id,
        action=entry.action,
        actor_subject=entry.actor.subject,
        actor_role=entry.actor.role,
        route=entry.actor.route,
        at=to_rfc3339(entry.at),
        changes=json.dumps(
            [{"field": c.field, "before": c.before, "after": c.after} for c in entry.changes],
            ensure_ascii=False,
            default=_json,
        ),
    )


def _to_domain(item: AuditModel) -> AuditEntry:
    customer_id = item.pk.split("#", 1)[1] if item.pk.startswith("CUSTOMER#") else None
    return AuditEntry(
        id=item.sk.removeprefix(AUDIT_PREFIX),
        entity=item.entity,
        entity_id=item.entity_id,
        action=item.action,
        actor=Actor(item.actor_subject, item.actor_role, item.route),
        at=parse_rfc3339(item.at),
        changes=tuple(Change(c["field"], c["before"], c["after"]) for c in json.loads(item.changes)),
        customer_id=customer_id,
    )


class AuditRepository:
    def of_customer(
        self, customer_id: str, limit: int, start: Key | None
    ) -> tuple[list[AuditEntry], Key | None]:
        return newest_under(
            AuditModel, customer_pk(customer_id), AUDIT_PREFIX, limit=limit, start=start, to_domain=_to_domain
        )

    def scrub(self, customer_id: str, fields: Iterable[str], deadline: Deadline | None = None) -> int:
        """Replace the before/after values of `fields` by null in every entry under the
        customer, keeping the entries (who changed which field when). Returns entries changed.
        With a `deadline`, OutOfTime may stop it after a batch of changes: calling again goes on."""
        personal = frozenset(fields)
        changed = 0
        for item in AuditModel.query(customer_pk(customer_id), AuditModel.sk.startswith(AUDIT_PREFIX)):
            changes = json.loads(item.changes)
            scrubbed = [
                {**c, "before": None, "after": None} if c.get("field") in personal else c for c in changes
            ]
            if scrubbed != changes:
                item.changes = json.dumps(scrubbed, ensure_ascii=False)
                item.save()
                changed += 1
                if deadline is not None and changed % BATCH_WRITE_ITEMS == 0:
                    deadline.check()
        return changed
