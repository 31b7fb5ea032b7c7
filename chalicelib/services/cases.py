"""Complaint case use cases: open a case from a complaint, acknowledge it to the customer,
let staff move it through its status flow, and escalate missed deadlines."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

from chalicelib.domain import audit, ids, storage
from chalicelib.domain import cases as rules
from chalicelib.domain.audit import SYSTEM, Actor, AuditEntry
from chalicelib.domain.cases import Case, ClosedCase, HistoryEntry, MisfitFields, TransitionError
from chalicelib.domain.clock import Clock
from chalicelib.domain.interactions import Interaction
from chalicelib.domain.messages import acknowledgement
from chalicelib.domain.storage import MailRefused, VersionConflict
from chalicelib.errors import Conflict, FieldError, NotFound, ValidationFailed
from chalicelib.services.ports import Cases, Mailer, ProfileReader, WorkQueue
from chalicelib.services.versions import retry_lost_races, update_at_version
from chalicelib.store.pagination import CursorCodec, Page, page_of

MAX_ATTEMPTS = 3
log = logging.getLogger(__name__)
NO_EMAIL = "no_email_address"
CUSTOMER_GONE = "customer_deleted"
ACKNOWLEDGED_BY_EMAIL = "acknowledged_by_email"


AUDITED_FIELDS = (
    "status",
    "assignee",
    "resolution",
    "satisfaction",
    "escalation_level",
    "contact_status",
    "closed_reason",
)


def _audit(
    before: Case | None, after: Case, actor: Actor, at: datetime, action: str = "update"
) -> AuditEntry:
    fields = (lambda c: {f: getattr(c, f) for f in AUDITED_FIELDS}) if after else None
    changes = audit.diff(fields(before) if before else None, fields(after), AUDITED_FIELDS)
    added = after.history_count - (before.history_count if before else 0)
    new_entries = after.history[len(after.history) - added :] if added else ()
    notes = tuple(audit.Change("note", None, h.note) for h in new_entries if h.note)
    return audit.entry("case", after.id, action, actor, at, changes + notes, after.customer_id)


class CaseService:
    def __init__(
        self,
        cases: Cases,
        customers: ProfileReader,
        clock: Clock,
        sla: Mapping[str, tuple[timedelta, timedelta]],
        mailer: Callable[[], Mailer],
        follow_ups: Callable[[], WorkQueue],
        cursors: CursorCodec | None = None,
        new_interaction_id: Callable[[datetime], str] = lambda at: ids.new_id(ids.INTERACTION, at),
    ) -> None:
        self._cases = cases
        self._customers = customers
        self._clock = clock
        self._sla = sla
        self._mailer = mailer
        self._follow_ups = follow_ups
        self._cursors = cursors
        self._new_interaction_id = new_interaction_id

    # -- from the interactions stream ------------------------------------------------------

    def open_for_complaint(self, complaint: Interaction) -> Case | None:
        """Open the complaint's case (once: the case id derives from the complaint's id) and
        ask for its follow-up, unless the case is past needing one."""
        case = rules.open_case(
            customer_id=complaint.customer_id,
            interaction_id=complaint.id,
            subject=complaint.subject or "",
            severity=complaint.severity or "medium",
            # When the complaint reached us, not when this consumer got to it; an imported
            # complaint reached us when it was made (in the system it comes from).
            opened_at=complaint.occurred_at if complaint.import_id else complaint.created_at,
            sla=self._sla,
        )
        if complaint.import_id:
            case = rules.opened_from_import(case, self._clock.now())
        outcome = self._cases.create(case, _audit(None, case, SYSTEM, case.opened_at, "create"))
        if outcome == "no_customer":
            # Deleted or erased before this complaint was read: there is nobody to follow up.
            return None
        if outcome == "exists":
            case = self._cases.get(case.id) or case
        if case.contact_status is None:
            self._follow_ups().send({"type": "case.follow_up", "case_id": case.id})
        return case

    # -- the follow-up consumer ----------------------------------------------------------------

    def acknowledge(self, case_id: str) -> Case:
        """Send the customer the acknowledgement of their case, record it on their timeline and
        move the case to acknowledged. Idempotent: only the delivery that claims the case sends
        the email (at most once); a later delivery finishes the recording without sending."""

        def attempt() -> Case:
            case = self._cases.get(case_id)
            if case is None:
                raise storage.NotFound(case_id)
            if case.contact_status is not None:
                return case
            if case.ack_interaction_id is None:
                case = self._claim_and_send(case)
                if case.contact_status is not None:
                    return case
            return self._record_acknowledgement(case)

        return retry_lost_races(attempt, VersionConflict(case_id), attempts=MAX_ATTEMPTS)

    def _claim_and_send(self, case: Case) -> Case:
        now = self._clock.now()
        # Strongly consistent: a missing profile closes the case for good.
        customer = self._customers.get(case.customer_id, consistent=True)
        if customer is None:
            # Deleted (a case opens only while its customer exists): the customers stream closes
            # the deleted customer's cases too; whichever comes first does it.
            return self._close_for_deleted_customer(case, now)
        if not customer.email:
            note = "No acknowledgement sent: the customer has no email address."
            return self._cases.update(
                case, rules.add_note(replace(case, contact_status=NO_EMAIL), note, by="system", at=now)
            )
        hours = case.first_response_due - case.opened_at
        message = acknowledgement(
            customer.locale,
            name=customer.name,
            preferred_name=customer.preferred_name,
            case_ref=case.id,
            complaint_subject=case.subject,
            first_response=hours,
        )
        claimed = replace(
            case,
            ack_interaction_id=self._new_interaction_id(now),
            ack_subject=message.subject,
            ack_text=message.text,
            ack_claimed_at=now,
        )
        claimed = self._cases.update(case, claimed)
        try:
            self._mailer().send(customer.email, message.subject, message.text)
        except MailRefused as refused:
            # SES did not take it: give the claim back, so the redelivery sends it (and the
            # timeline never says "Acknowledgement emailed." for a message that was not). An
            # ambiguous failure (a read timeout: SES may have it) keeps the claim: never twice.
            self._give_back(claimed)
            raise refused
        return claimed

    def _give_back(self, claimed: Case) -> None:
        """Remove our claim, re-reading when another change to the case came between."""
        read: list[Case | None] = [claimed]  # as written; after a lost race, as read again

        def attempt() -> None:
            case = read.pop() if read else self._cases.get(claimed.id, consistent=True)
            if case is None or case.ack_interaction_id != claimed.ack_interaction_id:
                return  # not ours any more
            unclaimed = replace(
                case, ack_interaction_id=None, ack_subject=None, ack_text=None, ack_claimed_at=None
            )
            self._cases.update(case, unclaimed)

        def still_claimed() -> None:
            # The error goes up with the claim kept, and a redelivery records the message as
            # sent. Logged, so the one unsent acknowledgement can be found.
            log.error("the acknowledgement of %s was refused by SES and stays claimed", claimed.id)

        retry_lost_races(attempt, still_claimed, attempts=MAX_ATTEMPTS)

    def _record_acknowledgement(self, case: Case) -> Case:
        now = self._clock.now()
        sent_at = case.ack_claimed_at or now
        entry = Interaction(
            id=case.ack_interaction_id or self._new_interaction_id(sent_at),
            customer_id=case.customer_id,
            type="message",
            channel="email",
            direction="outbound",
            occurred_at=sent_at,
            created_at=now,
            subject=case.ack_subject,
            text=case.ack_text,
            case_id=case.id,
        )
        after = replace(case, contact_status=ACKNOWLEDGED_BY_EMAIL)
        if after.status == "open":
            after = rules.transition(
                after, "acknowledged", by="system", at=sent_at, note="Acknowledgement emailed."
            )
        else:
            after = rules.add_note(after, "Acknowledgement emailed.", by="system", at=sent_at)
        return self._cases.update(case, after, timeline_entry=entry, audit=_audit(case, after, SYSTEM, now))

    # -- staff -------------------------------------------------------------------------------

    def get(self, case_id: str, *, consistent: bool = False) -> Case:
        case = self._cases.get(case_id, consistent=consistent)
        if case is None:
            raise NotFound(f"No case has the id {case_id!r}.")
        return case

    def change(self, case_id: str, changes: dict, if_match: int | None, actor: Actor) -> Case:
        """Assign, move along the status flow and/or add a note, in one write (409 once the
        case is closed)."""

        def write(before: Case) -> Case:
            try:
                rules.check_changeable(before)
            except ClosedCase as closed:
                raise Conflict(
                    str(closed),
                    errors=[FieldError(name, "cannot be changed: the case is closed") for name in changes],
                ) from None
            after = self._apply(before, changes, actor.subject)
            return self._cases.update(before, after, audit=_audit(before, after, actor, self._clock.now()))

        return update_at_version("case", lambda: self.get(case_id, consistent=True), write, if_match)

    def _apply(self, case: Case, changes: dict, by: str) -> Case:
        now = self._clock.now()
        if "assignee" in changes and changes["assignee"] != case.assignee:
            case = rules.assign(case, changes["assignee"], by=by, at=now)
        status = changes.get("status")
        if status is not None and status != case.status:
            try:
                case = rules.transition(
                    case,
                    status,
                    by=by,
                    at=now,
                    note=changes.get("note"),
                    resolution=changes.get("resolution"),
                    satisfaction=changes.get("satisfaction"),
                )
            except MisfitFields as misfits:
                raise ValidationFailed(
                    [FieldError(field, problem) for field, problem in misfits.problems]
                ) from None
            except TransitionError as error:
                raise Conflict(
                    str(error),
                    errors=[FieldError("status", f"allowed from {error.current}: {list(error.allowed)}")],
                ) from None
        elif changes.get("note"):
            case = rules.add_note(case, changes["note"], by=by, at=now)
        return case

    def history(self, case_id: str, limit: int, cursor: str | None) -> Page[HistoryEntry]:
        """The case's whole history, newest first, a page at a time."""
        self.get(case_id)
        return page_of(
            self._cursors,
            f"cases/{case_id}/history",
            cursor,
            lambda start: self._cases.history(case_id, limit, start),
        )

    def with_whole_history(self, case: Case) -> Case:
        """The case with every entry of its history (an export)."""
        entries = self._cases.whole_history(case.id)
        return replace(case, history=entries, history_count=len(entries))

    def list(self, *, status, severity, assignee, due_before, limit: int, cursor: str | None) -> Page[Case]:
        scope = f"cases?status={status}&severity={severity}&assignee={assignee}&due_before={due_before}"
        return page_of(
            self._cursors,
            scope,
            cursor,
            lambda start: self._cases.list(
                status=status,
                severity=severity,
                assignee=assignee,
                due_before=due_before,
                limit=limit,
                start=start,
            ),
        )

    def of_customer(self, customer_id: str, limit: int, cursor: str | None) -> Page[Case]:
        if self._customers.get(customer_id) is None:
            raise NotFound(f"No customer has the id {customer_id!r}.")
        scope = f"cases:{customer_id}"
        return page_of(
            self._cursors, scope, cursor, lambda start: self._cases.of_customer(customer_id, limit, start)
        )

    # -- from the customers stream --------------------------------------------------------------

    def close_cases_of_deleted_customer(self, customer_id: str) -> int:
        """Close every case of a deleted customer that is not closed yet, each once: a case
        changed meanwhile is read again, one closed meanwhile is left alone. Returns how many
        this call closed (0 when the record is delivered again)."""
        closed = 0
        start = None
        while True:
            page, start = self._cases.of_customer(customer_id, 100, start)
            for listed in page:
                if listed.status != "closed" and self._close_with_retries(listed.id):
                    closed += 1
            if start is None:
                return closed

    def _close_with_retries(self, case_id: str) -> bool:
        def attempt() -> bool:
            case = self._cases.get(case_id, consistent=True)
            if case is None or case.status == "closed":
                return False  # erased meanwhile, or closed by someone else
            self._close_for_deleted_customer(case, self._clock.now())
            return True

        return retry_lost_races(attempt, VersionConflict(case_id), attempts=MAX_ATTEMPTS)

    def _close_for_deleted_customer(self, case: Case, now: datetime) -> Case:
        after = rules.close_for_deleted_customer(case, at=now, contact_status=CUSTOMER_GONE)
        if after is None:
            return case
        return self._cases.update(case, after, audit=_audit(case, after, SYSTEM, now))

    # -- the escalation sweep ------------------------------------------------------------------

    def escalate_overdue(self) -> int:
        """Escalate every active case past its next deadline, once per missed deadline."""
        now = self._clock.now()

        def escalate(case_id: str) -> bool:
            case = self._cases.get(case_id)
            after = rules.escalate(case, now) if case else None
            if after is None:
                return False
            self._cases.update(case, after, audit=_audit(case, after, SYSTEM, now))
            return True

        escalated = 0
        for case_id in list(self._cases.overdue(now)):
            escalated += retry_lost_races(partial(escalate, case_id), lambda: False, attempts=MAX_ATTEMPTS)
        return escalated
