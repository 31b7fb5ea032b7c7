"""Campaign runs where DynamoDB enforces "exactly once" (a storage suite: DynamoDB Local under
`make test`): every queue message of a run delivered again and out of order, two workers on one
delivery batch, two campaigns racing for one customer's frequency cap, SES refusing a message,
a claim left by a worker that stopped after SES took the message, the largest campaign.

The campaigns queue is delivered by hand here, the way its event source mapping would (records
of Lambda's shape, at most five an invocation, each deleted unless the handler reports it
failed), so that a test can hold a message back, deliver it again or give it to two workers.
The event pump runs everything else (the streams, the segments queue)."""

from __future__ import annotations

import copy
import email
import json
import random
import threading
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from chalicelib import wiring
from chalicelib.config import get_settings
from chalicelib.domain.campaign_runs import total
from chalicelib.domain.campaign_templates import MAX_LANGUAGES, MAX_TEMPLATE_BYTES
from chalicelib.local.lambda_events import LambdaContext, lambda_sqs_record
from chalicelib.services.campaign_runs import STALE_CLAIM
from chalicelib.store.campaign_sends import CampaignSendRepository
from tests.conftest import aws_client
from tests.functional.conftest import Api, assert_problem

INFRA = json.loads((Path(__file__).resolve().parents[2] / "infra" / "resources.json").read_text())
BATCH_SIZE = 5  # the campaigns queue's event source mapping (events/campaigns.py)
TEMPLATES = {
    "en": {"subject": "Hi {{ preferred_name }}", "body": "News for you. {{ unsubscribe_url }}"},
    "sv": {"subject": "Hej {{ preferred_name }}", "body": "Nyheter för dig. {{ unsubscribe_url }}"},
}


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


@pytest.fixture
def streams(pump):
    """The event pump without the campaigns queue's consumer: the tests deliver that queue."""
    pump.queue_consumers = [c for c in pump.queue_consumers if c.name != "deliver_campaigns"]
    return pump


class CampaignsQueue:
    """The campaigns queue and its consumer, `deliver_campaigns`, driven by the test. Every
    message received must belong to one of `runs` (no other test's run leaks in)."""

    def __init__(self, app, *runs: str) -> None:
        self._handler = app.handler_map["deliver_campaigns"]
        self._runs = set(runs)
        self.sqs = aws_client("sqs")
        self.url = self.sqs.get_queue_url(QueueName=get_settings().campaigns_queue_name)["QueueUrl"]
        self.arn = self.sqs.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        self.delivered: list[dict] = []  # every record received from the queue and handed over

    def receive(self) -> list[dict]:
        messages = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=BATCH_SIZE,
            MessageSystemAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        records = [lambda_sqs_record(m, self.arn) for m in messages]
        assert {body(r)["run_id"] for r in records} <= self._runs, [body(r) for r in records]
        return records

    def invoke(self, records: list[dict]) -> set[str]:
        """One invocation of the consumer: the message ids it reports failed."""
        from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

        context = LambdaContext(
            "deliver_campaigns", 256, "arn:aws:lambda:::function:deliver_campaigns", 120_000
        )
        try:
            reply = self._handler({"Records": records}, context)
        except BatchProcessingError:  # every record failed
            return {r["messageId"] for r in records}
        return {failure["itemIdentifier"] for failure in reply["batchItemFailures"]}

    def deliver(self, records: list[dict]) -> set[str]:
        """Received records to the consumer; the ones it does not report failed are deleted."""
        failed = self.invoke(records)
        for record in records:
            if record["messageId"] not in failed:
                self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=record["receiptHandle"])
        return failed

    def drain(self, hold=lambda body: False) -> list[dict]:
        """Deliver until the queue is empty, each batch as received; the messages `hold` picks
        are taken off the queue undelivered and returned."""
        held = []
        while records := self.receive():
            for record in records:
                if hold(body(record)):
                    held.append(record)
                    self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=record["receiptHandle"])
            given = [r for r in records if r not in held]
            if given:
                assert self.deliver(given) == set(), [body(r) for r in given]
                self.delivered += given
        return held

    def redeliver(self, records: list[dict], receives: int) -> set[str]:
        """Messages SQS delivers again (as many receives so far), BATCH_SIZE an invocation:
        the message ids reported failed."""
        failed = set()
        for start in range(0, len(records), BATCH_SIZE):
            failed |= self.invoke([again(r, receives) for r in records[start : start + BATCH_SIZE]])
        return failed


def body(record: dict) -> dict:
    return json.loads(record["body"])


