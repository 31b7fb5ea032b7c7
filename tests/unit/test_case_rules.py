"""The status flow's field rules hold in the domain, for any caller, not only for the API's model."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from chalicelib.domain.cases import DEFAULT_SLA, MisfitFields, TransitionError, open_case, transition

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def case_in(*statuses: str):
    case = open_case(
        customer_id="cus_1",
        interaction_id="int_1",
        subject="Late",
        severity="high",
        opened_at=NOW,
        sla=DEFAULT_SLA,
    )
    for status in statuses:
        extra = {"resolution": "Refunded."} if status == "resolved" else {}
        case = transition(case, status, by="staff-1", at=NOW, **extra)
    return case


def test_resolving_needs_a_resolution():
    with pytest.raises(MisfitFields) as refused:
        transition(case_in("acknowledged", "in_progress"), "resolved", by="staff-1", at=NOW)
    assert refused.value.problems == [("resolution", "is required to resolve a case")]


def test_a_resolution_is_only_given_with_resolving():
    with pytest.raises(MisfitFields) as refused:
        transition(case_in("acknowledged"), "in_progress", by="staff-1", at=NOW, resolution="Done.")
    assert refused.value.problems == [("resolution", "is only given with status resolved")]


def test_satisfaction_is_only_given_with_closing():
    with pytest.raises(MisfitFields) as refused:
        transition(
            case_in("acknowledged", "in_progress", "resolved"), "reopened", by="c", at=NOW, satisfaction=4
        )
    assert refused.value.problems == [("satisfaction", "is only given with status closed")]


def test_closing_keeps_the_satisfaction_and_resolving_the_resolution():
    resolved = case_in("acknowledged", "in_progress", "resolved")
    assert resolved.resolution == "Refunded."
    closed = transition(resolved, "closed", by="staff-1", at=NOW, satisfaction=5)
    assert (closed.status, closed.satisfaction, closed.closed_reason) == ("closed", 5, "resolved")


def test_fields_are_judged_before_the_flow():
    with pytest.raises(MisfitFields):
        transition(case_in(), "resolved", by="staff-1", at=NOW)
    with pytest.raises(TransitionError):
        transition(case_in(), "resolved", by="staff-1", at=NOW, resolution="Refunded.")
