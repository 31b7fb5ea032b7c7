"""Segment definitions, counters, backfill progress and memberships, as store/segments.py
keeps them: every membership write conditional on the customer's evaluation count."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

from chalicelib.domain import storage
from chalicelib.domain.segments import MEMBER_SHARDS, Change, Member, Memberships, Progress, Segment, shard_of
from tests.unit.fakes.base import Key, Rivals, page
from tests.unit.fakes.customers import FakeCustomers


class FakeSegments:
    def __init__(self, customers: FakeCustomers) -> None:
        self.customers = customers
        self.definitions: dict[str, Segment] = {}
        self.counts: dict[str, int] = {}
        self.builds: dict[str, dict] = {}
        self.pages_done: set[tuple[str, int, int]] = set()
        self.joined: dict[str, dict[str, datetime]] = {}  # customer -> segment -> joined at
        self.evaluations: dict[str, int] = {}
        self.review_at: dict[str, datetime] = {}
        self.rivals = Rivals()
        self.writes = 0

    def _view(self, segment: Segment) -> Segment:
        return replace(segment, member_count=self.counts.get(segment.id, 0))

    def add(self, segment: Segment) -> Segment:
        if segment.id in self.definitions:
            raise storage.AlreadyExists(segment.id)
        self.definitions[segment.id] = segment
        self.builds[segment.id] = {"build": segment.build, "done": 0, "total": None, "at": segment.updated_at}
        return self._view(segment)

    def get(self, segment_id: str, *, consistent: bool = False, counted: bool = True) -> Segment | None:
        segment = self.definitions.get(segment_id)
        return (self._view(segment) if counted else segment) if segment else None

    def update(self, before: Segment, after: Segment) -> Segment:
        stored = self.definitions.get(before.id)
        if stored is None or stored.version != before.version or stored.build != before.build:
            raise storage.VersionConflict(before.id)
        status = after.status if after.build != before.build else stored.status
        self.definitions[after.id] = replace(after, status=status, version=before.version + 1)
        if after.build != before.build:
            self.builds[after.id] = {"build": after.build, "done": 0, "total": None, "at": after.updated_at}
        return self._view(self.definitions[after.id])

    def delete(self, segment: Segment) -> None:
        stored = self.definitions.get(segment.id)
        if stored is None or stored.version != segment.version:
            raise storage.VersionConflict(segment.id)
        del self.definitions[segment.id]

    def list(self, limit: int, start: Key | None) -> tuple[list[Segment], Key | None]:
        rows = [self._view(s) for _, s in sorted(self.definitions.items())]
        return page(rows, limit, start, lambda s: s.id)

    def all(self) -> list[Segment]:
        return [s for _, s in sorted(self.definitions.items())]

    def customers_page(self, limit: int, start: Key | None) -> tuple[list[str], Key | None]:
        return page(sorted(self.customers.profiles), limit, start, lambda cid: cid)

    def page_done(self, segment_id: str, build: int, page_no: int) -> bool:
        return (segment_id, build, page_no) in self.pages_done

    def walk_ended(self, segment_id: str, build: int, pages: int) -> None:
        if self.builds[segment_id]["build"] == build:
            self.builds[segment_id]["total"] = pages

    def mark_page_done(self, segment_id: str, build: int, page_no: int, now: datetime) -> None:
        if (segment_id, build, page_no) in self.pages_done:
            raise storage.AlreadyExists(str(page_no))
        progress = self.builds.get(segment_id)
        if progress is None or progress["build"] != build:
            raise storage.ConditionFailed(segment_id)
        self.pages_done.add((segment_id, build, page_no))
        progress["done"] += 1
        progress["at"] = now

    def progress(self, segment_id: str) -> Progress | None:
        p = self.builds.get(segment_id)
        return Progress(p["build"], p["done"], p["total"], p["at"]) if p else None

    def mark_ready(self, segment_id: str, build: int) -> bool:
        segment = self.definitions.get(segment_id)
        if segment is None or segment.build != build or segment.status != "building":
            return False
        self.definitions[segment_id] = replace(segment, status="ready")
        return True

    def remove_segment_items(self, segment_id: str) -> int:
        self.builds.pop(segment_id, None)
        return int(self.counts.pop(segment_id, 0) is not None)

    def memberships(self, customer_id: str) -> Memberships:
        return Memberships(
            self.evaluations.get(customer_id),
            dict(self.joined.get(customer_id, {})),
            self.review_at.get(customer_id),
        )

    def write_memberships(
        self, customer_id: str, read: Memberships, changes: list[Change], review_at: datetime | None
    ) -> None:
        if not changes and review_at == read.review_at:
            return
        self.rivals.run()
        if self.evaluations.get(customer_id) != read.evaluations:
            raise storage.VersionConflict(customer_id)
        if any(c.joined_at for c in changes) and self.customers.get(customer_id) is None:
            raise storage.ConditionFailed(customer_id)
        for change in changes:
            stored = self.definitions.get(change.segment_id)
            if change.checked and (stored.build if stored else None) != change.build:
                raise storage.VersionConflict(customer_id, record="segments")
        current = self.joined.setdefault(customer_id, {})
        for change in changes:
            sid = change.segment_id
            if change.joined_at is not None:
                current[sid] = change.joined_at
            else:
                del current[sid]
            self.counts[sid] = self.counts.get(sid, 0) + (1 if change.joined_at is not None else -1)
        self.evaluations[customer_id] = (read.evaluations or 0) + 1
        if review_at is None:
            self.review_at.pop(customer_id, None)
        else:
            self.review_at[customer_id] = review_at
        self.writes += 1

    def members(self, segment_id: str, limit: int, start: Key | None) -> tuple[list[Member], Key | None]:
        rows = sorted(
            (Member(cid, joined[segment_id]) for cid, joined in self.joined.items() if segment_id in joined),
            key=lambda m: (shard_of(m.customer_id, MEMBER_SHARDS), m.customer_id),
        )
        return page(rows, limit, start, lambda m: m.customer_id)

    def members_page(
        self, segment_id: str, shard: int, limit: int, start: Key | None
    ) -> tuple[list[Member], Key | None]:
        rows = [
            Member(cid, joined[segment_id])
            for cid, joined in sorted(self.joined.items())
            if segment_id in joined and shard_of(cid, MEMBER_SHARDS) == shard
        ]
        return page(rows, limit, start, lambda m: m.customer_id)

    def members_of_shard(self, segment_id: str, shard: int) -> Iterator[str]:
        for cid, joined in sorted(self.joined.items()):
            if segment_id in joined and shard_of(cid, MEMBER_SHARDS) == shard:
                yield cid

    def due_for_review(self, now: datetime) -> Iterator[str]:
        yield from sorted(cid for cid, at in self.review_at.items() if at <= now)
