"""Complaint cases, end to end through the consumers: complaint → case → follow-up queue →
acknowledgement (read back from moto's SES) → timeline → status; escalation; transitions."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import boto3
import pytest

from chalicelib.config import get_settings
from tests.functional.conftest import Api, assert_problem
from tests.integration.streams import interaction_records, stream_records

SCHEDULED = json.loads((Path(__file__).parent / "events" / "scheduled_daily.json").read_text())


@pytest.fixture
def api(client, staff_token, frozen_clock) -> Api:
    return Api(client, staff_token)


def sent_mail() -> list:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID]["eu-north-1"].sent_messages)


def complain(api: Api, customer: dict, severity: str = "high", subject: str = "Trasig leverans") -> dict:
    reply = api.post(
        f"/customers/{customer['id']}/interactions",
        {"type": "complaint", "channel": "phone", "severity": severity, "subject": subject},
    )
    assert reply.status == 201, reply.json
    return reply.json


def the_case(api: Api, customer: dict) -> dict:
    cases = api.get(f"/customers/{customer['id']}/cases").json["items"]
    assert len(cases) == 1, cases
    return cases[0]


LANGUAGES = [
    ("sv-SE", "Åsa Öberg", "Åsa", "Trasig leverans", "inom 4 timmar", "Hej Åsa"),
    ("fi", "Jyrki Mäkelä", None, "Paketti ei tullut", "4 tunnin kuluessa", "Hei Jyrki Mäkelä"),
    ("sl", "Saša Kovačič", "Saša", "Poškodovan paket", "v 4 urah", "Saša"),
    ("tl", "Maria Dela Cruz", "Ria", "Sirang produkto", "sa loob ng 4 na oras", "Ria"),
    ("en-GB", "Nguyễn Văn An", "An", "Late delivery", "within 4 hours", "Dear An"),
]


@pytest.mark.parametrize(("locale", "name", "preferred", "subject", "promise", "greeting"), LANGUAGES)
def test_a_complaint_is_acknowledged_in_the_customers_language(
    api, pump, locale, name, preferred, subject, promise, greeting
):
    customer = api.create_customer(
        name=name, preferred_name=preferred, locale=locale, email="kund@example.com"
    )
    complaint = complain(api, customer, "high", subject)
    pump.drain()

    case = the_case(api, customer)
    assert (case["interaction_id"], case["subject"], case["severity"]) == (complaint["id"], subject, "high")
    assert case["status"] == "acknowledged" and case["contact_status"] == "acknowledged_by_email"
    assert [(h["from"], h["to"]) for h in case["history"]] == [(None, "open"), ("open", "acknowledged")]
    assert case["first_response_due"] == "2026-11-26T16:00:00.000Z"
    assert case["resolution_due"] == "2026-11-27T12:00:00.000Z"

    [mail] = sent_mail()
    assert mail.destinations["ToAddresses"] == ["kund@example.com"]
    assert (
        case["id"] in mail.subject and subject in mail.body and promise in mail.body and greeting in mail.body
    )
    messages = api.get(f"/customers/{customer['id']}/interactions?type=message").json["items"]
    assert [(m["direction"], m["channel"], m["subject"], m["text"], m["case_id"]) for m in messages] == [
        ("outbound", "email", mail.subject, mail.body, case["id"])
    ]


def test_redelivered_records_and_follow_ups_never_open_a_second_case_or_send_twice(client, api, pump):
    customer = api.create_customer(email="a@example.com", locale="sv")
    complain(api, customer)
    records = interaction_records()
    for _ in range(3):
        assert client.lambda_.invoke("open_cases", {"Records": records}).payload == {"batchItemFailures": []}
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().follow_up_queue_name)["QueueUrl"]
    assert (
        int(
            sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"][
                "ApproximateNumberOfMessages"
            ]
        )
        == 3
    )
    pump.drain()
    case = the_case(api, customer)
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"type": "case.follow_up", "case_id": case["id"]}))
    pump.drain()
    assert len(sent_mail()) == 1
    assert len(api.get(f"/customers/{customer['id']}/interactions?type=message").json["items"]) == 1
    assert the_case(api, customer)["status"] == "acknowledged"


def test_a_follow_up_that_stopped_after_sending_is_finished_without_sending_again(api, pump, monkeypatch):
    from chalicelib.services.cases import CaseService

    customer = api.create_customer(email="a@example.com")
    complain(api, customer)
    original = CaseService._record_acknowledgement
    calls = {"n": 0}

    def crash_once(self, case):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("the process stopped after sending")
        return original(self, case)

    monkeypatch.setattr(CaseService, "_record_acknowledgement", crash_once)
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().follow_up_queue_name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "0"})
    try:
        pump.drain()
    finally:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "180"})
    assert len(sent_mail()) == 1
    assert the_case(api, customer)["contact_status"] == "acknowledged_by_email"
    assert len(api.get(f"/customers/{customer['id']}/interactions?type=message").json["items"]) == 1


def test_a_poison_follow_up_goes_to_the_dead_letter_queue_after_5_receives(pump):
    sqs = boto3.client("sqs")
    name = get_settings().follow_up_queue_name
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName=f"{name}-dlq")["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "0"})
    try:
        sqs.send_message(QueueUrl=url, MessageBody="not json")
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"case_id": "case_NOPE"}))
        pump.drain(timeout=20)
    finally:
        sqs.set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "180"})
    dead = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"])[
        "Messages"
    ]
    assert sorted(m["Body"] for m in dead) == sorted(["not json", json.dumps({"case_id": "case_NOPE"})])
    # Five receives from the follow-up queue, and this test's own receive from the DLQ.
    assert {int(m["Attributes"]["ApproximateReceiveCount"]) - 1 for m in dead} == {5}


def test_a_customer_without_email_is_not_emailed_and_the_case_says_why(api, pump):
    customer = api.create_customer(name="Päivi Virtanen", locale="fi")
    complain(api, customer)
    pump.drain()
    case = the_case(api, customer)
    assert case["contact_status"] == "no_email_address" and case["status"] == "open"
    assert "no email address" in case["history"][-1]["note"]
    assert sent_mail() == []
    assert api.get(f"/customers/{customer['id']}/interactions?type=message").json["items"] == []


def _events() -> list[dict]:
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=get_settings().events_queue_name)["QueueUrl"]
    found = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages"):
        for m in messages:
            found.append(json.loads(m["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
    return found


def test_overdue_cases_are_escalated_once_per_missed_deadline(client, api, pump, frozen_clock):
    customer = api.create_customer(name="No Mail")
    complain(api, customer, "critical")
    pump.drain()
    assert client.lambda_.invoke("escalate_overdue_cases", SCHEDULED).payload == {"escalated": 0}

    frozen_clock.advance(timedelta(hours=1, minutes=1))
    for expected in (1, 0):
        assert client.lambda_.invoke("escalate_overdue_cases", SCHEDULED).payload == {"escalated": expected}
    case = the_case(api, customer)
    assert case["escalation_level"] == 1
    assert "first response" in case["history"][-1]["note"]

    frozen_clock.advance(timedelta(hours=7))
    for expected in (1, 0, 0):
        assert client.lambda_.invoke("escalate_overdue_cases", SCHEDULED).payload == {"escalated": expected}
    assert the_case(api, customer)["escalation_level"] == 2

    records = stream_records(get_settings().cases_table)
    for _ in range(2):
        assert client.lambda_.invoke("on_case_change", {"Records": records}).payload == {
            "batchItemFailures": []
        }
    events = [e for e in _events() if e["type"] == "case.escalated"]
    assert [(e["data"]["escalation_level"], e["data"]["missed"]) for e in events] == [
        (1, ["first_response"]),
        (2, ["resolution"]),
    ]


def test_an_acknowledged_case_is_escalated_only_when_its_resolution_is_late(client, api, pump, frozen_clock):
    customer = api.create_customer(email="a@example.com")
    complain(api, customer, "critical")
    pump.drain()
    frozen_clock.advance(timedelta(hours=2))
    assert client.lambda_.invoke("escalate_overdue_cases", SCHEDULED).payload == {"escalated": 0}
    frozen_clock.advance(timedelta(hours=7))
    assert client.lambda_.invoke("escalate_overdue_cases", SCHEDULED).payload == {"escalated": 1}


@pytest.fixture
def case_in(api, pump):
    """A case brought to a given status through the API."""

    def make(status: str) -> dict:
        customer = api.create_customer(name=f"Kund {status}")
        complain(api, customer)
        pump.drain()
        case = the_case(api, customer)
        path = {
            "open": [],
            "acknowledged": [{"status": "acknowledged"}],
            "in_progress": [{"status": "acknowledged"}, {"status": "in_progress"}],
            "resolved": [
                {"status": "acknowledged"},
                {"status": "in_progress"},
                {"status": "resolved", "resolution": "Ny vara skickad."},
            ],
            "closed": [
                {"status": "acknowledged"},
                {"status": "in_progress"},
                {"status": "resolved", "resolution": "Ny vara skickad."},
                {"status": "closed"},
            ],
            "reopened": [
                {"status": "acknowledged"},
                {"status": "in_progress"},
                {"status": "resolved", "resolution": "Ny vara skickad."},
                {"status": "reopened"},
            ],
        }[status]
        for change in path:
            reply = api.patch(f"/cases/{case['id']}", change)
            assert reply.status == 200, reply.json
            case = reply.json
        assert case["status"] == status
        return case

    return make


ALLOWED = {
    "open": {"acknowledged"},
    "acknowledged": {"in_progress"},
    "in_progress": {"resolved"},
    "resolved": {"closed", "reopened"},
    "reopened": {"in_progress"},
    "closed": set(),
}
STATUSES = list(ALLOWED)


@pytest.mark.parametrize("current", STATUSES)
def test_every_transition_outside_the_flow_is_409_naming_the_allowed_ones(api, case_in, current):
    case = case_in(current)
    for wanted in STATUSES:
        if wanted == current or wanted in ALLOWED[current]:
            continue
        body = {"status": wanted} | ({"resolution": "x"} if wanted == "resolved" else {})
        problem = assert_problem(api.patch(f"/cases/{case['id']}", body), 409, "status")
        for allowed in ALLOWED[current]:
            assert allowed in problem["detail"]
    assert api.get(f"/cases/{case['id']}").json["status"] == current


def test_resolving_needs_a_resolution_and_closing_may_record_satisfaction(api, case_in):
    case = case_in("in_progress")
    assert_problem(api.patch(f"/cases/{case['id']}", {"status": "resolved"}), 400, "resolution")
    resolved = api.patch(f"/cases/{case['id']}", {"status": "resolved", "resolution": "Refunded."}).json
    assert resolved["resolution"] == "Refunded."
    for bad in (0, 6, "5", 4.5):
        assert_problem(
            api.patch(f"/cases/{case['id']}", {"status": "closed", "satisfaction": bad}), 400, "satisfaction"
        )
    assert_problem(api.patch(f"/cases/{case['id']}", {"satisfaction": 4}), 400, "satisfaction")
    # 4.0 is the integer 4, as JSON Schema counts it (and generated clients send it).
    closed = api.patch(f"/cases/{case['id']}", {"status": "closed", "satisfaction": 4.0}).json
    assert (closed["status"], closed["satisfaction"]) == ("closed", 4)


def test_a_reopened_case_goes_back_to_work(api, case_in):
    case = case_in("reopened")
    assert case["resolution"] is None
    assert (
        api.patch(
            f"/cases/{case['id']}", {"status": "in_progress", "note": "Kunden hörde av sig igen."}
        ).status
        == 200
    )


def test_staff_assign_and_note_cases_and_if_match_is_honoured(api, case_in):
    case = case_in("acknowledged")
    etag = api.get(f"/cases/{case['id']}").headers["etag"]
    reply = api.patch(
        f"/cases/{case['id']}", {"assignee": "agent-7", "note": "Ringer kunden."}, headers={"If-Match": etag}
    )
    assert reply.status == 200
    body = reply.json
    assert body["assignee"] == "agent-7"
    assert [h["note"] for h in body["history"][-2:]] == ["Assigned to agent-7.", "Ringer kunden."]
    assert body["history"][-1]["by"] == "staff-1"
    assert_problem(api.patch(f"/cases/{case['id']}", {"note": "late"}, headers={"If-Match": etag}), 412)
    assert_problem(api.patch(f"/cases/{case['id']}", {}), 400, "body")
    assert_problem(api.patch(f"/cases/{case['id']}", {"status": None}), 400, "status")
    assert_problem(api.get("/cases/case_nope"), 404)


def test_a_closed_case_takes_no_more_changes(api, case_in):
    case = case_in("closed")
    assert case["closed_reason"] == "resolved"
    for change in ({"note": "Kunden ringde och tackade."}, {"assignee": "agent-7"}, {"status": "reopened"}):
        problem = assert_problem(api.patch(f"/cases/{case['id']}", change), 409, *change)
        assert "is closed" in problem["detail"]
    assert api.get(f"/cases/{case['id']}").json == case


def test_a_cases_whole_history_is_listed_newest_first_and_the_case_keeps_its_latest_entries(
    api, case_in, frozen_clock
):
    from chalicelib import wiring
    from chalicelib.domain.cases import add_note

    case = case_in("in_progress")
    repository = wiring.case_repository()
    before = after = repository.get(case["id"])
    for n in range(20):  # in one write: as 20 PATCHes would, without the requests
        frozen_clock.advance(timedelta(minutes=1))
        after = add_note(after, f"Anteckning {n}", by="staff-1", at=frozen_clock.now())
    repository.update(before, after)
    assert api.patch(f"/cases/{case['id']}", {"note": "Sista anteckningen."}).status == 200

    history = api.walk(f"/cases/{case['id']}/history", limit=7)
    oldest_first = [h["note"] for h in reversed(history)]
    assert oldest_first[: len(case["history"])] == [h["note"] for h in case["history"]]
    assert oldest_first[len(case["history"]) :] == [f"Anteckning {n}" for n in range(20)] + [
        "Sista anteckningen."
    ]
    read = api.get(f"/cases/{case['id']}").json
    assert read["history_count"] == len(history) == len(case["history"]) + 21
    assert read["history"] == list(reversed(history))[-20:]

    other = case_in("open")
    cursor = api.get(f"/cases/{other['id']}/history?limit=1").json["next_cursor"]
    assert_problem(api.get(f"/cases/{case['id']}/history?cursor={cursor}"), 400, "cursor")
    assert_problem(api.get(f"/cases/{case['id']}/history?limit=0"), 400, "limit")
    assert_problem(api.get("/cases/case_nope/history"), 404)


def test_deleting_a_customers_cases_also_deletes_history_written_while_it_runs(api, case_in, monkeypatch):
    from chalicelib import wiring
    from chalicelib.store.cases import CaseRepository
    from chalicelib.store.models import CaseHistoryModel, case_pk

    case = case_in("acknowledged")
    delete_history = CaseRepository._delete_history
    walked = []

    def and_then_a_note_comes(self, case_id):
        delete_history(self, case_id)
        walked.append(case_id)
        if len(walked) == 1:  # between the history and the case: the case is still there
            assert api.patch(f"/cases/{case_id}", {"note": "Precis nu."}).status == 200

    monkeypatch.setattr(CaseRepository, "_delete_history", and_then_a_note_comes)

    assert wiring.case_repository().delete_all_of(case["customer_id"]) == 1

    assert walked == [case["id"], case["id"]]
    assert_problem(api.get(f"/cases/{case['id']}"), 404)
    assert list(CaseHistoryModel.query(case_pk(case["id"]))) == []


def test_cases_are_listed_due_first_and_filtered(api, pump, frozen_clock):
    made = {}
    for severity in ("low", "critical", "medium", "high"):
        customer = api.create_customer(name=f"Kund {severity}")
        complain(api, customer, severity)
        made[severity] = customer
    pump.drain()
    listed = api.get("/cases").json["items"]
    assert [c["severity"] for c in listed] == ["critical", "high", "medium", "low"]
    assert [c["severity"] for c in api.walk("/cases", limit=1)] == ["critical", "high", "medium", "low"]
    assert [c["severity"] for c in api.get("/cases?severity=high").json["items"]] == ["high"]
    due = (frozen_clock.now() + timedelta(hours=30)).isoformat()
    assert [c["severity"] for c in api.get(f"/cases?due_before={due}").json["items"]] == [
        "critical",
        "high",
        "medium",
    ]
    first = listed[0]
    api.patch(f"/cases/{first['id']}", {"assignee": "agent-7"})
    assert [c["id"] for c in api.get("/cases?assignee=agent-7").json["items"]] == [first["id"]]
    assert [c["id"] for c in api.get("/cases?assignee=agent-7&status=open").json["items"]] == [first["id"]]
    assert api.get("/cases?assignee=agent-7&status=resolved").json["items"] == []
    assert len(api.get("/cases?status=open").json["items"]) == 4
    assert_problem(api.get("/cases?status=lost"), 400, "status")
    assert_problem(api.get("/cases?due_before=tomorrow"), 400, "due_before")
    assert_problem(api.get("/customers/cus_nope/cases"), 404)


def test_case_changes_by_staff_and_by_the_system_are_in_the_customers_audit_trail(api, pump):
    customer = api.create_customer(email="a@example.com")
    complain(api, customer)
    pump.drain()
    case = the_case(api, customer)
    api.patch(
        f"/cases/{case['id']}", {"assignee": "agent-7", "status": "in_progress", "note": "Ringer kunden."}
    )
    trail = [e for e in api.get(f"/customers/{customer['id']}/audit").json["items"] if e["entity"] == "case"]
    # The clock is frozen: entries of the same instant have no defined order.
    by_kind = {(e["action"], e["actor"]["role"]): e for e in trail}
    assert sorted(by_kind) == [("create", "system"), ("update", "staff"), ("update", "system")]
    staff = by_kind[("update", "staff")]
    changes = {c["field"]: (c["before"], c["after"]) for c in staff["changes"]}
    assert changes["status"] == ("acknowledged", "in_progress") and changes["assignee"] == (None, "agent-7")
    assert changes["note"] == (None, "R***")
    assert staff["route"] == "PATCH /cases/{case_id}"
    system = {c["field"]: c["after"] for c in by_kind[("update", "system")]["changes"]}
    assert system["contact_status"] == "acknowledged_by_email"


def test_a_complaint_read_after_its_customer_was_deleted_opens_no_case(client, api):
    customer = api.create_customer(email="a@example.com")
    complain(api, customer)
    records = interaction_records()
    assert api.delete(f"/customers/{customer['id']}").status == 204
    assert client.lambda_.invoke("open_cases", {"Records": records}).payload == {"batchItemFailures": []}
    table = boto3.resource("dynamodb").Table(get_settings().cases_table)
    assert table.scan()["Items"] == []


def _follow_up_event(case_id: str) -> dict:
    return {
        "Records": [
            {
                "messageId": "m-1",
                "receiptHandle": "r-1",
                "body": json.dumps({"type": "case.follow_up", "case_id": case_id}),
                "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1764000000000"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:eu-north-1:123456789012:"
                + get_settings().follow_up_queue_name,
                "awsRegion": "eu-north-1",
            }
        ]
    }


def test_an_acknowledgement_ses_refused_is_not_recorded_and_is_sent_on_redelivery(client, api, monkeypatch):
    import botocore.client
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
    from botocore.exceptions import ClientError

    customer = api.create_customer(email="liisa@example.fi", locale="fi")
    complain(api, customer)
    assert client.lambda_.invoke("open_cases", {"Records": interaction_records()}).payload == {
        "batchItemFailures": []
    }
    case = the_case(api, customer)
    call = botocore.client.BaseClient._make_api_call
    refusals = [
        ClientError(
            {"Error": {"Code": "Throttling", "Message": "Maximum sending rate exceeded."}}, "SendEmail"
        )
    ]

    def flaky_send(self, operation_name, api_params):
        if operation_name == "SendEmail" and refusals:
            raise refusals.pop()
        return call(self, operation_name, api_params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", flaky_send)

    # A whole batch failed: the invocation fails, and SQS delivers the message again.
    with pytest.raises(BatchProcessingError):
        client.lambda_.invoke("send_follow_ups", _follow_up_event(case["id"]))

    after_refusal = the_case(api, customer)
    assert (after_refusal["status"], after_refusal["contact_status"]) == ("open", None)
    assert "Acknowledgement emailed." not in json.dumps(after_refusal["history"])
    assert sent_mail() == []
    assert api.get(f"/customers/{customer['id']}/interactions?type=message").json["items"] == []

    redelivered = client.lambda_.invoke("send_follow_ups", _follow_up_event(case["id"])).payload

    assert redelivered == {"batchItemFailures": []}
    assert len(sent_mail()) == 1
    acknowledged = the_case(api, customer)
    assert (acknowledged["status"], acknowledged["contact_status"]) == (
        "acknowledged",
        "acknowledged_by_email",
    )
    assert len(api.get(f"/customers/{customer['id']}/interactions?type=message").json["items"]) == 1
