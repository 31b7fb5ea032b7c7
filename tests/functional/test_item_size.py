"""DynamoDB refuses an item over 400 KB. A write that would make one is refused with one 422
problem (type `too-large`) that names the item, and writes nothing: never a 500, and never a 409
that invites a retry which cannot succeed. A case's history is not such an item: each entry is
an item of its own, so a case takes any number of notes. moto refuses items over 400 KB too (its
limit is 405,000 bytes, DynamoDB's 409,600), so these run on both backends."""

from __future__ import annotations

import json

import pytest

from tests.functional.conftest import Api, assert_problem

TOO_LARGE = "urn:problem-type:crm:too-large"
# Notes of the longest kind: 4,000 characters, of 4 bytes each in UTF-8, about 16 KB of history
# each; 26 of them are past 400 KB.
NOTES = 26


def _open_case(api: Api) -> tuple[dict, str]:
    """A customer and a case for their complaint, opened as the `open_cases` consumer would."""
    from chalicelib import wiring

    customer = api.create_customer(name="Saša Kovačič", locale="sl")
    complaint = api.post(
        f"/customers/{customer['id']}/interactions",
        {"type": "complaint", "channel": "phone", "severity": "high", "subject": "Poškodovan paket"},
    ).json
    interaction = wiring.repositories()[1].get(customer["id"], complaint["id"])
    return customer, wiring.case_service().open_for_complaint(interaction).id


def _add_notes_directly(case_id: str, *notes: str):
    """Notes in one write of the case, as a PATCH writes its note (without a request each)."""
    from chalicelib import wiring
    from chalicelib.domain.cases import add_note

    cases = wiring.case_repository()
    before = after = cases.get(case_id)
    for note in notes:
        after = add_note(after, note, by="staff-1", at=before.opened_at)
    return cases.update(before, after)


def _audit(api: Api, customer_id: str) -> list[dict]:
    return api.walk(f"/customers/{customer_id}/audit", limit=100)


def test_a_case_takes_notes_past_400_kb_reads_its_whole_history_back_and_still_changes(api):
    customer, case_id = _open_case(api)
    path = f"/cases/{case_id}"
    notes = [f"{i:02d}" + "😀" * (4000 - 2) for i in range(NOTES)]
    _add_notes_directly(case_id, *notes[:-2])  # 24 notes, 387 KB, in one transaction
    for note in notes[-2:]:
        assert api.patch(path, {"note": note}).status == 200

    read = api.get(path)
    case = read.json
    assert case["history_count"] == 1 + NOTES
    # The case keeps its latest entries only, the newest last: two notes of 16 KB fill 32 KB.
    assert [h["note"] for h in case["history"]] == notes[-len(case["history"]) :]
    assert 1 <= len(case["history"]) < NOTES

    history = api.walk(f"{path}/history", limit=10)
    assert [h["note"] for h in history] == [*reversed(notes), "Opened from a complaint."]
    assert sum(len(json.dumps(h, ensure_ascii=False).encode()) for h in history) > 400 * 1024

    changed = api.patch(path, {"status": "acknowledged"}, headers={"If-Match": read.headers["etag"]})
    assert changed.status == 200, changed.json
    assert (changed.json["status"], changed.json["history_count"]) == ("acknowledged", NOTES + 2)
    assert changed.headers["etag"] != read.headers["etag"]
    assert api.get(f"{path}/history?limit=1").json["items"][0]["to"] == "acknowledged"
    routes = [e["route"] for e in _audit(api, customer["id"])]
    assert routes.count("PATCH /cases/{case_id}") == 3


def test_a_history_entry_that_alone_would_pass_400_kb_is_refused_and_nothing_is_written(api):
    from chalicelib.errors import TooLargeToStore

    _, case_id = _open_case(api)
    before = api.get(f"/cases/{case_id}")

    with pytest.raises(TooLargeToStore) as refused:
        _add_notes_directly(case_id, "x" * 410_000)

    assert refused.value.status == 422
    assert case_id in str(refused.value) and "400 KB" in str(refused.value)
    after = api.get(f"/cases/{case_id}")
    assert (after.headers["etag"], after.json) == (before.headers["etag"], before.json)
    assert api.walk(f"/cases/{case_id}/history", limit=10) == before.json["history"]


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
