"""A campaign run, from the campaigns queue (events/campaigns.py), in three kinds of message:

- `start`: the run's INSERT on the campaigns stream queued it. The run becomes `running` at
  its snapshot moment, and one walk message per member shard of the segment goes out.
- `walk`: one page of one member shard. It queues its customers for delivery (in batches of
  DELIVER_BATCH) and the next page, then counts the page's customers as targeted, once (a
  guard per page). Members who joined after the snapshot moment are not in the run.
- `deliver`: decides and sends for a batch of customers. Each decision is written once per
  (run, customer), conditional on there being none, with its count in the same transaction:
  a redelivered message, a retried batch or a second worker sends nothing twice and counts
  nothing twice. A send is claimed first (`sending`, counted in the customer's send log
  against the frequency cap), then handed to SES, then confirmed (`sent`, counted, on the
  timeline). SES's refusal gives the claim back and the message is received again later; on
  its last receive the customer is recorded `failed` and the message goes on to the
  dead-letter queue. A claim left by a worker that stopped between SES and the confirmation
  is never sent again: once it is older than STALE_CLAIM it is recorded `failed` (reason
  `unconfirmed`).

The run is `completed` once every shard has been walked to its end and every customer it
queued has a decision; the last walk page and every delivery check that (one read of the
run's eight counters).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import timedelta

from chalicelib.domain import ids, storage
from chalicelib.domain.campaign_runs import (
    RUN_SHARDS,
    SENDING,
    Counts,
    Decision,
    PagePlan,
    Run,
    complete,
    total,
)
from chalicelib.domain.campaigns import FAILED, RUNNING, SENT, SKIPPED, Campaign, SendLog
from chalicelib.domain.clock import Clock, to_stored_precision
from chalicelib.domain.customers import Customer
from chalicelib.domain.interactions import Interaction
from chalicelib.domain.storage import MailRefused
from chalicelib.errors import ServiceBusy
from chalicelib.services.campaign_messages import Composed, Composer
from chalicelib.services.campaign_ports import CampaignSends, CampaignStore, MarketingMailer, MemberPages
from chalicelib.services.ports import Customers, WorkQueue
from chalicelib.store.pagination import Key

WALK_PAGE = 250  # members a walk message reads
DELIVER_BATCH = 10  # customers a delivery message decides for
STALE_CLAIM = timedelta(minutes=15)  # longer than a delivery invocation can run (120 s)
CLAIM_ATTEMPTS = 3
CONFIRM_ATTEMPTS = 5
CONFIRM_BACKOFF_S = 0.2


class DeliveryIncomplete(Exception):
    """Some customers of the batch could not be decided now (SES refused, a claim still being
    sent): the message is received again, and only they are tried again."""


class DeliveryGivenUp(Exception):
    """On the message's last receive, some customers of the batch could still not be decided:
    they are recorded `failed`, and the message goes on to the dead-letter queue (its alarm)."""


class CampaignRunService:
    def __init__(
        self,
        campaigns: CampaignStore,
        sends: CampaignSends,
        members: MemberPages,
        customers: Customers,
        composer: Composer,
        mailer: Callable[[], MarketingMailer],
        queue: Callable[[], WorkQueue],
        clock: Clock,
    ) -> None:
        self._campaigns = campaigns
        self._sends = sends
        self._members = members
        self._customers = customers
        self._composer = composer
        self._mailer = mailer
        self._queue = queue
        self._clock = clock

    def queued(self, campaign_id: str, run_id: str) -> None:
        """A new run (from the campaigns stream): put its start on the queue."""
        self._queue().send({"type": "start", "campaign_id": campaign_id, "run_id": run_id})

    def start(self, campaign_id: str, run_id: str) -> str:
        run = self._campaigns.get_run(campaign_id, run_id, consistent=True)
        if run is None or run.completed:
            return "gone" if run is None else "completed before"
        # The run sends the campaign as it is now: later changes are for later runs.
        campaign = self._campaigns.get(campaign_id, consistent=True)
        if campaign is not None:
            self._campaigns.snapshot(campaign, run.id)
        run = self._campaigns.mark_running(run, self._clock.now())
        if self._campaigns.snapshot_of(campaign_id, run.id) is None:  # deleted before it started
            self._campaigns.mark_completed(run, Counts(), self._clock.now())
            return "campaign gone"
        # Also when it was running before: the delivery that marked it may have stopped here.
        # A page planned before is not read again (its plan).
        self._queue().send_many([self._walk_message(run, shard, 0, None) for shard in range(RUN_SHARDS)])
        return "started"

    @staticmethod
    def _walk_message(run: Run, shard: int, page: int, start: Key | None) -> dict:
        return {
            "type": "walk",
            "campaign_id": run.campaign_id,
            "run_id": run.id,
            "shard": shard,
            "page": page,
            "start": start,
        }

    def walk(self, campaign_id: str, run_id: str, shard: int, page: int, start: Key | None) -> str:
        """One page of a member shard. Its plan (the customers it targets, where the next page
        starts) is written once, with its count, before anything is queued from it; a
        redelivery queues from that plan, so every delivery of a page, and every later page,
        names the same customers, and a page is never counted twice or not at all."""
        run = self._campaigns.get_run(campaign_id, run_id, consistent=True)
        if run is None or run.status != RUNNING or run.started_at is None:
            return "not running"
        plan = self._sends.page_plan(run_id, shard, page)
        if plan is None:
            members, next_key = self._members.members_page(run.segment_id, shard, WALK_PAGE, start)
            targeted = tuple(m.customer_id for m in members if m.joined_at <= run.started_at)
            if not self._sends.plan_page(
                run_id, shard, page, PagePlan(targeted, next_key), self._clock.now()
            ):
                plan = self._sends.page_plan(run_id, shard, page)  # another delivery planned it first
            else:
                plan = PagePlan(targeted, next_key)
        if plan is None:
            raise RuntimeError(f"page {page} of shard {shard} of {run_id} has no plan")
        if not plan.queued:
            ids = plan.customer_ids
            messages = [
                {
                    "type": "deliver",
                    "campaign_id": campaign_id,
                    "run_id": run_id,
                    "customer_ids": list(ids[i : i + DELIVER_BATCH]),
                }
                for i in range(0, len(ids), DELIVER_BATCH)
            ]
            if plan.next_key is not None:
                messages.append(self._walk_message(run, shard, page + 1, plan.next_key))
            if messages:
                self._queue().send_many(messages)
            self._sends.page_queued(run_id, shard, page)
        if plan.next_key is None:
            self._complete_if_done(run)
        return "walked" if not plan.queued else "walked before"

    def deliver(
        self, campaign_id: str, run_id: str, customer_ids: Sequence[str], *, last_receive: bool
    ) -> str:
        """Decide for each customer of the batch not decided before. DeliveryIncomplete if some
        could not be decided now (unless this is the message's last receive: then they are
        recorded `failed`, and DeliveryGivenUp sends the message on to the dead-letter queue)."""
        run = self._campaigns.get_run(campaign_id, run_id, consistent=True)
        if run is None or run.status != RUNNING:
            return "not running"
        campaign = self._campaigns.snapshot_of(campaign_id, run_id)
        decided = self._sends.decisions(run_id, customer_ids)
        undecided = [c for c in dict.fromkeys(customer_ids) if c not in decided or not decided[c].final]
        profiles = self._customers.get_many(undecided, consistent=True) if undecided else {}
        # The cap matters only to those no earlier reason skips: their logs in one request.
        sendable = [c for c, p in profiles.items() if p.marketing_consent and p.email and c not in decided]
        logs = self._sends.send_logs(sendable) if sendable else {}
        pending, given_up = [], []
        for customer_id in undecided:
            claim = decided.get(customer_id)
            try:
                if claim is not None:  # a claim: `sending`
                    self._resolve_claim(run_id, claim, last_receive)
                else:
                    read = logs.get(customer_id, SendLog())
                    self._decide(run, campaign, customer_id, profiles.get(customer_id), read)
            except (MailRefused, _ClaimInFlight, storage.VersionConflict) as error:
                if last_receive:
                    reason = next(r for kind, r in _FAILURE_REASONS.items() if isinstance(error, kind))
                    failed = Decision(customer_id, FAILED, self._clock.now(), reason=reason)
                    if self._sends.record(run_id, failed):
                        given_up.append(customer_id)
                else:
                    pending.append(customer_id)
        self._complete_if_done(run)
        if pending:
            raise DeliveryIncomplete(f"{len(pending)} of {len(customer_ids)} customers are to be tried again")
        if given_up:
            raise DeliveryGivenUp(f"{len(given_up)} of {len(customer_ids)} customers were recorded failed")
        return "delivered"

    def fail_undecided(self, campaign_id: str, run_id: str, customer_ids: Sequence[str], reason: str) -> int:
        """The last receive of a delivery that kept failing: its customers not decided yet are
        recorded `failed`, so the run can complete (the message goes to the dead-letter queue)."""
        now = self._clock.now()
        decided = self._sends.decisions(run_id, customer_ids)
        failed = sum(
            self._sends.record(run_id, Decision(customer_id, FAILED, now, reason=reason))
            for customer_id in dict.fromkeys(customer_ids)
            if customer_id not in decided or not decided[customer_id].final
        )
        run = self._campaigns.get_run(campaign_id, run_id, consistent=True)
        if run is not None and run.status == RUNNING:
            self._complete_if_done(run)
        return failed

    def _decide(
        self,
        run: Run,
        campaign: Campaign | None,
        customer_id: str,
        customer: Customer | None,
        log: SendLog,
    ) -> None:
        """`log`: the customer's send log as the batch read it (read again after a lost race)."""
        now = to_stored_precision(self._clock.now())  # as the send log keeps it: give_back finds it
        if campaign is None:  # deleted while the run went on (it was paused first)
            self._sends.record(run.id, Decision(customer_id, FAILED, now, reason="campaign_deleted"))
            return
        for attempt in range(CLAIM_ATTEMPTS):
            if attempt:
                log = self._sends.send_log(customer_id)
            composed = self._composer.compose(campaign, customer, log, now)
            if composed.skip_reason is not None:
                locale = composed.locale or (customer.locale if customer is not None else None)
                self._sends.record(run.id, Decision(customer_id, SKIPPED, now, composed.skip_reason, locale))
                return
            sku = composed.offer.sku if composed.offer else None
            claim = Decision(customer_id, SENDING, now, locale=composed.locale, sku=sku)
            try:
                self._sends.claim(run.id, claim, log, log.with_send(now))
            except storage.AlreadyExists:
                return  # another delivery of this customer decided first
            except storage.VersionConflict:
                continue  # another campaign's send changed the log: decide again
            self._send(run, campaign, customer, claim, composed)
            return
        raise storage.VersionConflict(customer_id)

    def _send(
        self, run: Run, campaign: Campaign, customer: Customer, claim: Decision, composed: Composed
    ) -> None:
        message = composed.message
        try:
            message_id = self._mailer().send_marketing(
                customer.email, message.subject, message.body, composed.unsubscribe_url
            )
        except MailRefused:
            self._give_back(run.id, claim)
            raise
        entry = Interaction(
            id=ids.new_id(ids.INTERACTION, claim.at),
            customer_id=customer.id,
            type="message",
            channel="email",
            direction="outbound",
            occurred_at=claim.at,
            created_at=self._clock.now(),
            subject=message.subject,
            text=message.body,
            campaign_id=campaign.id,
            run_id=run.id,
        )
        sent = replace(claim, outcome=SENT, message_id=message_id)
        # SES has the message: the confirmation must not be lost to busy counters.
        for attempt in range(CONFIRM_ATTEMPTS):
            try:
                self._sends.confirm(run.id, sent, entry)
                return
            except ServiceBusy:
                if attempt == CONFIRM_ATTEMPTS - 1:
                    raise
                time.sleep(CONFIRM_BACKOFF_S * 2**attempt)

    def _give_back(self, run_id: str, claim: Decision) -> None:
        for _ in range(CLAIM_ATTEMPTS):
            log = self._sends.send_log(claim.customer_id)
            without = SendLog(tuple(t for t in log.times if t != claim.at), log.version)
            try:
                self._sends.give_back(run_id, claim, log, without)
                return
            except storage.VersionConflict:
                continue
        # The claim stays: the redelivery records it as unconfirmed once it is stale, and
        # the customer gets no message twice.

    def _resolve_claim(self, run_id: str, claim: Decision, last_receive: bool) -> None:
        if not last_receive and self._clock.now() - claim.at < STALE_CLAIM:
            raise _ClaimInFlight(claim.customer_id)
        failed = Decision(
            claim.customer_id, FAILED, self._clock.now(), reason="unconfirmed", locale=claim.locale
        )
        self._sends.record(run_id, failed)

    def _complete_if_done(self, run: Run) -> bool:
        shards = self._sends.counts(run.id)
        if not complete(shards):
            return False
        return self._campaigns.mark_completed(run, total(shards.values()), self._clock.now())


class _ClaimInFlight(Exception):
    """Another worker claimed the send moments ago and may still be sending it."""


# Why a customer the last receive could not decide is recorded failed.
_FAILURE_REASONS = {
    MailRefused: "mail_refused",
    _ClaimInFlight: "unconfirmed",  # a claim whose send may have gone: never sent again
    storage.VersionConflict: "send_log_busy",  # other sends to them kept changing the cap's log
}