def again(record: dict, receives: int) -> dict:
    """The message received once more: its id and body, a new receipt, the receive count."""
    record = copy.deepcopy(record)
    record["receiptHandle"] = f"again-{uuid.uuid4()}"
    record["attributes"]["ApproximateReceiveCount"] = str(receives)
    return record


def duplicate(record: dict) -> dict:
    """The same body in a message of its own (a sender that sent it twice)."""
    record = again(record, 1)
    record["messageId"] = str(uuid.uuid4())
    return record


def customers(api, consenting: int, *, without_consent: int = 0, without_email: int = 0) -> dict[str, dict]:
    """Customers tagged "campaign" by id: the consenting ones first, with an address each."""
    made = {}
    for n in range(consenting + without_consent + without_email):
        fields = {"name": f"Kund {n}", "locale": ("sv-SE", "en", "fi")[n % 3], "tags": ["campaign"]}
        if n < consenting + without_consent:
            fields["email"] = f"kund{n}@example.com"
        fields["marketing_consent"] = n < consenting or n >= consenting + without_consent
        customer = api.create_customer(**fields)
        made[customer["id"]] = customer
    return made


def consenting(people: dict[str, dict]) -> dict[str, dict]:
    return {cid: c for cid, c in people.items() if c["marketing_consent"] and c.get("email")}


def segment(api, pump) -> str:
    pump.drain()
    reply = api.post("/segments", {"name": "Campaign", "rules": {"tags_any": ["campaign"]}})
    assert reply.status == 201, reply.json
    pump.drain()
    return reply.json["id"]


def campaign(api, segment_id: str, **fields) -> dict:
    definition = {
        "name": "Winter",
        "segment_id": segment_id,
        "status": "active",
        "templates": TEMPLATES,
        "recommendation": "none",
    }
    reply = api.post("/campaigns", definition | fields)
    assert reply.status == 201, reply.json
    return reply.json


def start_run(api, pump, campaign_id: str) -> str:
    """A run started by hand; the campaigns stream puts its start on the queue."""
    reply = api.post(f"/campaigns/{campaign_id}/runs")
    assert reply.status == 202, reply.json
    pump.drain()
    return reply.json["id"]


def run_of(api, campaign_id: str, run_id: str) -> dict:
    reply = api.get(f"/campaigns/{campaign_id}/runs/{run_id}")
    assert reply.status == 200, reply.json
    return reply.json


def recipients(api, campaign_id: str, run_id: str) -> dict[str, tuple[str, str | None]]:
    rows = api.walk(f"/campaigns/{campaign_id}/runs/{run_id}/recipients", limit=7)
    found = {r["customer_id"]: (r["outcome"], r["reason"]) for r in rows}
    assert len(found) == len(rows)  # no customer listed twice
    return found


