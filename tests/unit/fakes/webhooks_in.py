"""Inbound webhook sources, deliveries and external-id guards, as store/webhook_sources.py
keeps them: a delivery or a guard is added only if absent, a source's secrets change only at
its version, a delivery's first final status stands and drops its payload, a deleted source's
partition is purged a page at a time, and forgetting a customer strips their deliveries and
deletes their guards."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from chalicelib.domain import storage
from chalicelib.domain.clock import Deadline
from chalicelib.domain.webhook_sources import RECEIVED, Delivery, Guard, Source
from tests.unit.fakes.base import Key, Rivals, page


class FakeWebhookSources:
    def __init__(self) -> None:
        self.sources: dict[str, Source] = {}
        self.deliveries_: dict[tuple[str, str], Delivery] = {}
        self.guards: dict[tuple[str, str], Guard] = {}
        self.rivals = Rivals()  # run before the next claim of a guard
        # While lagging, an eventually consistent read of a source finds it as it was before
        # its last change (a replica DynamoDB has not brought up to date yet).
        self.lagging = False
        self._earlier: dict[str, Source] = {}
        self.deleted_sources: set[str] = set()
        self.page = 25  # what purge_source deletes between looks at the deadline

    def add_source(self, source: Source) -> Source:
        if source.id in self.sources:
            raise storage.AlreadyExists(source.id)
        self.sources[source.id] = stored = replace(source, version=1)
        return stored

    def get_source(self, source_id: str, *, consistent: bool = False) -> Source | None:
        if self.lagging and not consistent and source_id in self._earlier:
            return self._earlier[source_id]
        return self.sources.get(source_id)

    def list_sources(self, limit: int, start: Key | None) -> tuple[list[Source], Key | None]:
        return page(sorted(self.sources.values(), key=lambda s: s.id), limit, start, lambda s: s.id)

    def update_secrets(self, before: Source, after: Source) -> Source:
        stored = self.sources.get(before.id)
        if stored is None or stored.version != before.version:
            raise storage.VersionConflict(before.id)
        self._earlier[before.id] = stored
        self.sources[before.id] = updated = replace(after, version=before.version + 1)
        return updated

    def delete_source(self, source: Source, at: datetime) -> None:
        stored = self.sources.get(source.id)
        if stored is None or stored.version != source.version:
            raise storage.VersionConflict(source.id)
        del self.sources[source.id]
        self.deleted_sources.add(source.id)

    def deleted(self, source_id: str) -> bool:
        return source_id in self.deleted_sources

    def add_delivery(self, delivery: Delivery) -> Delivery:
        key = (delivery.source_id, delivery.id)
        if key in self.deliveries_:
            raise storage.AlreadyExists(delivery.id)
        self.deliveries_[key] = delivery
        return delivery

    def get_delivery(self, source_id: str, webhook_id: str, *, consistent: bool = True) -> Delivery | None:
        return self.deliveries_.get((source_id, webhook_id))

    def deliveries(
        self, source_id: str, status: str | None, limit: int, start: Key | None
    ) -> tuple[list[Delivery], Key | None]:
        rows = sorted(
            (
                d
                for (sid, _), d in self.deliveries_.items()
                if sid == source_id and status in (None, d.status)
            ),
            key=lambda d: (d.received_at, d.id),
            reverse=True,
        )
        return page(rows, limit, start, lambda d: d.id)

    def finish(self, delivery: Delivery) -> bool:
        key = (delivery.source_id, delivery.id)
        stored = self.deliveries_.get(key)
        if stored is None or stored.status != RECEIVED:
            return False
        self.deliveries_[key] = replace(delivery, payload=None)
        return True

    def guard(self, source_id: str, key: str) -> Guard | None:
        return self.guards.get((source_id, key))

    def claim(self, guard: Guard) -> None:
        self.rivals.run()
        if (guard.source_id, guard.key) in self.guards:
            raise storage.AlreadyExists(guard.key)
        self.guards[(guard.source_id, guard.key)] = guard

    def purge_source(self, source_id: str, deadline: Deadline | None = None) -> tuple[int, bool]:
        removed = 0
        for key in [k for k in [*self.deliveries_, *self.guards] if k[0] == source_id]:
            self.deliveries_.pop(key, None)
            self.guards.pop(key, None)
            removed += 1
            if deadline is not None and removed % self.page == 0 and deadline.remaining() <= 0:
                return removed, False
        self.deleted_sources.discard(source_id)
        return removed, True

    def forget(self, customer_id: str) -> int:
        named = [
            key for key, d in self.deliveries_.items() if customer_id in (d.customer_id, d.named_customer_id)
        ]
        for key in named:
            d = self.deliveries_[key]
            self.deliveries_[key] = replace(
                d, payload=None, customer_id=None, interaction_id=None, error=None, named_customer_id=None
            )
        guards = [key for key, g in self.guards.items() if g.customer_id == customer_id]
        for key in guards:
            del self.guards[key]
        return len(named) + len(guards)
