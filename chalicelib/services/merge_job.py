"""The merge job: after a merge's start (services/merges.py: the survivor's profile updated,
the merged profile gone, its alias and both customers' markers written, the merge `running`
at step "interactions"), move everything of the merged customer to the survivor.

The customers stream puts each new merge on the jobs queue as `{"merge_id"}`
(events/customer_stream.py); `run` goes through the steps in order, each a loop of pages that
is idempotent and resumable (the merged customer's partition shrinks as items move, so
querying it from the start again resumes), and moves the merge on to the next step with a
write conditional on the step it read. Out of time, it hands itself on with a new message.
Two runs at once, or a redelivered message, end in the same state with exact counters: each
move is conditional on what it read, and the counter is ADDed in the move's transaction.

Steps:
1. interactions: the merged customer's timeline, 25 a transaction (survivor's copy with
   `merged_from`, original deleted). The interactions stream then applies the copies to the
   survivor's loyalty and habits (their own guards) and counts their SKUs for co-purchases
   like any purchase of the survivor's; the originals' REMOVEs are skipped (no profile, an
   alias); a moved complaint opens no second case.
2. cases: re-pointed to the survivor (their history, under CASE#<id>, stays as it is).
3. audit: the merged customer's entries, under the survivor with the same keys.
4. links: sign-in identities, pointers to stored responses, webhook claims and deliveries
   (a later refund finds its purchase), and ids merged into the merged customer before (their
   aliases now name the survivor: chains collapse).
5. co_purchases: what the merged customer's guards counted is withdrawn
   (services/recommendations.withdraw), so the counts end as the survivor's alone would be.
6. segments: the merged customer leaves every segment; the survivor is evaluated again.
7. remains: the merged profile's lookup items the start had no room for (`stale_lookups`),
   and the rest of the merged customer's partition (loyalty aggregates, guards and habits, a
   pending change of email address, duplicate suggestions, its export jobs and documents)
   are deleted; "not the same person as X" moves to the survivor. The alias stays.
8. sweep: interactions and cases again (a write committed just before the start).
9. complete: the merge `completed`, both markers deleted, in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from chalicelib.domain.clock import Clock, Deadline, OutOfTime
from chalicelib.domain.jobs import EXPORT
from chalicelib.domain.merges import RUNNING, Merge
from chalicelib.domain.storage import VersionConflict
from chalicelib.services.merge_ports import MergeMoving
from chalicelib.services.ports import Documents, JobRemains, WorkQueue
from chalicelib.store.keys import (
    ALIAS_PREFIX,
    ALIAS_SK,
    AUDIT_PREFIX,
    BOUGHT_PREFIX,
    IDEMPOTENCY_PREFIX,
    IDENTITY_PREFIX,
    MERGE_RUNNING_SK,
    NOT_DUPLICATE_PREFIX,
    PAIRED_PREFIX,
    PROFILE_SK,
    TOMBSTONE_SK,
)
from chalicelib.store.transactions import BATCH_WRITE_ITEMS

STEPS = (
    "interactions",
    "cases",
    "audit",
    "links",
    "co_purchases",
    "segments",
    "remains",
    "sweep",
    "complete",
)
# A page lost to another run is queried again; so many losses in a row is no race but a bug.
MAX_LOST = 20
# Kept under the merged id until the merge completes (or is erased): the alias, the marker.
# Co-purchase guards are the co_purchases step's to withdraw, never deleted unwithdrawn; the
# profile and a tombstone would not be the merged customer's (it has neither).
_KEPT = (ALIAS_SK, MERGE_RUNNING_SK, PROFILE_SK, TOMBSTONE_SK)
_KEPT_PREFIXES = (BOUGHT_PREFIX, PAIRED_PREFIX)
# Moved by an earlier step; found here only if written meanwhile: that step runs again.
_MOVED_PREFIXES = (AUDIT_PREFIX, IDENTITY_PREFIX, IDEMPOTENCY_PREFIX, ALIAS_PREFIX)


class MergeStuck(RuntimeError):
    """The merge is at a step this job does not know, or keeps losing every page."""


class MergeJob:
    def __init__(
        self,
        moves: MergeMoving,
        clock: Clock,
        queue: Callable[[], WorkQueue],
        withdraw_co_purchases: Callable[[str, Deadline | None], int],
        leave_segments: Callable[[str], int],
        evaluate_segments: Callable[[Iterable[str]], int],
        jobs: JobRemains,
        documents: Callable[[], Documents],
    ) -> None:
        self._moves = moves
        self._clock = clock
        self._queue = queue
        self._withdraw_co_purchases = withdraw_co_purchases
        self._leave_segments = leave_segments
        self._evaluate_segments = evaluate_segments
        self._jobs = jobs
        self._documents = documents

    def run(self, merge_id: str, deadline: Deadline) -> str:
        """Go on with the merge from its step: "completed", "skipped" (unknown, or completed
        before), or "handed on" (out of time: a new message goes on with it). Other errors are
        raised: the message is received again, and the run resumes where it stopped."""
        merge = self._moves.get(merge_id)
        if merge is None or merge.status != RUNNING:
            return "skipped"
        try:
            while merge is not None and merge.status == RUNNING:
                if merge.step not in STEPS:
                    raise MergeStuck(f"merge {merge.id} is at an unknown step {merge.step!r}")
                if merge.step == "complete":
                    self._moves.complete(merge, merge.step, self._clock.now())
                    return "completed"
                self._step(merge, deadline)
                self._moves.advance(merge.id, merge.step, STEPS[STEPS.index(merge.step) + 1])
                deadline.check()
                # Read again: another run may have gone further meanwhile.
                merge = self._moves.get(merge_id)
        except OutOfTime:
            self._queue().send({"merge_id": merge_id})
            return "handed on"
        return "completed"

    def _step(self, merge: Merge, deadline: Deadline) -> None:
        if merge.step in ("interactions", "sweep"):
            self._pages(lambda: self._moves.move_interactions(merge), deadline)
            if merge.step == "sweep":
                self._moves.move_cases(merge)
        elif merge.step == "cases":
            self._moves.move_cases(merge)
        elif merge.step == "audit":
            self._pages(lambda: self._moves.move_audit(merge), deadline)
        elif merge.step == "links":
            self._links(merge)
        elif merge.step == "co_purchases":
            self._withdraw_co_purchases(merge.merged_id, deadline)
        elif merge.step == "segments":
            # Leaving counts each membership down (as the purge of a deleted customer does);
            # the survivor's memberships follow their merged profile and loyalty.
            self._leave_segments(merge.merged_id)
            self._evaluate_segments([merge.survivor_id])
        elif merge.step == "remains":
            self._remains(merge, deadline)

    def _pages(self, move_page: Callable[[], int], deadline: Deadline) -> None:
        lost = 0
        while True:
            try:
                if move_page() == 0:
                    return
                lost = 0
            except VersionConflict:  # another run moved the page first: query again
                lost += 1
                if lost >= MAX_LOST:
                    raise MergeStuck(f"{MAX_LOST} pages in a row were lost to other writers") from None
            deadline.check()

    def _links(self, merge: Merge) -> None:
        self._moves.move_identities(merge)
        self._moves.move_idempotency_pointers(merge)
        self._moves.move_webhook_items(merge)
        self._moves.collapse_aliases(merge)

    def _remains(self, merge: Merge, deadline: Deadline) -> None:
        self._moves.delete_stale_lookups(merge.id)
        doomed: list[str] = []
        again = False
        for sk in self._moves.remains(merge.merged_id):
            if sk in _KEPT or sk.startswith(_KEPT_PREFIXES):
                continue
            if sk.startswith(_MOVED_PREFIXES):
                again = True
            elif sk.startswith(NOT_DUPLICATE_PREFIX):
                self._moves.move_not_duplicate(merge, sk)
            else:
                doomed.append(sk)
            if len(doomed) == BATCH_WRITE_ITEMS:
                self._moves.delete_items(merge.merged_id, doomed)
                doomed = []
                deadline.check()
        if doomed:
            self._moves.delete_items(merge.merged_id, doomed)
        if again:
            self._pages(lambda: self._moves.move_audit(merge), deadline)
            self._links(merge)
        # An export of the merged customer shows a customer that is no more: it goes (ask the
        # survivor for one). Jobs live in their own table, documents in the exports bucket.
        self._jobs.delete_all_of(merge.merged_id, EXPORT)
        self._documents().delete_all_of(merge.merged_id)