def mail() -> Counter:
    """How many messages moto's SES took for each address."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    sent = ses_backends[DEFAULT_ACCOUNT_ID]["eu-north-1"].sent_messages
    return Counter(email.message_from_string(m.raw_data)["To"] for m in sent)


def campaign_messages(api, customer_id: str) -> list[dict]:
    rows = api.walk(f"/customers/{customer_id}/interactions", limit=50)
    return [r for r in rows if r.get("campaign_id")]


def shard_counts(run_id: str) -> dict:
    return total(wiring.campaign_send_repository().counts(run_id).values()).to_dict()


def counts(run: dict) -> dict:
    return {key: run[key] for key in ("targeted", "sent", "skipped", "failed")}


def delivers_of(run_id: str):
    return lambda message: message["type"] == "deliver" and message["run_id"] == run_id


def refusing_ses(monkeypatch, address: str) -> dict:
    """SES refuses (MessageRejected) what is sent to `address` while `state["refuse"]`."""
    client = wiring.mailer()._client
    real = client.send_raw_email
    state = {"refuse": True, "refused": 0}

    def send_raw_email(**kwargs):
        if state["refuse"] and kwargs["Destinations"] == [address]:
            state["refused"] += 1
            raise ClientError(
                {"Error": {"Code": "MessageRejected", "Message": "Email address is not verified."}},
                "SendRawEmail",
            )
        return real(**kwargs)

    monkeypatch.setattr(client, "send_raw_email", send_raw_email)
    return state


def test_every_queue_message_of_a_run_delivered_again_and_out_of_order_sends_and_counts_nothing_twice(
    api, streams, chalice_app
):
    people = customers(api, 24, without_consent=3, without_email=3)
    wanted = consenting(people)
    cmp = campaign(api, segment(api, streams), frequency_cap={"max_messages": 100, "per_days": 1})
    run_id = start_run(api, streams, cmp["id"])
    queue = CampaignsQueue(chalice_app, run_id)

    # Every message once, but for one delivery batch: the run stays open.
    kept: list[dict] = []

    def first_batch_with_mail(message: dict) -> bool:
        if kept or not delivers_of(run_id)(message) or not set(message["customer_ids"]) & set(wanted):
            return False
        kept.append(message)
        return True

    [kept_back] = queue.drain(hold=first_batch_with_mail)
    once = list(queue.delivered)
    assert {body(r)["type"] for r in once} == {"start", "walk", "deliver"}
    waiting = body(kept_back)["customer_ids"]
    open_run = run_of(api, cmp["id"], run_id)
    assert open_run["status"] == "running" and open_run["targeted"] == 30
    assert open_run["sent"] == len(set(wanted) - set(waiting))
    decided = recipients(api, cmp["id"], run_id)
    assert set(decided) == set(people) - set(waiting)
    mailed = mail()

    # Each of them received again, in order and then backwards, while the run is open. The
    # start's second delivery queues the walks again: walked before, they queue nothing.
    assert queue.redeliver(once + once[::-1], receives=2) == set()
    queue.drain()
    assert run_of(api, cmp["id"], run_id) == open_run
    assert recipients(api, cmp["id"], run_id) == decided
    assert mail() == mailed

    # The batch held back completes the run.
    assert queue.deliver([kept_back]) == set()
    done = run_of(api, cmp["id"], run_id)
    assert done["status"] == "completed" and done["completed_at"]
    assert counts(done) == {
        "targeted": 30,
        "sent": 24,
        "skipped": {"erased": 0, "no_consent": 3, "no_email": 3, "frequency_cap": 0, "no_recommendation": 0},
        "failed": 0,
    }
    final = recipients(api, cmp["id"], run_id)
    assert set(final) == set(people)

    # All of them once more, shuffled, after it completed.
    everything = [*once, kept_back]
    random.Random(13).shuffle(everything)
    assert queue.redeliver(everything, receives=3) == set()
    queue.drain()
    assert run_of(api, cmp["id"], run_id) == done
    assert shard_counts(run_id) == counts(done)  # not counted again behind the completed run
    assert recipients(api, cmp["id"], run_id) == final
    assert mail() == Counter({c["email"]: 1 for c in wanted.values()})
    for cid in people:
        messages = campaign_messages(api, cid)
        assert len(messages) == (1 if cid in wanted else 0), (cid, messages)
        assert all(m["run_id"] == run_id and m["direction"] == "outbound" for m in messages)


@pytest.mark.dynamodb_local  # threads: moto's in-process tables are not thread-safe
def test_two_workers_on_each_delivery_batch_at_once_send_each_customer_one_message(
    api, streams, chalice_app, monkeypatch
):
    people = customers(api, 12, without_consent=2)
    cmp = campaign(api, segment(api, streams))
    run_id = start_run(api, streams, cmp["id"])
    queue = CampaignsQueue(chalice_app, run_id)
    batches = queue.drain(hold=delivers_of(run_id))
    assert sum(len(body(r)["customer_ids"]) for r in batches) == 14

    # Both workers read the batch's decisions before either writes one.
    barrier = threading.Barrier(2, timeout=20)
    real = CampaignSendRepository.decisions

    def decisions(self, run, customer_ids):
        found = real(self, run, customer_ids)
        barrier.wait()
        return found

    monkeypatch.setattr(CampaignSendRepository, "decisions", decisions)
    assert wiring.mailer()._client  # made before the threads: boto3 makes clients unsafely
    with ThreadPoolExecutor(max_workers=2) as pool:
        for record in batches:
            assert list(pool.map(queue.invoke, [[duplicate(record)], [duplicate(record)]])) == [set(), set()]

    done = run_of(api, cmp["id"], run_id)
    assert done["status"] == "completed"
    assert (done["targeted"], done["sent"], done["skipped"]["no_consent"], done["failed"]) == (14, 12, 2, 0)
    assert shard_counts(run_id) == counts(done)
    assert mail() == Counter({c["email"]: 1 for c in consenting(people).values()})
    assert {outcome for outcome, _ in recipients(api, cmp["id"], run_id).values()} == {"sent", "skipped"}


@pytest.mark.dynamodb_local  # threads, and the send log's conditional write where DynamoDB does it
def test_two_campaigns_racing_for_a_cap_of_one_send_each_customer_one_message(
    api, streams, chalice_app, monkeypatch
):
    people = customers(api, 3)
    segment_id = segment(api, streams)
    first, second = (campaign(api, segment_id, name=name) for name in ("Winter", "Spring"))
    runs = {c["id"]: start_run(api, streams, c["id"]) for c in (first, second)}
    queue = CampaignsQueue(chalice_app, *runs.values())
    held = queue.drain(hold=lambda message: message["type"] == "deliver")
    pairs = defaultdict(list)  # the same members, in the same batches, for both runs
    for record in held:
        pairs[tuple(body(record)["customer_ids"])].append(record)
    assert sorted(len(p) for p in pairs.values()) == [2] * len(pairs)

    # Both deliveries read their customers' send logs (one batch read each) before either
    # counts a send in them.
    barriers = defaultdict(lambda: threading.Barrier(2, timeout=20))
    lock = threading.Lock()
    real = CampaignSendRepository.send_logs

    def send_logs(self, customer_ids):
        customer_ids = list(customer_ids)
        logs = real(self, customer_ids)
        with lock:
            barrier = barriers[tuple(sorted(customer_ids))]
        barrier.wait()
        return logs

    monkeypatch.setattr(CampaignSendRepository, "send_logs", send_logs)
    assert wiring.mailer()._client
    with ThreadPoolExecutor(max_workers=2) as pool:
        for pair in pairs.values():
            assert list(pool.map(queue.invoke, [[r] for r in pair])) == [set(), set()]
    monkeypatch.setattr(CampaignSendRepository, "send_logs", real)

    done = [run_of(api, cid, rid) for cid, rid in runs.items()]
    assert [r["status"] for r in done] == ["completed", "completed"]
    assert sum(r["sent"] for r in done) == 3
    assert sum(r["skipped"]["frequency_cap"] for r in done) == 3
    assert mail() == Counter({c["email"]: 1 for c in people.values()})
    for cid in people:
        outcomes = sorted(recipients(api, c, r)[cid] for c, r in runs.items())
        assert outcomes == [("sent", None), ("skipped", "frequency_cap")]
        assert len(wiring.campaign_send_repository().send_log(cid).times) == 1


def test_a_message_ses_refuses_is_retried_then_failed_and_a_later_run_still_sends_it(
    api, streams, chalice_app, monkeypatch
):
    from chalicelib.events.campaigns import MAX_RECEIVES

    people = customers(api, 9)  # nine customers in eight shards: one batch has two or more
    cmp = campaign(api, segment(api, streams))  # at most one message a week
    run_id = start_run(api, streams, cmp["id"])
    queue = CampaignsQueue(chalice_app, run_id)
    held = queue.drain(hold=delivers_of(run_id))
    batch = max(held, key=lambda r: len(body(r)["customer_ids"]))
    refused, *others = body(batch)["customer_ids"]
    assert others
    ses = refusing_ses(monkeypatch, people[refused]["email"])
    assert all(queue.deliver([r]) == set() for r in held if r is not batch)

    for receives in range(1, MAX_RECEIVES):
        assert queue.invoke([again(batch, receives)]) == {batch["messageId"]}  # received again later
        decided = recipients(api, cmp["id"], run_id)
        assert refused not in decided and all(decided[c] == ("sent", None) for c in others)
        assert run_of(api, cmp["id"], run_id)["status"] == "running"
        assert wiring.campaign_send_repository().send_log(refused).times == ()  # the claim given back
    assert ses["refused"] == MAX_RECEIVES - 1

    # Its last receive records it failed; the message goes on to the dead-letter queue.
    assert queue.invoke([again(batch, MAX_RECEIVES)]) == {batch["messageId"]}
    assert recipients(api, cmp["id"], run_id)[refused] == ("failed", "mail_refused")
    done = run_of(api, cmp["id"], run_id)
    assert done["status"] == "completed"
    assert (done["targeted"], done["sent"], done["failed"]) == (9, 8, 1)
    assert done["targeted"] == done["sent"] + sum(done["skipped"].values()) + done["failed"]
    assert mail() == Counter({people[c]["email"]: 1 for c in people if c != refused})
    assert wiring.campaign_send_repository().send_log(refused).times == ()

    # Within the cap's week, the next run sends to them alone, now that SES takes it.
    ses["refuse"] = False
    later = start_run(api, streams, cmp["id"])
    queue = CampaignsQueue(chalice_app, later)
    queue.drain()
    again_run = run_of(api, cmp["id"], later)
    assert again_run["status"] == "completed"
    assert (again_run["sent"], again_run["skipped"]["frequency_cap"]) == (1, 8)
    assert recipients(api, cmp["id"], later)[refused] == ("sent", None)
    assert mail() == Counter({c["email"]: 1 for c in people.values()})


def test_a_claim_left_by_a_worker_that_stopped_after_ses_is_failed_once_stale_and_never_sent_again(
    api, streams, chalice_app, monkeypatch, frozen_clock
):
    people = customers(api, 9)
    cmp = campaign(api, segment(api, streams))
    run_id = start_run(api, streams, cmp["id"])
    queue = CampaignsQueue(chalice_app, run_id)
    held = queue.drain(hold=delivers_of(run_id))
    batch = max(held, key=lambda r: len(body(r)["customer_ids"]))
    stopped, *others = body(batch)["customer_ids"]
    assert others
    assert all(queue.deliver([r]) == set() for r in held if r is not batch)

    # SES takes the message, and the worker never hears back.
    client = wiring.mailer()._client
    real = client.send_raw_email
    timing_out = {"on": True}

    def send_raw_email(**kwargs):
        reply = real(**kwargs)
        if timing_out["on"] and kwargs["Destinations"] == [people[stopped]["email"]]:
            timing_out["on"] = False
            raise ReadTimeoutError(endpoint_url="https://email.eu-north-1.amazonaws.com/")
        return reply

    monkeypatch.setattr(client, "send_raw_email", send_raw_email)
    assert queue.invoke([again(batch, 1)]) == {batch["messageId"]}
    assert mail()[people[stopped]["email"]] == 1
    assert stopped not in recipients(api, cmp["id"], run_id)  # claimed: neither sent nor failed

    # Received again while the claim is fresh: it may still be being sent, so it waits.
    frozen_clock.advance(timedelta(minutes=1))
    assert queue.invoke([again(batch, 2)]) == {batch["messageId"]}
    decided = recipients(api, cmp["id"], run_id)
    assert stopped not in decided and all(decided[c] == ("sent", None) for c in others)
    assert run_of(api, cmp["id"], run_id)["status"] == "running"

    # Once the claim is stale it is failed, unconfirmed, and nothing is sent again.
    frozen_clock.advance(STALE_CLAIM)
    assert queue.invoke([again(batch, 3)]) == set()
    assert recipients(api, cmp["id"], run_id)[stopped] == ("failed", "unconfirmed")
    done = run_of(api, cmp["id"], run_id)
    assert (done["status"], done["targeted"], done["sent"], done["failed"]) == ("completed", 9, 8, 1)
    assert mail() == Counter({c["email"]: 1 for c in people.values()})
    assert campaign_messages(api, stopped) == []  # not confirmed, so not on the timeline
    # The message may have gone: the send stays counted against the cap.
    assert len(wiring.campaign_send_repository().send_log(stopped).times) == 1


def _largest_templates() -> dict:
    """MAX_LANGUAGES languages, each a 200-character subject and a body, of 4-byte characters,
    MAX_TEMPLATE_BYTES in all (a 10,000-character body of them each would be over it)."""
    languages = ["en", "sv", "fi", "sl", "tl", "de", "fr", "es"][:MAX_LANGUAGES]
    subject = "😀" * 199 + "!"
    placeholder = "{{ name }}"
    body_bytes = MAX_TEMPLATE_BYTES // len(languages) - len(subject.encode())
    fours, ones = divmod(body_bytes - len(placeholder), 4)
    assert fours + ones + len(placeholder) <= 10_000
    templates = {
        lang: {"subject": subject, "body": "𠀋" * fours + "x" * ones + placeholder} for lang in languages
    }
    size = sum(len(t[part].encode()) for t in templates.values() for part in ("subject", "body"))
    assert size == MAX_TEMPLATE_BYTES
    return templates


@pytest.mark.dynamodb_local  # DynamoDB's own 400 KB item limit
def test_the_largest_campaign_is_stored_and_read_back_and_one_byte_more_is_a_400(api, streams):
    segment_id = segment(api, streams)
    templates = _largest_templates()
    created = campaign(api, segment_id, templates=templates, status="draft")
    read = api.get(f"/campaigns/{created['id']}")
    assert read.status == 200
    assert read.json["templates"] == templates == created["templates"]

    over = copy.deepcopy(templates)
    over["fi"]["body"] = "x" + over["fi"]["body"]
    assert_problem(
        api.post("/campaigns", {"name": "Too big", "segment_id": segment_id, "templates": over}),
        400,
        "templates",
    )
    changed = api.patch(
        f"/campaigns/{created['id']}", {"templates": over}, headers={"If-Match": read.headers["etag"]}
    )
    assert_problem(changed, 400, "templates")


def test_a_delivery_fails_its_customers_on_as_many_receives_as_the_campaigns_queue_allows():
    from chalicelib.events.campaigns import MAX_RECEIVES

    queue = INFRA["Resources"]["CampaignsQueue"]["Properties"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == MAX_RECEIVES
