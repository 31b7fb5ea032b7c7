"""Campaign definitions, their schedule state and runs, each run's shards (counters, walk guards,
decisions), the customers' send logs and marketing mail, as store/campaigns.py,
store/campaign_sends.py and store/mail.py keep and send them: every decision written once
(conditional on its absence, a failure also over a claim), a claim confirmed or given back only
while it is a claim, a send log written only at the version read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import datetime

from chalicelib.domain import storage
from chalicelib.domain.campaign_runs import SENDING, Counts, Decision, PagePlan, Run, run_shard
from chalicelib.domain.campaigns import (
    ACTIVE,
    COMPLETED,
    FAILED,
    OUTCOMES,
    QUEUED,
    RUNNING,
    SENT,
    SKIPPED,
    Campaign,
    SendLog,
)
from chalicelib.domain.interactions import Interaction
from chalicelib.domain.storage import MailRefused
from tests.unit.fakes.base import Key, Rivals, page
from tests.unit.fakes.records import FakeInteractions


class FakeCampaigns:
    def __init__(self) -> None:
        self.campaigns: dict[str, Campaign] = {}
        self.runs_by_key: dict[tuple[str, str], Run] = {}
        self.snapshots: dict[tuple[str, str], Campaign] = {}
        self.rivals = Rivals()

    # Definitions

    def add(self, campaign: Campaign) -> Campaign:
        if campaign.id in self.campaigns:
            raise storage.AlreadyExists(campaign.id)
        self.campaigns[campaign.id] = replace(campaign, version=1)
        return self.campaigns[campaign.id]

    def get(self, campaign_id: str, *, consistent: bool = False) -> Campaign | None:
        return self.campaigns.get(campaign_id)

    def list(self, limit: int, start: Key | None) -> tuple[list[Campaign], Key | None]:
        return page([c for _, c in sorted(self.campaigns.items())], limit, start, lambda c: c.id)

    def update(self, before: Campaign, after: Campaign) -> Campaign:
        self.rivals.run()
        stored = self.campaigns.get(before.id)
        if stored is None or stored.version != before.version:
            raise storage.VersionConflict(before.id)
        self.campaigns[before.id] = replace(after, version=before.version + 1)
        return self.campaigns[before.id]

    def delete(self, campaign: Campaign) -> None:
        stored = self.campaigns.get(campaign.id)
        if stored is None or stored.version != campaign.version:
            raise storage.VersionConflict(campaign.id)
        del self.campaigns[campaign.id]

    # Schedule

    def due(self, now: datetime) -> Iterator[str]:
        due = [c for c in self.campaigns.values() if c.next_run_at is not None and c.next_run_at <= now]
        for campaign in sorted(due, key=lambda c: (c.next_run_at, c.id)):
            yield campaign.id

    def start_scheduled(
        self, campaign: Campaign, run: Run, next_run_at: datetime | None, status: str
    ) -> bool:
        """The schedule moved on and its run written, only while it is where `campaign` read it
        (no version: the definition, and so its ETag, is unchanged)."""
        self.rivals.run()
        stored = self.campaigns.get(campaign.id)
        key = (run.campaign_id, run.id)
        if stored is None or stored.next_run_at != campaign.next_run_at or stored.status != ACTIVE:
            return False
        if key in self.runs_by_key:
            return False
        self.campaigns[campaign.id] = replace(stored, status=status, next_run_at=next_run_at)
        self.runs_by_key[key] = run
        return True

    # Runs

    def add_run(self, campaign: Campaign, run: Run) -> Run:
        self.rivals.run()
        stored = self.campaigns.get(campaign.id)
        key = (run.campaign_id, run.id)
        if stored is None or stored.version != campaign.version or stored.status != ACTIVE:
            raise storage.VersionConflict(campaign.id)
        if key in self.runs_by_key:
            raise storage.VersionConflict(campaign.id)
        self.runs_by_key[key] = run
        return run

    def get_run(self, campaign_id: str, run_id: str, *, consistent: bool = False) -> Run | None:
        return self.runs_by_key.get((campaign_id, run_id))

    def runs(self, campaign_id: str, limit: int, start: Key | None) -> tuple[list[Run], Key | None]:
        rows = sorted(
            (r for (cid, _), r in self.runs_by_key.items() if cid == campaign_id), key=lambda r: r.id
        )
        return page(rows[::-1], limit, start, lambda r: r.id)

    def snapshot(self, campaign: Campaign, run_id: str) -> None:
        self.snapshots.setdefault((campaign.id, run_id), replace(campaign, next_run_at=None))

    def snapshot_of(self, campaign_id: str, run_id: str) -> Campaign | None:
        return self.snapshots.get((campaign_id, run_id))

    def mark_running(self, run: Run, at: datetime) -> Run:
        key = (run.campaign_id, run.id)
        stored = self.runs_by_key[key]
        if stored.status != QUEUED:
            return stored
        self.runs_by_key[key] = replace(stored, status=RUNNING, started_at=at)
        return self.runs_by_key[key]

    def mark_completed(self, run: Run, counts: Counts, at: datetime) -> bool:
        key = (run.campaign_id, run.id)
        stored = self.runs_by_key.get(key)
        if stored is None or stored.status != RUNNING:
            return False
        done = Counts(counts.targeted, counts.sent, counts.failed, dict(counts.skipped), counts.walked)
        self.runs_by_key[key] = replace(stored, status=COMPLETED, completed_at=at, counts=done)
        return True


class FakeCampaignSends:
    """`interactions`: the timelines a confirmed send is written to (only while the customer
    exists, as the store's profile check)."""

    def __init__(self, interactions: FakeInteractions) -> None:
        self.interactions = interactions
        self.shards: dict[tuple[str, int], Counts] = {}
        self.pages: dict[tuple[str, int, int], PagePlan] = {}
        self.decided: dict[tuple[str, str], Decision] = {}  # (run, customer) -> decision or claim
        self.logs: dict[str, SendLog] = {}
        self.rivals = Rivals()

    # The walk

    def page_plan(self, run_id: str, shard: int, page_no: int) -> PagePlan | None:
        return self.pages.get((run_id, shard, page_no))

    def plan_page(self, run_id: str, shard: int, page_no: int, plan: PagePlan, at: datetime) -> bool:
        self.rivals.run()
        if (run_id, shard, page_no) in self.pages:
            return False
        self.pages[(run_id, shard, page_no)] = replace(plan, queued=False)
        counts = self.shards.get((run_id, shard), Counts())
        last = plan.next_key is None
        self.shards[(run_id, shard)] = replace(
            counts, targeted=counts.targeted + len(plan.customer_ids), walked=1 if last else counts.walked
        )
        return True

    def page_queued(self, run_id: str, shard: int, page_no: int) -> None:
        key = (run_id, shard, page_no)
        self.pages[key] = replace(self.pages[key], queued=True)

    def counts(self, run_id: str) -> dict[int, Counts]:
        return {shard: counts for (run, shard), counts in self.shards.items() if run == run_id}

    def _count(self, run_id: str, decision: Decision) -> None:
        key = (run_id, run_shard(decision.customer_id))
        counts = self.shards.get(key, Counts())
        if decision.outcome == SKIPPED:
            skipped = dict(counts.skipped)
            skipped[decision.reason] = skipped.get(decision.reason, 0) + 1
            self.shards[key] = replace(counts, skipped=skipped)
        elif decision.outcome == SENT:
            self.shards[key] = replace(counts, sent=counts.sent + 1)
        else:
            self.shards[key] = replace(counts, failed=counts.failed + 1)

    # Decisions

    def decisions(self, run_id: str, customer_ids: Iterable[str]) -> dict[str, Decision]:
        return {
            cid: self.decided[(run_id, cid)]
            for cid in dict.fromkeys(customer_ids)
            if (run_id, cid) in self.decided
        }

    def record(self, run_id: str, decision: Decision) -> bool:
        self.rivals.run()
        before = self.decided.get((run_id, decision.customer_id))
        if before is not None and not (decision.outcome == FAILED and before.outcome == SENDING):
            return False
        self.decided[(run_id, decision.customer_id)] = decision
        self._count(run_id, decision)
        return True

    def claim(self, run_id: str, claim: Decision, log: SendLog, sent_log: SendLog) -> None:
        self.rivals.run()
        if (run_id, claim.customer_id) in self.decided:
            raise storage.AlreadyExists(claim.customer_id)
        if self.send_log(claim.customer_id).version != log.version:
            raise storage.VersionConflict(claim.customer_id)
        self.decided[(run_id, claim.customer_id)] = claim
        self.logs[claim.customer_id] = replace(sent_log, version=log.version + 1)

    def give_back(self, run_id: str, claim: Decision, log: SendLog, without: SendLog) -> None:
        self.rivals.run()
        held = self.decided.get((run_id, claim.customer_id))
        if held is None or held.outcome != SENDING:
            return  # not our claim any more
        if self.send_log(claim.customer_id).version != log.version:
            raise storage.VersionConflict(claim.customer_id)
        del self.decided[(run_id, claim.customer_id)]
        self.logs[claim.customer_id] = replace(without, version=log.version + 1)

    def confirm(self, run_id: str, sent: Decision, entry: Interaction | None) -> bool:
        self.rivals.run()
        held = self.decided.get((run_id, sent.customer_id))
        if held is None or held.outcome != SENDING:
            return False
        self.decided[(run_id, sent.customer_id)] = sent
        self._count(run_id, sent)
        if entry is not None and self.interactions.customers.get(entry.customer_id) is not None:
            self.interactions.items[(entry.customer_id, entry.id)] = replace(entry, version=1)
        return True

    def send_logs(self, customer_ids: Iterable[str]) -> dict[str, SendLog]:
        return {c: self.logs[c] for c in customer_ids if c in self.logs}

    def send_log(self, customer_id: str) -> SendLog:
        return self.logs.get(customer_id, SendLog())

    def forget(self, customer_id: str) -> int:
        self.logs.pop(customer_id, None)
        return 1

    # Reading the decisions

    def recipients(
        self, run_id: str, outcomes: tuple[str, ...], limit: int, start: Key | None
    ) -> tuple[list[Decision], Key | None]:
        rows = sorted(
            (d for (run, _), d in self.decided.items() if run == run_id and d.outcome in outcomes),
            key=lambda d: (OUTCOMES.index(d.outcome), run_shard(d.customer_id), d.customer_id),
        )
        return page(rows, limit, start, lambda d: d.customer_id)


class FakeMarketingMailer:
    """Marketing mail appended to `sent`; the addresses in `refusing` are refused as SES would
    (MailRefused), and `crash_after_send` takes a message and then fails as a lost response."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str, str, str]] = []
        self.refusing: set[str] = set()
        self.crash_after_send: set[str] = set()

    def send_marketing(self, to: str, subject: str, text: str, unsubscribe_url: str) -> str:
        if to in self.refusing:
            raise MailRefused("refused by the fake")
        self.sent.append((to, subject, text, unsubscribe_url))
        if to in self.crash_after_send:
            self.crash_after_send.discard(to)
            raise TimeoutError("the response was lost")
        return f"msg-{len(self.sent)}"

    def to(self, address: str) -> int:
        return sum(1 for sent in self.sent if sent[0] == address)
