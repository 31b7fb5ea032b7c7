"""Campaign repository: definitions, their schedule state and their runs (the campaigns
table). What a run sends is store/campaign_sends.py's."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime

from pynamodb.exceptions import DeleteError, DoesNotExist, PutError, TransactWriteError, UpdateError

from chalicelib.domain import storage
from chalicelib.domain.campaign_runs import Counts, Run
from chalicelib.domain.campaign_schedule import parse_schedule
from chalicelib.domain.campaign_templates import Template
from chalicelib.domain.campaigns import ACTIVE, COMPLETED, QUEUED, RUNNING, Campaign, FrequencyCap
from chalicelib.domain.clock import optional_rfc3339, parse_optional_rfc3339, parse_rfc3339, to_rfc3339
from chalicelib.store.models.campaigns import (
    CAMPAIGNS_PK,
    DUE_PK,
    CampaignModel,
    CampaignScheduleModel,
    RunModel,
)
from chalicelib.store.pagination import Key, keys_of, query_page
from chalicelib.store.transactions import failed_conditions, transaction, versioned_transaction

CAMPAIGN_PREFIX = "CAMPAIGN#"
RUN_PREFIX = "RUN#"
SNAPSHOT_PREFIX = "SNAPSHOT#"
TOO_LARGE = "The campaign would not fit DynamoDB's 400 KB item limit: shorten its templates."


def _campaign(item: CampaignModel) -> Campaign:
    templates = json.loads(item.templates)
    return Campaign(
        id=item.sk,
        name=item.name,
        segment_id=item.segment_id,
        status=item.status,
        schedule=parse_schedule(json.loads(item.schedule)) if item.schedule else None,
        templates={lang: Template(t["subject"], t["body"]) for lang, t in templates.items()},
        recommendation=item.recommendation,
        frequency_cap=FrequencyCap(int(item.max_messages), int(item.per_days)),
        version=int(item.version or 1),
        created_at=parse_rfc3339(item.created_at),
        updated_at=parse_rfc3339(item.updated_at),
        next_run_at=parse_optional_rfc3339(item.next_run_at),
    )


def _templates_json(campaign: Campaign) -> str:
    return json.dumps(
        {lang: {"subject": t.subject, "body": t.body} for lang, t in campaign.templates.items()},
        ensure_ascii=False,
        sort_keys=True,
    )


def _schedule_json(campaign: Campaign) -> str | None:
    return json.dumps(campaign.schedule.to_dict(), sort_keys=True) if campaign.schedule else None


def _due(campaign: Campaign) -> tuple[str | None, str | None]:
    if campaign.next_run_at is None:
        return None, None
    return DUE_PK, to_rfc3339(campaign.next_run_at)


def _item(campaign: Campaign) -> CampaignModel:
    due_pk, next_run_at = _due(campaign)
    return CampaignModel(
        CAMPAIGNS_PK,
        campaign.id,
        name=campaign.name,
        segment_id=campaign.segment_id,
        status=campaign.status,
        schedule=_schedule_json(campaign),
        templates=_templates_json(campaign),
        recommendation=campaign.recommendation,
        max_messages=campaign.frequency_cap.max_messages,
        per_days=campaign.frequency_cap.per_days,
        created_at=to_rfc3339(campaign.created_at),
        updated_at=to_rfc3339(campaign.updated_at),
        due_pk=due_pk,
        next_run_at=next_run_at,
    )


def _run(item: RunModel) -> Run:
    return Run(
        id=item.id,
        campaign_id=item.campaign_id,
        segment_id=item.segment_id,
        status=item.status,
        trigger=item.trigger,
        created_at=parse_rfc3339(item.created_at),
        scheduled_for=parse_optional_rfc3339(item.scheduled_for),
        started_at=parse_optional_rfc3339(item.started_at),
        completed_at=parse_optional_rfc3339(item.completed_at),
        counts=Counts.from_dict(json.loads(item.counts)) if item.counts else Counts(),
    )


def _run_item(run: Run) -> RunModel:
    return RunModel(
        f"{CAMPAIGN_PREFIX}{run.campaign_id}",
        f"{RUN_PREFIX}{run.id}",
        id=run.id,
        campaign_id=run.campaign_id,
        segment_id=run.segment_id,
        status=run.status,
        trigger=run.trigger,
        scheduled_for=optional_rfc3339(run.scheduled_for),
        created_at=to_rfc3339(run.created_at),
    )


_WRITTEN = (
    "name",
    "segment_id",
    "status",
    "schedule",
    "templates",
    "recommendation",
    "max_messages",
    "per_days",
    "updated_at",
    "due_pk",
    "next_run_at",
)


class CampaignRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    # Definitions

    def add(self, campaign: Campaign) -> Campaign:
        """TooLargeToStore (413) if DynamoDB refuses the item's size."""
        try:
            with transaction(self._region, TOO_LARGE) as t:
                t.save(_item(campaign), condition=CampaignModel.sk.does_not_exist())
        except TransactWriteError as error:
            if any(failed_conditions(error)):
                raise storage.AlreadyExists(campaign.id) from None
            raise
        return replace(campaign, version=1)

    def get(self, campaign_id: str, *, consistent: bool = False) -> Campaign | None:
        try:
            return _campaign(CampaignModel.get(CAMPAIGNS_PK, campaign_id, consistent_read=consistent))
        except DoesNotExist:
            return None

    def list(self, limit: int, start: Key | None) -> tuple[list[Campaign], Key | None]:
        return query_page(
            CampaignModel.query,
            CAMPAIGNS_PK,
            limit=limit,
            start=start,
            key_of=keys_of("pk", "sk"),
            to_domain=_campaign,
        )

    def update(self, before: Campaign, after: Campaign) -> Campaign:
        """What changed from `before`, at its version (VersionConflict otherwise). Only the
        attributes that changed are written: the scheduler moves `next_run_at` (and ends a
        one-off campaign) without the version, and a staff change that leaves the schedule
        alone must not write back the moment it read."""
        old, new = _item(before), _item(after)
        actions = []
        for name in _WRITTEN:
            value = getattr(new, name)
            if value == getattr(old, name):
                continue
            attribute = getattr(CampaignModel, name)
            actions.append(attribute.remove() if value is None else attribute.set(value))
        item = CampaignModel(CAMPAIGNS_PK, before.id, version=before.version)
        with versioned_transaction(self._region, before.id, TOO_LARGE) as t:
            t.update(item, actions=actions)
        return replace(after, version=before.version + 1)

    def delete(self, campaign: Campaign) -> None:
        try:
            # PynamoDB makes the delete conditional on the version read.
            CampaignModel(CAMPAIGNS_PK, campaign.id, version=campaign.version).delete()
        except DeleteError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                raise storage.VersionConflict(campaign.id) from None
            raise

    # Schedule

    def due(self, now: datetime) -> Iterator[str]:
        """Ids of the campaigns whose next run is at or before `now` (GSI by_next_run: the
        index lags, so each is read again before it is started)."""
        for row in CampaignScheduleModel.by_next_run.query(
            DUE_PK, CampaignScheduleModel.next_run_at <= to_rfc3339(now)
        ):
            yield row.sk

    def start_scheduled(
        self, campaign: Campaign, run: Run, next_run_at: datetime | None, status: str
    ) -> bool:
        """Move the schedule on from `campaign.next_run_at` and write its run, in one
        transaction conditional on the schedule still being there: False if another start (a
        second firing of the schedule) moved it first."""
        due_pk = DUE_PK if next_run_at is not None else None
        actions = [CampaignScheduleModel.status.set(status)]
        if status != campaign.status:  # a one-off campaign ends: a new version, a new ETag
            actions += [
                CampaignScheduleModel.version.add(1),
                CampaignScheduleModel.updated_at.set(to_rfc3339(run.created_at)),
            ]
        if due_pk is None:
            actions += [CampaignScheduleModel.due_pk.remove(), CampaignScheduleModel.next_run_at.remove()]
        else:
            actions += [
                CampaignScheduleModel.due_pk.set(due_pk),
                CampaignScheduleModel.next_run_at.set(to_rfc3339(next_run_at)),
            ]
        schedule = CampaignScheduleModel(CAMPAIGNS_PK, campaign.id)
        still_due = (CampaignScheduleModel.next_run_at == to_rfc3339(campaign.next_run_at)) & (
            CampaignScheduleModel.status == ACTIVE
        )
        try:
            with transaction(self._region) as t:
                t.save(_run_item(run), condition=RunModel.sk.does_not_exist())
                t.update(schedule, actions=actions, condition=still_due)
        except TransactWriteError as error:
            run_exists, moved = [*failed_conditions(error), False, False][:2]
            if run_exists and not moved:
                # The moment's run was written before (a staff change set the schedule back to
                # it): move the schedule on alone, or it would stay due forever.
                with contextlib.suppress(UpdateError):
                    schedule.update(actions=actions, condition=still_due)
                return False
            if run_exists or moved:
                return False
            raise
        return True

    # Runs

    def add_run(self, campaign: Campaign, run: Run) -> Run:
        """A manual run, conditional on the campaign being active at the version read
        (VersionConflict otherwise)."""
        with versioned_transaction(self._region, campaign.id) as t:
            t.condition_check(
                CampaignModel,
                CAMPAIGNS_PK,
                campaign.id,
                condition=(CampaignModel.version == campaign.version) & (CampaignModel.status == ACTIVE),
            )
            t.save(_run_item(run), condition=RunModel.sk.does_not_exist())
        return run

    def get_run(self, campaign_id: str, run_id: str, *, consistent: bool = False) -> Run | None:
        try:
            item = RunModel.get(
                f"{CAMPAIGN_PREFIX}{campaign_id}", f"{RUN_PREFIX}{run_id}", consistent_read=consistent
            )
        except DoesNotExist:
            return None
        return _run(item)

    def runs(self, campaign_id: str, limit: int, start: Key | None) -> tuple[list[Run], Key | None]:
        """A campaign's runs, newest first (run ids sort by time)."""
        return query_page(
            RunModel.query,
            f"{CAMPAIGN_PREFIX}{campaign_id}",
            RunModel.sk.startswith(RUN_PREFIX),
            limit=limit,
            start=start,
            key_of=keys_of("pk", "sk"),
            to_domain=_run,
            scan_index_forward=False,
        )

    def snapshot(self, campaign: Campaign, run_id: str) -> None:
        """The campaign as a run sends it, kept beside its runs (the first snapshot stays)."""
        item = _item(replace(campaign, next_run_at=None))
        item.pk, item.sk = f"{CAMPAIGN_PREFIX}{campaign.id}", f"{SNAPSHOT_PREFIX}{run_id}"
        try:
            item.save()  # PynamoDB conditions it on there being none (no version)
        except PutError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise

    def snapshot_of(self, campaign_id: str, run_id: str) -> Campaign | None:
        try:
            item = CampaignModel.get(
                f"{CAMPAIGN_PREFIX}{campaign_id}", f"{SNAPSHOT_PREFIX}{run_id}", consistent_read=True
            )
        except DoesNotExist:
            return None
        return replace(_campaign(item), id=campaign_id)

    def mark_running(self, run: Run, at: datetime) -> Run:
        """queued → running, once: the run's snapshot moment is `at` (or the one written first)."""
        item = RunModel(f"{CAMPAIGN_PREFIX}{run.campaign_id}", f"{RUN_PREFIX}{run.id}")
        try:
            with transaction(self._region) as t:
                t.update(
                    item,
                    actions=[RunModel.status.set(RUNNING), RunModel.started_at.set(to_rfc3339(at))],
                    condition=RunModel.status == QUEUED,
                )
        except TransactWriteError as error:
            if any(failed_conditions(error)):
                return self.get_run(run.campaign_id, run.id, consistent=True) or run
            raise
        return replace(run, status=RUNNING, started_at=at)

    def mark_completed(self, run: Run, counts: Counts, at: datetime) -> bool:
        item = RunModel(f"{CAMPAIGN_PREFIX}{run.campaign_id}", f"{RUN_PREFIX}{run.id}")
        try:
            with transaction(self._region) as t:
                t.update(
                    item,
                    actions=[
                        RunModel.status.set(COMPLETED),
                        RunModel.completed_at.set(to_rfc3339(at)),
                        RunModel.counts.set(json.dumps(counts.to_dict(), sort_keys=True)),
                    ],
                    condition=RunModel.status == RUNNING,
                )
        except TransactWriteError as error:
            if any(failed_conditions(error)):
                return False
            raise
        return True
