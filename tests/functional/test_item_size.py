"""DynamoDB refuses an item over 400 KB. A write that would make one is refused with one 422
problem (type `too-large`) that names the item, and writes nothing: never a 500, and never a 409
that invites a retry which cannot succeed. moto refuses such items too (its limit is 405,000
bytes, DynamoDB's 409,600), so these run on both backends."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from tests.functional.conftest import Api, assert_problem

SCHEDULED = json.loads(
    (Path(__file__).parents[1] / "integration" / "events" / "scheduled_daily.json").read_text()
)
TOO_LARGE = "urn:problem-type:crm:too-large"
# 4,000 characters of 4 bytes each in UTF-8: about 16 KB of history per note.
BIG_NOTE = "😀" * 4000
MAX_NOTES = 4  # 380 KB + 4 × 16 KB is past either limit


def _open_case(api: Api) -> tuple[dict, str]:
    """A customer and a case for their complaint, opened as the `open_cases` consumer would."""
    from chalicelib.api import deps

    customer = api.create_customer(name="Saša Kovačič", locale="sl")
    complaint = api.post(
        f"/customers/{customer['id']}/interactions",
        {"type": "complaint", "channel": "phone", "severity": "high", "subject": "Poškodovan paket"},
    ).json
    interaction = deps.repositories()[1].get(customer["id"], complaint["id"])
    return customer, deps.case_service().open_for_complaint(interaction).id


def _add_note_directly(case_id: str, note: str):
    from chalicelib.api import deps
    from chalicelib.domain.cases import add_note

    cases = deps.case_repository()
    case = cases.get(case_id)
    return cases.update(case, add_note(case, note, by="staff-1", at=case.opened_at))


def _audit(api: Api, customer_id: str) -> list[dict]:
    return api.walk(f"/customers/{customer_id}/audit", limit=100)


def test_a_note_that_would_pass_400_kb_is_422_and_the_case_is_unchanged(api):
    customer, case_id = _open_case(api)
    _add_note_directly(case_id, "x" * 380_000)  # the history so far, without 95 requests
    before, accepted = api.get(f"/cases/{case_id}"), 0
    for _ in range(MAX_NOTES):
        reply = api.patch(f"/cases/{case_id}", {"note": BIG_NOTE})
        if reply.status != 200:
            break
        before, accepted = reply, accepted + 1
    else:
        pytest.fail(f"{MAX_NOTES} more notes of 16 KB were all accepted")
    assert accepted >= 1
    problem = assert_problem(reply, 422)
    assert problem["type"] == TOO_LARGE
    assert case_id in problem["detail"] and "history" in problem["detail"] and "400 KB" in problem["detail"]
    assert "retry" not in problem["detail"]
    # The audit entry of the refused note was in the refused transaction: not written either.
    audit_before = _audit(api, customer["id"])
    assert [e["route"] for e in audit_before].count("PATCH /cases/{case_id}") == accepted

    # The same note again, even at the current version, gets the same answer: it is permanent.
    again = api.patch(f"/cases/{case_id}", {"note": BIG_NOTE}, headers={"If-Match": before.headers["etag"]})
    assert (again.status, again.json) == (422, problem)
    after = api.get(f"/cases/{case_id}")
    assert (after.status, after.headers["etag"], after.json) == (200, before.headers["etag"], before.json)
    assert _audit(api, customer["id"]) == audit_before


def test_a_customer_change_whose_audit_entry_would_pass_400_kb_is_422_and_nothing_is_written(api):
    # 50 attributes of 1,000 four-byte characters: a 212 KB profile, well within the limit; a
    # change of all of them is audited with their values before and after, 425 KB.
    keys = [f"{i:02d}" + "🔑" * 62 for i in range(50)]
    customer = api.create_customer(name="Åsa Öberg", attributes=dict.fromkeys(keys, "😀" * 1000))
    path = f"/customers/{customer['id']}"
    audit_before = _audit(api, customer["id"])

    change = {"attributes": dict.fromkeys(keys, "🙂" * 1000)}
    reply = api.patch(path, change)

    problem = assert_problem(reply, 422)
    assert problem["type"] == TOO_LARGE
    assert customer["id"] in problem["detail"] and "audit entry" in problem["detail"]
    assert api.patch(path, change).json == problem
    read = api.get(path)
    assert read.headers["etag"] == '"v1"' and read.json["attributes"] == customer["attributes"]
    assert _audit(api, customer["id"]) == audit_before
    # What the profile itself holds is fine: a change with a smaller audit entry goes through.
    assert api.patch(path, {"attributes": {}}).status == 200


def _fill_to_the_last_byte(case_id: str):
    """Notes of halving sizes until not even one more character fits (about 36 writes)."""
    from chalicelib.errors import TooLargeToStore

    size = 200_000
    while size:
        try:
            case = _add_note_directly(case_id, "x" * size)
        except TooLargeToStore:
            size //= 2
    return case


def test_a_full_case_is_left_out_of_the_escalation_sweep_and_the_others_are_escalated(
    api, client, frozen_clock
):
    _, full_id = _open_case(api)
    _, other_id = _open_case(api)
    full = _fill_to_the_last_byte(full_id)
    frozen_clock.advance(timedelta(hours=5))  # past the first response due for "high"

    swept = client.lambda_.invoke("escalate_overdue_cases", SCHEDULED)

    assert swept.payload == {"escalated": 1}
    assert api.get(f"/cases/{other_id}").json["escalation_level"] == 1
    left = api.get(f"/cases/{full_id}")
    assert (left.headers["etag"], left.json["escalation_level"]) == (f'"v{full.version}"', 0)
