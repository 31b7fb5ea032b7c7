"""A write the API rejects must not stop the stream consumers: afterwards a complaint still gets
its case.

On moto a rejected write is a cancelled TransactWriteItems, after which moto swaps in a copy of the
table with a new stream shard object; an event pump that followed its old shard iterator never
saw another record (chalicelib/local/pump_streams.py). The stack runs on moto here, where that happened.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests.e2e.test_local_stack import _call, _Stack, started_stack

CASE_SECONDS = 10.0


@pytest.fixture(scope="module")
def stack():
    # moto is where a cancelled transaction swaps the table; DynamoDB Local never does. No demo
    # data: the consumers are running before the test's first write (on moto, a seed takes 40 s).
    yield from started_stack(CRM_LOCAL_DYNAMODB="moto", CRM_SEED="0")


def _cases(stack: _Stack, customer_id: str, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        status, _, page = _call("GET", f"{stack.api}/customers/{customer_id}/cases", stack.token)
        assert status == 200, page
        if page["items"] or time.monotonic() > deadline:
            return page["items"]
        time.sleep(0.1)


def test_after_rejected_writes_a_complaint_still_gets_its_case(stack):
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    status, _, customer = _call(
        "POST", f"{stack.api}/customers", stack.token, {"name": "Rita Rejected", "email": email}
    )
    assert status == 201, customer
    complaint = {
        "type": "complaint",
        "channel": "web",
        "severity": "high",
        "subject": "Parcel arrived broken",
    }

    status, _, problem = _call(
        "POST", f"{stack.api}/customers", stack.token, {"name": "Rita Again", "email": email}
    )
    assert status == 409, problem
    unknown = f"cus_doesnotexist{uuid.uuid4().hex[:8]}"
    status, _, problem = _call(
        "POST", f"{stack.api}/customers/{unknown}/interactions", stack.token, complaint
    )
    assert status == 404, problem
    status, _, recorded = _call(
        "POST", f"{stack.api}/customers/{customer['id']}/interactions", stack.token, complaint
    )
    assert status == 201, recorded

    cases = _cases(stack, customer["id"], CASE_SECONDS)

    assert [(case["interaction_id"], case["subject"]) for case in cases] == [
        (recorded["id"], "Parcel arrived broken")
    ], stack.stderr.text[-2000:]
