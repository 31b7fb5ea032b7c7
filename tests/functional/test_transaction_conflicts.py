"""DynamoDB cancels a transaction with reason TransactionConflict when another one is working
on the same items; the SDK does not retry it. The store sends the same request again with
backoff, and tells the client to come back (503, Retry-After) only when that keeps failing.
The error is injected as botocore raises it, under PynamoDB, so all of its parsing runs."""

from __future__ import annotations

import pytest

from tests.functional.conftest import assert_problem


def _cancelled(client, reasons: list[str]) -> Exception:
    """TransactionCanceledException as botocore raises it from DynamoDB's answer."""
    response = {
        "Error": {
            "Code": "TransactionCanceledException",
            "Message": f"Transaction cancelled, please refer cancellation reasons for specific reasons "
            f"{reasons}",
        },
        "CancellationReasons": [
            {"Code": code, **({"Message": "Transaction is ongoing for the item"} if code != "None" else {})}
            for code in reasons
        ],
        "ResponseMetadata": {"HTTPStatusCode": 400, "RequestId": "injected"},
    }
    return client.exceptions.TransactionCanceledException(response, "TransactWriteItems")


@pytest.fixture
def conflicts(client, monkeypatch):
    """`conflicts(n, reasons)`: the next n TransactWriteItems are cancelled with `reasons`
    before they reach DynamoDB; returns the calls made from then on (True: cancelled)."""
    from chalicelib.config import get_settings
    from chalicelib.store import transactions

    dynamodb = transactions.connection(get_settings().region).client
    sent = dynamodb._make_api_call
    calls: list[bool] = []
    plan = {"left": 0, "reasons": ["None"]}

    def make_api_call(operation_name, api_params):
        if operation_name == "TransactWriteItems":
            cancel = plan["left"] > 0
            calls.append(cancel)
            if cancel:
                plan["left"] -= 1
                raise _cancelled(dynamodb, plan["reasons"])
        return sent(operation_name, api_params)

    monkeypatch.setattr(dynamodb, "_make_api_call", make_api_call)

    def arm(times: int, reasons: list[str]) -> list[bool]:
        plan["left"], plan["reasons"] = times, reasons
        calls.clear()
        return calls

    return arm


VISIT = {"type": "visit", "channel": "store", "note": "came by"}


def test_a_write_cancelled_by_conflicts_is_sent_again_and_written_once(api, conflicts):
    customer = api.create_customer()
    calls = conflicts(2, ["None", "TransactionConflict"])

    created = api.post(f"/customers/{customer['id']}/interactions", VISIT)

    assert created.status == 201, created.json
    assert calls == [True, True, False]
    assert [i["id"] for i in api.get(f"/customers/{customer['id']}/interactions").json["items"]] == [
        created.json["id"]
    ]


def test_conflicts_that_keep_coming_are_a_503_with_retry_after_and_nothing_is_written(api, conflicts):
    customer = api.create_customer()
    calls = conflicts(100, ["TransactionConflict", "None"])

    reply = api.post(f"/customers/{customer['id']}/interactions", VISIT)

    problem = assert_problem(reply, 503)
    assert reply.headers["retry-after"] == "1"
    assert "nothing was written" in problem["detail"]
    assert calls == [True] * 4
    assert api.get(f"/customers/{customer['id']}/interactions").json["items"] == []


def test_a_failed_condition_beside_a_conflict_is_not_retried(api, conflicts):
    customer = api.create_customer()
    calls = conflicts(1, ["ConditionalCheckFailed", "TransactionConflict"])

    reply = api.post(f"/customers/{customer['id']}/interactions", VISIT)

    assert_problem(reply, 404)  # the profile's condition failed: to the store, the customer is gone
    assert calls == [True]


def test_a_customer_create_cancelled_by_a_conflict_is_not_taken_for_a_used_email(api, conflicts):
    calls = conflicts(100, ["None", "TransactionConflict", "None"])

    reply = api.post("/customers", {"name": "Liisa Laine", "email": "liisa@example.fi"})

    assert_problem(reply, 503)
    assert len(calls) == 4
