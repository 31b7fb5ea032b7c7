"""Campaign use cases of staff and of the minute schedule: define campaigns, preview what a
customer would get, start runs (by hand, by an integration, or when the schedule is due) and
read their results. What a run sends is services/campaign_runs.py's."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime

from chalicelib.domain import attempts, ids, storage
from chalicelib.domain.campaign_runs import MANUAL, SCHEDULED, Counts, Decision, Run, total
from chalicelib.domain.campaign_schedule import next_run
from chalicelib.domain.campaign_templates import uses_product
from chalicelib.domain.campaigns import (
    ACTIVE,
    CAMPAIGN,
    FINISHED,
    OUTCOMES,
    QUEUED,
    RUN,
    Campaign,
    new_campaign,
)
from chalicelib.domain.clock import Clock
from chalicelib.errors import (
    Conflict,
    FieldError,
    NotFound,
    PreconditionFailed,
    Unprocessable,
    ValidationFailed,
)
from chalicelib.services.campaign_messages import Composed, Composer
from chalicelib.services.campaign_ports import CampaignSends, CampaignStore
from chalicelib.services.ports import ProfileReader
from chalicelib.services.versions import update_at_version
from chalicelib.store.pagination import CursorCodec, Page, page_of

log = logging.getLogger(__name__)


def _check_runnable(before: Campaign | None, after: Campaign) -> None:
    """A one-off schedule in the past would leave an active campaign that never runs."""
    changed = before is None or (before.status, before.schedule) != (after.status, after.schedule)
    schedule = after.schedule
    if (
        changed
        and after.status == ACTIVE
        and schedule is not None
        and schedule.once
        and after.next_run_at is None
    ):
        raise ValidationFailed(
            [FieldError("schedule.at", "is in the past: an active campaign would never run")]
        )


def _check_product_placeholders(recommendation: str, templates: Mapping) -> None:
    if recommendation == "none" and uses_product(templates):
        raise ValidationFailed(
            [FieldError("templates", 'uses {{ product.… }} placeholders, but recommendation is "none"')]
        )


def scheduled_run_id(campaign_id: str, moment: datetime) -> str:
    """The run of a scheduled moment has an id derived from it, so two starts of one moment
    write one run."""
    digest = hashlib.sha256(f"{campaign_id}@{moment.isoformat()}".encode()).digest()
    return f"{RUN}_{ids.ulid_from(moment, digest[:10])}"


class CampaignService:
    def __init__(
        self,
        campaigns: CampaignStore,
        sends: CampaignSends,
        segment_exists: Callable[[str], bool],
        customers: ProfileReader,
        composer: Composer,
        clock: Clock,
        cursors: CursorCodec | None = None,
    ) -> None:
        self._campaigns = campaigns
        self._sends = sends
        self._segment_exists = segment_exists
        self._customers = customers
        self._composer = composer
        self._clock = clock
        self._cursors = cursors

    # Definitions

    def create(self, fields: Mapping) -> Campaign:
        self._check_segment(fields["segment_id"])
        _check_product_placeholders(fields["recommendation"], fields["templates"])
        now = self._clock.now()
        campaign = new_campaign(
            ids.new_id(CAMPAIGN, now),
            fields["name"],
            fields["segment_id"],
            fields["status"],
            fields["schedule"],
            fields["templates"],
            fields["recommendation"],
            fields["frequency_cap"],
            now,
        )
        _check_runnable(None, campaign)
        return self._campaigns.add(campaign)

    def _check_segment(self, segment_id: str) -> None:
        if not self._segment_exists(segment_id):
            raise Unprocessable(
                f"No segment has the id {segment_id!r}.",
                errors=[FieldError("segment_id", "names no segment")],
            )

    def get(self, campaign_id: str, *, consistent: bool = False) -> Campaign:
        campaign = self._campaigns.get(campaign_id, consistent=consistent)
        if campaign is None:
            raise NotFound(f"No campaign has the id {campaign_id!r}.")
        return campaign

    def list(self, limit: int, cursor: str | None) -> Page[Campaign]:
        return page_of(self._cursors, "campaigns", cursor, lambda start: self._campaigns.list(limit, start))

    def update(self, campaign_id: str, changes: Mapping, if_match: int | None) -> Campaign:
        if "segment_id" in changes:
            self._check_segment(changes["segment_id"])

        def write(before: Campaign) -> Campaign:
            after = before.with_changes(changes, self._clock.now())
            _check_product_placeholders(after.recommendation, after.templates)
            _check_runnable(before, after)
            if _defined(after) == _defined(before):
                return before
            return self._campaigns.update(before, after)

        return update_at_version("campaign", lambda: self.get(campaign_id, consistent=True), write, if_match)

    def delete(self, campaign_id: str, if_match: int | None) -> None:
        campaign = self.get(campaign_id, consistent=True)
        if if_match is not None and campaign.version != if_match:
            raise PreconditionFailed(
                f"The campaign is at version {campaign.version}, not {if_match}: re-read it and retry."
            )
        if not campaign.deletable:
            raise Conflict(
                f"A campaign that is {campaign.status} cannot be deleted: pause it first.",
                errors=[
                    FieldError(
                        "status", f"is {campaign.status}; only draft or paused campaigns can be deleted"
                    )
                ],
            )
        try:
            self._campaigns.delete(campaign)
        except storage.VersionConflict:
            raise PreconditionFailed(
                "The campaign was changed by another request: re-read it and retry."
            ) from None

    # Preview

    def preview(self, campaign_id: str, customer_id: str) -> Composed:
        """Exactly what the customer would get from the campaign now; nothing is sent or
        counted. NotFound for an id that never was a customer's."""
        campaign = self.get(campaign_id)
        customer = self._customers.get(customer_id, consistent=True)
        if customer is None and not self._customers.was_deleted(customer_id):
            raise NotFound(f"No customer has the id {customer_id!r}.")
        log = self._sends.send_log(customer_id)
        return self._composer.compose(campaign, customer, log, self._clock.now(), full=True)

    # Runs

    def start_run(self, campaign_id: str) -> Run:
        """A run started by hand or by an integration (409 unless the campaign is active)."""
        now = self._clock.now()
        if attempts.repeating():
            upcoming = ids.next_id(RUN, now)
            earlier = self._campaigns.get_run(campaign_id, upcoming, consistent=True) if upcoming else None
            if earlier is not None:
                return earlier

        def attempt(campaign: Campaign) -> Run:
            if campaign.status != ACTIVE:
                raise Conflict(
                    f"The campaign is {campaign.status}: only an active campaign runs.",
                    errors=[FieldError("status", f"is {campaign.status}, not active")],
                )
            run = Run(ids.new_id(RUN, now), campaign.id, campaign.segment_id, QUEUED, MANUAL, now)
            return self._campaigns.add_run(campaign, run)

        return update_at_version("campaign", lambda: self.get(campaign_id, consistent=True), attempt, None)

    def start_due(self) -> list[str]:
        """Start the run of every active campaign whose next run is due, once per scheduled
        moment, and move its schedule on (past moments missed while nothing ran collapse into
        one run, now). Returns the runs started."""
        now = self._clock.now()
        started = []
        for campaign_id in self._campaigns.due(now):
            try:
                run_id = self._start_due(campaign_id, now)
            except Exception:  # one campaign's failure must not hold back the others
                log.exception("the due run of %s was not started; the next minute tries again", campaign_id)
                continue
            if run_id is not None:
                started.append(run_id)
        return started

    def _start_due(self, campaign_id: str, now: datetime) -> str | None:
        campaign = self._campaigns.get(campaign_id, consistent=True)
        if campaign is None or campaign.status != ACTIVE or campaign.next_run_at is None:
            return None
        moment = campaign.next_run_at
        if moment > now:
            return None
        following = next_run(campaign.schedule, now) if campaign.schedule else None
        status = FINISHED if campaign.schedule is not None and campaign.schedule.once else ACTIVE
        run = Run(
            scheduled_run_id(campaign.id, moment),
            campaign.id,
            campaign.segment_id,
            QUEUED,
            SCHEDULED,
            now,
            scheduled_for=moment,
        )
        return run.id if self._campaigns.start_scheduled(campaign, run, following, status) else None

    def runs(self, campaign_id: str, limit: int, cursor: str | None) -> Page[Run]:
        self.get(campaign_id)
        page = page_of(
            self._cursors,
            f"campaigns/{campaign_id}/runs",
            cursor,
            lambda start: self._campaigns.runs(campaign_id, limit, start),
        )
        return Page([self._counted(run) for run in page.items], page.next_cursor)

    def run(self, campaign_id: str, run_id: str) -> Run:
        run = self._campaigns.get_run(campaign_id, run_id, consistent=True)
        if run is None:
            raise NotFound(f"Campaign {campaign_id!r} has no run with the id {run_id!r}.")
        return self._counted(run)

    def _counted(self, run: Run) -> Run:
        """A run with its counts: a completed run's are on it, a running one's are summed over
        its shards (one BatchGetItem)."""
        if run.completed or run.status == QUEUED:
            return run
        counts: Counts = total(self._sends.counts(run.id).values())
        return replace(run, counts=counts)

    def recipients(
        self, campaign_id: str, run_id: str, outcome: str | None, limit: int, cursor: str | None
    ) -> Page[Decision]:
        self.run(campaign_id, run_id)
        outcomes = (outcome,) if outcome else OUTCOMES
        return page_of(
            self._cursors,
            f"campaigns/{campaign_id}/runs/{run_id}/recipients?{outcome or ''}",
            cursor,
            lambda start: self._sends.recipients(run_id, outcomes, limit, start),
        )


def _defined(campaign: Campaign) -> tuple:
    return (
        campaign.name,
        campaign.segment_id,
        campaign.status,
        campaign.schedule,
        campaign.templates,
        campaign.recommendation,
        campaign.frequency_cap,
        campaign.next_run_at,
    )
