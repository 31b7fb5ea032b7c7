"""Segment use cases of staff: define, change and delete segments, and list their members.
Membership itself is kept by the consumers (services/segment_membership.py), never computed
here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from chalicelib.domain import ids, storage
from chalicelib.domain.clock import Clock
from chalicelib.domain.customers import Customer
from chalicelib.domain.segments import BUILDING, SEGMENT, Rules, Segment
from chalicelib.errors import NotFound, PreconditionFailed
from chalicelib.services.ports import Customers, MembershipStore, SegmentStore
from chalicelib.services.versions import update_at_version
from chalicelib.store.pagination import CursorCodec, Page, page_of


@dataclass(frozen=True)
class MemberView:
    customer: Customer
    joined_at: datetime


class SegmentService:
    def __init__(
        self,
        segments: SegmentStore,
        members: MembershipStore,
        customers: Customers,
        clock: Clock,
        cursors: CursorCodec | None = None,
    ) -> None:
        self._segments = segments
        self._members = members
        self._customers = customers
        self._clock = clock
        self._cursors = cursors

    def create(self, name: str, description: str | None, rules: Rules) -> Segment:
        """A new segment, `building` until its backfill has evaluated every customer (started
        by the customers stream: services/segment_membership.py)."""
        now = self._clock.now()
        segment = Segment(ids.new_id(SEGMENT, now), name, description, rules, BUILDING, 1, now, now)
        return self._segments.add(segment)

    def get(self, segment_id: str, *, consistent: bool = False, counted: bool = True) -> Segment:
        segment = self._segments.get(segment_id, consistent=consistent, counted=counted)
        if segment is None:
            raise NotFound(f"No segment has the id {segment_id!r}.")
        return segment

    def list(self, limit: int, cursor: str | None) -> Page[Segment]:
        return page_of(self._cursors, "segments", cursor, lambda start: self._segments.list(limit, start))

    def update(self, segment_id: str, changes: Mapping, if_match: int | None) -> Segment:
        """Change the name, description or rules (new rules: a new backfill, `building`)."""

        def write(before: Segment) -> Segment:
            after = before.with_changes(changes, self._clock.now())
            if (after.name, after.description, after.rules) == (
                before.name,
                before.description,
                before.rules,
            ):
                return before
            return self._segments.update(before, after)

        return update_at_version("segment", lambda: self.get(segment_id, consistent=True), write, if_match)

    def delete(self, segment_id: str, if_match: int | None) -> None:
        """Delete the definition; its members leave it from the customers stream."""
        segment = self.get(segment_id, consistent=True, counted=False)
        if if_match is not None and segment.version != if_match:
            raise PreconditionFailed(
                f"The segment is at version {segment.version}, not {if_match}: re-read it and retry."
            )
        try:
            self._segments.delete(segment)
        except storage.VersionConflict:
            raise PreconditionFailed(
                "The segment was changed by another request: re-read it and retry."
            ) from None

    def members(self, segment_id: str, limit: int, cursor: str | None) -> Page[MemberView]:
        """A page of members: one Query of the segment's index (one more at each shard's end the
        page reaches) and one BatchGetItem of their profiles."""
        self.get(segment_id, counted=False)
        page = page_of(
            self._cursors,
            f"segments/{segment_id}/members",
            cursor,
            lambda start: self._members.members(segment_id, limit, start),
        )
        profiles = self._customers.get_many([m.customer_id for m in page.items]) if page.items else {}
        views = [
            MemberView(profiles[m.customer_id], m.joined_at) for m in page.items if m.customer_id in profiles
        ]
        return Page(views, page.next_cursor)
