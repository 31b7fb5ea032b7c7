"""What a run sends (the campaign-sends table): per shard of a run its counters, walk guards
and per-customer decisions, and per customer the log of marketing messages every frequency cap
reads. Every decision is written once, conditional on its absence or on the claim it replaces,
in the same transaction as the counter it adds to: a redelivered message counts nothing twice."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist, TransactWriteError

from chalicelib.domain import storage
from chalicelib.domain.campaign_runs import (
    DECISION_COUNTERS,
    RUN_SHARDS,
    SENDING,
    Counts,
    Decision,
    PagePlan,
    decision_counter,
    run_shard,
    total,
)
from chalicelib.domain.campaigns import FAILED, SENT, SKIPPED, SendLog
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.interactions import Interaction
from chalicelib.store.customer_items import check_profile_exists
from chalicelib.store.interactions import interaction_item
from chalicelib.store.keys import customer_pk
from chalicelib.store.loyalty_items import customer_of
from chalicelib.store.models import InteractionModel
from chalicelib.store.models.campaigns import (
    SKIPPED_ATTRIBUTES,
    RecipientModel,
    RunPageModel,
    RunShardModel,
    SendLogModel,
)
from chalicelib.store.pagination import Key
from chalicelib.store.transactions import failed_conditions, transaction

PAGE_GUARD_LIFETIME = timedelta(days=14)
# Decisions are kept this long after they are made, then the table's TTL removes them (the
# run's counts stay with the run).
DECISION_LIFETIME = timedelta(days=400)
RECIPIENT_PREFIX = "RECIPIENT#"
OUTCOME_ATTRIBUTES = {SENT: "sent", FAILED: "failed"}


def shard_pk(run_id: str, shard: int) -> str:
    return f"RUN#{run_id}#{shard}"


def _recipient_key(run_id: str, customer_id: str) -> tuple[str, str]:
    return shard_pk(run_id, run_shard(customer_id)), f"{RECIPIENT_PREFIX}{customer_id}"


WALK_SK = "COUNT"


def _page_sk(page: int) -> str:
    return f"PAGE#{page:08d}"


def _counter_sk(n: int) -> str:
    return f"COUNT#{n}"


def _counter_key(run_id: str, customer_id: str) -> tuple[str, str]:
    return shard_pk(run_id, run_shard(customer_id)), _counter_sk(decision_counter(customer_id))


def _expiry(at: datetime, lifetime: timedelta) -> int:
    return int((at + lifetime).timestamp())


def _counts(item: RunShardModel) -> Counts:
    return Counts(
        targeted=int(item.targeted or 0),
        sent=int(item.sent or 0),
        failed=int(item.failed or 0),
        skipped={reason: int(getattr(item, attr) or 0) for reason, attr in SKIPPED_ATTRIBUTES.items()},
        walked=int(item.walked or 0),
    )


def _decision(item: RecipientModel) -> Decision:
    return Decision(
        customer_id=item.customer_id,
        outcome=item.outcome,
        at=parse_rfc3339(item.at),
        reason=item.reason,
        locale=item.locale,
        sku=item.sku,
        message_id=item.message_id,
    )


def _counter_of(decision: Decision):
    if decision.outcome == SKIPPED:
        return getattr(RunShardModel, SKIPPED_ATTRIBUTES[decision.reason])
    return getattr(RunShardModel, OUTCOME_ATTRIBUTES[decision.outcome])


def _log(item: SendLogModel | None) -> SendLog:
    if item is None:
        return SendLog()
    return SendLog(tuple(parse_rfc3339(t) for t in item.times), int(item.version or 0))


def _log_item(customer_id: str, written: SendLog, read: SendLog) -> SendLogModel:
    """`written` saved over the log as `read` it (PynamoDB conditions the save on that version,
    or on there being no log when none was read)."""
    # Microseconds: a claim given back removes its own moment, which must read back equal.
    times = [to_rfc3339(t, timespec="microseconds") for t in written.times]
    item = SendLogModel(customer_pk(customer_id), times=times)
    if read.version:
        item.version = read.version
    return item


class CampaignSendRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    # The walk

    def page_plan(self, run_id: str, shard: int, page: int) -> PagePlan | None:
        try:
            item = RunPageModel.get(shard_pk(run_id, shard), _page_sk(page), consistent_read=True)
        except DoesNotExist:
            return None
        next_key = json.loads(item.next_key) if item.next_key else None
        return PagePlan(tuple(item.customer_ids or ()), next_key, bool(item.queued))

    def plan_page(self, run_id: str, shard: int, page: int, plan: PagePlan, at: datetime) -> bool:
        """Write the page's plan and count its customers as targeted, once (False if a plan was
        written first); the shard's last page ends its walk."""
        actions = [RunShardModel.targeted.add(len(plan.customer_ids))]
        if plan.next_key is None:
            actions.append(RunShardModel.walked.set(1))
        guard = RunPageModel(
            shard_pk(run_id, shard),
            _page_sk(page),
            customer_ids=list(plan.customer_ids),
            next_key=json.dumps(plan.next_key, sort_keys=True) if plan.next_key else None,
            queued=0,
            expires_at=_expiry(at, PAGE_GUARD_LIFETIME),
        )
        try:
            with transaction(self._region) as t:
                t.save(guard, condition=RunPageModel.sk.does_not_exist())
                t.update(RunShardModel(shard_pk(run_id, shard), WALK_SK), actions=actions)
        except TransactWriteError as error:
            if failed_conditions(error)[:1] == [True]:
                return False
            raise
        return True

    def page_queued(self, run_id: str, shard: int, page: int) -> None:
        RunPageModel(shard_pk(run_id, shard), _page_sk(page)).update(actions=[RunPageModel.queued.set(1)])

    def counts(self, run_id: str) -> dict[int, Counts]:
        """Each shard's counts, its walk's and its decisions' summed, strongly consistent (one
        BatchGetItem of 40 items); shards never written are missing."""
        keys = [
            (shard_pk(run_id, shard), sk)
            for shard in range(RUN_SHARDS)
            for sk in (WALK_SK, *(_counter_sk(n) for n in range(DECISION_COUNTERS)))
        ]
        found: dict[int, list[Counts]] = {}
        for item in RunShardModel.batch_get(keys, consistent_read=True):
            found.setdefault(int(item.pk.rsplit("#", 1)[1]), []).append(_counts(item))
        return {shard: total(parts) for shard, parts in found.items()}

    # Decisions

    def decisions(self, run_id: str, customer_ids: Iterable[str]) -> dict[str, Decision]:
        keys = [_recipient_key(run_id, customer_id) for customer_id in dict.fromkeys(customer_ids)]
        if not keys:
            return {}
        return {
            item.customer_id: _decision(item) for item in RecipientModel.batch_get(keys, consistent_read=True)
        }

    def _recipient(self, run_id: str, decision: Decision) -> RecipientModel:
        pk, sk = _recipient_key(run_id, decision.customer_id)
        final = decision.outcome != SENDING
        return RecipientModel(
            pk,
            sk,
            customer_id=decision.customer_id,
            outcome=decision.outcome,
            reason=decision.reason,
            locale=decision.locale,
            sku=decision.sku,
            at=to_rfc3339(decision.at),
            message_id=decision.message_id,
            outcome_pk=f"{run_id}#{decision.outcome}#{run_shard(decision.customer_id)}" if final else None,
            expires_at=_expiry(decision.at, DECISION_LIFETIME),
        )

    def record(self, run_id: str, decision: Decision) -> bool:
        """A final decision (skipped, failed) for a customer not decided before, and its count:
        False if one was recorded first. A failure may replace a claim (`sending`)."""
        item = self._recipient(run_id, decision)
        condition = RecipientModel.sk.does_not_exist()
        if decision.outcome == FAILED:
            condition = condition | (RecipientModel.outcome == SENDING)
        try:
            with transaction(self._region) as t:
                t.save(item, condition=condition)
                counter = RunShardModel(*_counter_key(run_id, decision.customer_id))
                t.update(counter, actions=[_counter_of(decision).add(1)])
        except TransactWriteError as error:
            if failed_conditions(error)[:1] == [True]:
                return False
            raise
        return True

    def claim(self, run_id: str, claim: Decision, log: SendLog, sent_log: SendLog) -> None:
        """Claim the send to the customer (`sending`), and count it in their send log, read at
        `log`'s version, as `sent_log`. AlreadyExists if the run decided for them before;
        VersionConflict if another send changed the log since it was read."""
        item = self._recipient(run_id, claim)
        try:
            with transaction(self._region) as t:
                t.save(item, condition=RecipientModel.sk.does_not_exist())
                t.save(_log_item(claim.customer_id, sent_log, log))
        except TransactWriteError as error:
            failed = failed_conditions(error)
            if failed[:1] == [True]:
                raise storage.AlreadyExists(claim.customer_id) from None
            if any(failed):
                raise storage.VersionConflict(claim.customer_id) from None
            raise

    def give_back(self, run_id: str, claim: Decision, log: SendLog, without: SendLog) -> None:
        """Undo a claim whose message was not taken: the claim goes and the log, read at
        `log`'s version, becomes `without` (VersionConflict if it changed since)."""
        pk, sk = _recipient_key(run_id, claim.customer_id)
        try:
            with transaction(self._region) as t:
                t.delete(RecipientModel(pk, sk), condition=RecipientModel.outcome == SENDING)
                t.save(_log_item(claim.customer_id, without, log))
        except TransactWriteError as error:
            if failed_conditions(error)[:1] == [True]:
                return  # not our claim any more
            if any(failed_conditions(error)):
                raise storage.VersionConflict(claim.customer_id) from None
            raise

    def confirm(self, run_id: str, sent: Decision, entry: Interaction | None) -> bool:
        """The claimed message was sent: the claim becomes `sent`, counted, with the message on
        the customer's timeline, once (False if it was confirmed or failed before). A customer
        erased meanwhile gets no timeline entry (nothing of theirs may outlive the erasure)."""
        item = self._recipient(run_id, sent)
        try:
            with transaction(self._region) as t:
                if entry is not None:
                    check_profile_exists(t, entry.customer_id)
                t.save(item, condition=RecipientModel.outcome == SENDING)
                counter = RunShardModel(*_counter_key(run_id, sent.customer_id))
                t.update(counter, actions=[RunShardModel.sent.add(1)])
                if entry is not None:
                    t.save(interaction_item(entry), condition=InteractionModel.id.does_not_exist())
        except TransactWriteError as error:
            failed = failed_conditions(error)
            if entry is not None and failed[:1] == [True] and failed[1:2] != [True]:
                return self.confirm(run_id, sent, None)
            if any(failed):
                return False
            raise
        return True

    def send_logs(self, customer_ids: Iterable[str]) -> dict[str, SendLog]:
        """The customers' send logs, strongly consistent (one BatchGetItem per 100); those who
        never got a message are missing."""
        keys = [(customer_pk(c), "SENDS") for c in dict.fromkeys(customer_ids)]
        return {
            customer_of(item.pk): _log(item) for item in SendLogModel.batch_get(keys, consistent_read=True)
        }

    def send_log(self, customer_id: str) -> SendLog:
        try:
            return _log(SendLogModel.get(customer_pk(customer_id), "SENDS", consistent_read=True))
        except DoesNotExist:
            return SendLog()

    def forget(self, customer_id: str) -> int:
        """An erased customer's send log goes (their decisions name only the id, and expire)."""
        # No version condition: whatever the log holds goes (and a missing log is no error).
        SendLogModel(customer_pk(customer_id)).delete(add_version_condition=False)
        return 1

    # Reading the decisions

    def recipients(
        self, run_id: str, outcomes: tuple[str, ...], limit: int, start: Key | None
    ) -> tuple[list[Decision], Key | None]:
        """A page of the run's decisions with those outcomes, partition after partition of GSI
        by_outcome (outcome by outcome, shard by shard): one Query a page, one more each time a
        page reaches the end of a partition before it is full."""
        partitions = [f"{run_id}#{outcome}#{shard}" for outcome in outcomes for shard in range(RUN_SHARDS)]
        index = int(start["partition"]) if start else 0
        key = start.get("key") if start else None
        found: list[Decision] = []
        while index < len(partitions):
            rows = RecipientModel.by_outcome.query(
                partitions[index], limit=limit - len(found), last_evaluated_key=key
            )
            found += [_decision(row) for row in rows]
            key = rows.last_evaluated_key
            if key is not None:
                return found, {"partition": index, "key": key}
            index += 1
            if len(found) == limit:
                break
        return found, ({"partition": index, "key": None} if index < len(partitions) else None)
