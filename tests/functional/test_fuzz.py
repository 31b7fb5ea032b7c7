"""Schema-driven fuzzing (schemathesis) of the served OpenAPI document, through the same HTTP
path as every functional test: no request it generates, valid or not, is answered with a 5xx,
every 4xx is a problem+json, and every answer keeps the document (tests/functional/contract.py
checks status, headers and body of each exchange).

A short budget here (CRM_FUZZ_EXAMPLES, default 6 per operation and mode, the same examples on
every run); `make fuzz` runs it with 150 new ones (CRM_FUZZ_RANDOM=1). Hypothesis keeps no
database (the tree stays clean); a failure prints the request as a curl command.
"""

from __future__ import annotations

import json
import os
from urllib.parse import urlencode

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from tests.functional.conftest import Api

EXAMPLES = int(os.environ.get("CRM_FUZZ_EXAMPLES", "6"))
# The suite's examples are the same on every run (a failure is never a fluke of one run);
# `make fuzz` draws new ones each time.
RANDOM = os.environ.get("CRM_FUZZ_RANDOM") == "1"


def _send(api: Api, case: schemathesis.Case) -> tuple[int, str, bytes]:
    kwargs = case.as_transport_kwargs(
        base_url="http://crm.test", headers={"Authorization": f"Bearer {api.bearer}"}
    )
    path = kwargs["url"].removeprefix("http://crm.test")
    if kwargs.get("params"):
        path += ("&" if "?" in path else "?") + urlencode(kwargs["params"], doseq=True)
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() != "content-length"}
    if "json" in kwargs:
        raw: bytes | str | None = json.dumps(kwargs["json"], ensure_ascii=False)
        headers.setdefault("Content-Type", "application/json")
    else:
        raw = kwargs.get("data")
        if isinstance(raw, dict):
            raw = urlencode(raw)
    reply = api.request(case.method, path, raw=raw, headers=headers, auth=False)
    return reply.status, reply.content_type, reply.body


def test_no_generated_request_is_a_server_error(api):
    # Each operation in turn, valid and invalid requests, with hypothesis driving schemathesis's
    # strategies directly (its pytest plugin's subtests do not run under xdist).
    document = api.get("/openapi.json").json
    operations = [result.ok() for result in schemathesis.openapi.from_dict(document).get_all_operations()]
    assert len(operations) > 30

    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(api, operation, mode)


def _fuzz(api: Api, operation, mode: GenerationMode) -> None:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=not RANDOM,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def answered_below_500(case):
        status, content_type, body = _send(api, case)
        where = f"{operation.label} ({mode.value}): {case.as_curl_command()}"
        assert status < 500, (where, status, body[:500])
        if status >= 400:
            assert content_type.startswith("application/problem+json"), (where, status)

    try:
        answered_below_500()
    except Unsatisfiable:
        # No invalid request exists for an operation without parameters or body (GET /health).
        if mode is not GenerationMode.NEGATIVE:
            raise
