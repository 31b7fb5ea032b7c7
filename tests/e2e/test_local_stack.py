"""The local stack over loopback: `python -m chalicelib.local.run` started as `make run` starts it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest

from chalicelib.local import dynamodb_local

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 180


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Lines:
    """Everything a pipe delivers, read in a thread so the process never blocks on a full pipe."""

    def __init__(self, pipe) -> None:
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._closed = False
        threading.Thread(target=self._read, args=(pipe,), daemon=True).start()

    def _read(self, pipe) -> None:
        for line in pipe:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wait_for(self, prefix: str, timeout: float) -> str | None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.lines if line.startswith(prefix)), None)
                if found is not None or self._closed or time.monotonic() > deadline:
                    return found
                self._changed.wait(0.2)

    def wait_closed(self, timeout: float) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._closed, timeout)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


class _Stack:
    def __init__(self, ports: dict[str, int], **env: str) -> None:
        self.ports = ports
        self.token = ""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.local.run"],
            cwd=ROOT,
            env={
                **os.environ,
                **{k: str(v) for k, v in ports.items()},
                "CRM_SEED": "1",
                "PYTHONUNBUFFERED": "1",
                **env,
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )
        self.stdout = _Lines(self.process.stdout)
        self.stderr = _Lines(self.process.stderr)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.ports['CRM_API_PORT']}"

    @property
    def control(self) -> str:
        return f"http://127.0.0.1:{self.ports['CRM_CONTROL_PORT']}"

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout)
        self.stdout.wait_closed(5)
        self.stderr.wait_closed(5)
        return code

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _ports(**fixed: int) -> dict[str, int]:
    names = ("CRM_AWS_PORT", "CRM_API_PORT", "CRM_CONTROL_PORT", "CRM_DYNAMODB_PORT")
    ports = {name: _free_port() for name in names}
    return {**ports, **fixed}


def started_stack(**env: str):
    """A module fixture's body: a stack on free ports, yielded once it printed its token."""
    running = _Stack(_ports(), **env)
    try:
        line = running.stdout.wait_for("Staff token: ", STARTUP_SECONDS)
        if line is None:
            pytest.fail(f"no 'Staff token:' line within {STARTUP_SECONDS} s; stderr:\n{running.stderr.text}")
        running.token = line.removeprefix("Staff token: ").strip()
        running.stdout.wait_for("Try: ", 5)  # the last line of startup
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def stack():
    # As `make run` logs: tests/conftest.py quietens Powertools for the suite's own process.
    yield from started_stack(POWERTOOLS_LOG_LEVEL="INFO")


def _call(
    method: str, url: str, token: str | None = None, body: Any = None
) -> tuple[int, dict[str, str], Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, response_headers, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, response_headers, raw = error.code, error.headers, error.read()
    return status, dict(response_headers.items()), json.loads(raw) if raw else None


def test_every_curl_example_of_the_readme_works_against_the_demo_data_as_printed(stack, tmp_path):
    # First in this module, so the examples meet the demo data as `make run` leaves it; they
    # change it (create, update, erase), and the tests after them do not depend on it.
    from tests.e2e import readme_examples

    aws = f"http://127.0.0.1:{stack.ports['CRM_AWS_PORT']}"
    outcomes = readme_examples.run(ROOT / "README.md", stack.api, stack.control, aws, ROOT, tmp_path)

    assert len(outcomes) >= 30
    failures = [
        f"#{o.example.number} {o.problem()}: {o.example.command[:160]}\n    {o.body[:300]!r}"
        for o in outcomes
        if o.problem()
    ]
    assert not failures, "\n".join(failures)


def test_startup_prints_the_url_a_token_and_how_to_use_them(stack):
    stdout = stack.stdout.text
    assert f"CRM API: {stack.api}" in stdout.splitlines()
    assert f'Try: curl -H "Authorization: Bearer $TOKEN" {stack.api}/customers' in stdout
    assert "memory" in stdout


def test_startup_is_one_line_per_step_with_its_duration_and_request_logs_come_after_the_url(stack):
    lines = stack.stdout.lines
    url_at = lines.index(f"CRM API: {stack.api}")
    before = lines[:url_at]
    steps = [line for line in before if line.startswith("[")]
    assert len(steps) >= 5, before
    assert all(line.rstrip().endswith(" s)") for line in steps), steps
    assert not [line for line in before if line.startswith("{")], "request logs before the URL"
    expected = "DynamoDB Local" if dynamodb_local.why_unavailable() is None else "moto"
    assert any(f"tables on {expected}" in line for line in steps), steps

    assert _call("GET", f"{stack.api}/customers?limit=1", stack.token)[0] == 200
    assert stack.stdout.wait_for('{"level":"INFO"', 5) is not None, "no request log after the URL"


def test_without_java_the_stack_runs_on_moto_and_says_so_in_one_line():
    # No java (and no npm) on PATH: the interpreter is called by its full path.
    bare = _Stack(_ports(), CRM_SEED="0", PATH="/nonexistent")
    try:
        line = bare.stdout.wait_for("CRM API: ", 60)
        assert line is not None, bare.stderr.text
        notices = [line for line in bare.stdout.lines if line.startswith("DynamoDB Local not used")]
        assert len(notices) == 1 and "java" in notices[0], bare.stdout.text
        assert any("tables on moto" in line for line in bare.stdout.lines)

        # A second process serves the API from the same socket.
        assert len(_children(bare.process.pid, b"chalicelib.local.api_worker")) == 1
        assert _call("GET", f"{bare.api}/health")[0] == 200
        # The consumers run in a process of their own; without them the stack stops, and says so.
        [consumers] = _children(bare.process.pid, b"chalicelib.local.consumers")
        os.kill(consumers, signal.SIGKILL)
        assert bare.wait(30) == 1
        assert "consumers" in bare.stderr.text and "Traceback" not in bare.stderr.text
    finally:
        bare.stop()


def _children(parent: int, module: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes()
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if ppid == parent and module in command:
                found.append(int(entry.name))
    return found


def test_health_answers_ok(stack):
    status, _, body = _call("GET", f"{stack.api}/health")

    assert (status, body) == (200, {"status": "ok"})


def test_the_seeded_customers_can_be_paged_through(stack):
    ids: list[str] = []
    pages = 0
    cursor = None
    while True:
        query = urllib.parse.urlencode({"limit": 5, **({"cursor": cursor} if cursor else {})})
        status, _, page = _call("GET", f"{stack.api}/customers?{query}", stack.token)
        assert status == 200, page
        pages += 1
        ids += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
        assert pages < 50

    assert len(ids) >= 12
    assert len(set(ids)) == len(ids)
    assert pages >= 3


def test_without_a_token_the_api_answers_401_with_a_problem(stack):
    status, headers, body = _call("GET", f"{stack.api}/customers")

    assert status == 401
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["status"] == 401


def test_an_unknown_path_is_a_404_problem(stack):
    status, headers, body = _call("GET", f"{stack.api}/no/such/path", stack.token)
    assert status == 404
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["status"] == 404


def test_a_created_customer_can_be_read_back_and_given_an_interaction(stack):
    email = f"e2e-{uuid.uuid4().hex[:8]}@example.com"
    status, headers, created = _call(
        "POST", f"{stack.api}/customers", stack.token, {"name": "Edda Tester", "email": email}
    )
    assert status == 201, created

    status, _, read = _call("GET", f"{stack.api}/customers/{created['id']}", stack.token)
    assert status == 200
    assert (read["name"], read["email"]) == ("Edda Tester", email)
    assert headers["Location"] == f"/customers/{created['id']}"

    interaction = {
        "type": "inquiry",
        "channel": "email",
        "occurred_at": "2026-01-15T10:00:00Z",
        "note": "Asked about opening hours.",
    }
    status, _, recorded = _call(
        "POST", f"{stack.api}/customers/{created['id']}/interactions", stack.token, interaction
    )
    assert status == 201, recorded


def test_a_purchase_shows_in_the_customers_loyalty_within_2_seconds(stack):
    status, _, customer = _call("POST", f"{stack.api}/customers", stack.token, {"name": "Lojal Kund"})
    assert status == 201
    purchase = {
        "type": "purchase",
        "channel": "web",
        "currency": "EUR",
        "items": [{"sku": "SKU-COFFEE-500", "name": "Kaffe", "quantity": 2, "unit_price": "6.45"}],
    }
    assert (
        _call("POST", f"{stack.api}/customers/{customer['id']}/interactions", stack.token, purchase)[0] == 201
    )
    deadline = time.monotonic() + 2.0
    loyalty = None
    while time.monotonic() < deadline:
        _, _, loyalty = _call("GET", f"{stack.api}/customers/{customer['id']}/loyalty", stack.token)
        if loyalty["frequency"] == 1:
            break
        time.sleep(0.05)
    assert loyalty is not None and loyalty["frequency"] == 1, loyalty
    assert loyalty["monetary"] == "12.90"
    assert loyalty["purchase_habits"][0]["sku"] == "SKU-COFFEE-500"


def test_a_complaint_is_acknowledged_within_2_seconds(stack):
    status, _, customer = _call(
        "POST",
        f"{stack.api}/customers",
        stack.token,
        {
            "name": "Saša Kovačič",
            "preferred_name": "Saša",
            "locale": "sl",
            "email": f"sasa-{uuid.uuid4().hex[:8]}@example.com",
        },
    )
    assert status == 201
    complaint = {"type": "complaint", "channel": "web", "severity": "high", "subject": "Poškodovan paket"}
    assert (
        _call("POST", f"{stack.api}/customers/{customer['id']}/interactions", stack.token, complaint)[0]
        == 201
    )
    deadline = time.monotonic() + 2.0
    cases: list = []
    while time.monotonic() < deadline:
        _, _, page = _call("GET", f"{stack.api}/customers/{customer['id']}/cases", stack.token)
        cases = page["items"]
        if cases and cases[0]["status"] == "acknowledged":
            break
        time.sleep(0.05)
    assert cases and cases[0]["status"] == "acknowledged", cases
    _, _, messages = _call(
        "GET", f"{stack.api}/customers/{customer['id']}/interactions?type=message", stack.token
    )
    [message] = messages["items"]
    assert message["direction"] == "outbound" and "Saša" in message["text"] and "v 4 urah" in message["text"]


def _job_when_done(stack, location: str, token: str) -> dict:
    assert _call("POST", f"{stack.control}/drain?timeout=30")[0] == 200
    status, _, job = _call("GET", f"{stack.api}{location}", token)
    assert status == 200 and job["status"] == "completed", job
    return job


def test_an_export_job_links_to_its_document_in_the_local_s3_and_an_erasure_job_removes_it(stack):
    status, _, customer = _call(
        "POST", f"{stack.api}/customers", stack.token, {"name": "Aino Export", "email": "aino@example.fi"}
    )
    assert status == 201
    status, headers, job = _call("POST", f"{stack.api}/customers/{customer['id']}/exports", stack.token)
    assert status == 202 and headers["Location"] == f"/jobs/{job['id']}"

    url = _job_when_done(stack, headers["Location"], stack.token)["result"]["download_url"]
    # moto's S3, on the stack's AWS port: the link works from this machine, signed and all.
    assert url.startswith(f"http://127.0.0.1:{stack.ports['CRM_AWS_PORT']}/")
    with urllib.request.urlopen(url, timeout=10) as response:
        document = json.loads(response.read())
    assert document["customer"]["email"] == "aino@example.fi"

    status, headers, erasure = _call("POST", f"{stack.api}/customers/{customer['id']}/erase", stack.token)
    assert status == 202 and erasure["kind"] == "erasure"
    _job_when_done(stack, headers["Location"], stack.token)
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(url, timeout=10)
    assert _call("GET", f"{stack.api}/jobs/{job['id']}", stack.token)[0] == 404


def test_the_daily_loyalty_refresh_can_be_run_now(stack):
    status, _, body = _call("GET", f"{stack.control}/schedules")
    assert status == 200
    assert "refresh_loyalty_tiers" in str(body["schedules"])
    assert _call("POST", f"{stack.control}/schedules/refresh_loyalty_tiers")[0] == 200


def test_the_control_endpoint_answers_and_knows_the_schedules(stack):
    status, _, body = _call("GET", f"{stack.control}/health")
    assert (status, body) == (200, {"status": "ok"})
    status, _, body = _call("GET", f"{stack.control}/schedules")
    assert status == 200 and isinstance(body["schedules"], list)
    assert _call("POST", f"{stack.control}/schedules/no_such_schedule")[0] == 404


def test_drain_returns_once_what_was_written_before_it_is_consumed(stack):
    aino = {"name": "Aino Virtanen", "locale": "fi", "email": f"aino.{uuid.uuid4().hex[:6]}@example.fi"}
    status, _, customer = _call("POST", f"{stack.api}/customers", stack.token, aino)
    assert status == 201
    complaint = {"type": "complaint", "channel": "phone", "severity": "low", "subject": "Lasku väärin"}
    path = f"{stack.api}/customers/{customer['id']}/interactions"
    assert _call("POST", path, stack.token, complaint)[0] == 201

    assert _call("POST", f"{stack.control}/drain?timeout=30") == (200, ANY, {"status": "drained"})

    _, _, page = _call("GET", f"{stack.api}/customers/{customer['id']}/cases", stack.token)
    assert [case["status"] for case in page["items"]] == ["acknowledged"]
    assert _call("POST", f"{stack.control}/drain?timeout=soon")[0] == 400


def test_an_outbound_webhook_reaches_the_local_receiver_signed_and_a_failing_one_is_retried(stack):
    from standardwebhooks import Webhook

    name = f"e2e{uuid.uuid4().hex[:8]}"
    subscribe = {"url": f"{stack.control}/hooks/{name}", "events": ["customer.created"]}
    status, _, sub = _call("POST", f"{stack.api}/webhook-subscriptions", stack.token, subscribe)
    assert status == 201, sub
    failing = {"url": f"{stack.control}/hooks/{name}-down?answer=503", "events": ["customer.created"]}
    status, _, down = _call("POST", f"{stack.api}/webhook-subscriptions", stack.token, failing)
    assert status == 201, down
    fields = {"name": "Åsa Hook", "email": f"{name}@example.se"}
    status, _, customer = _call("POST", f"{stack.api}/customers", stack.token, fields)
    assert status == 201

    assert _call("POST", f"{stack.control}/drain?timeout=60")[0] == 200
    _, _, got = _call("GET", f"{stack.control}/hooks/{name}")
    [delivered] = got["received"]
    payload = Webhook(sub["secret"]).verify(delivered["body"].encode(), delivered["headers"])
    assert payload["type"] == "customer.created" and payload["data"]["id"] == customer["id"]
    assert payload["data"]["name"] == "Åsa Hook"
    _, _, page = _call("GET", f"{stack.api}/webhook-subscriptions/{sub['id']}/deliveries", stack.token)
    assert [(d["status"], d["attempts"][0]["status_code"]) for d in page["items"]] == [("succeeded", 204)]

    _, _, page = _call("GET", f"{stack.api}/webhook-subscriptions/{down['id']}/deliveries", stack.token)
    [pending] = page["items"]
    assert pending["status"] == "pending" and pending["attempts"][0]["status_code"] == 503
    assert pending["next_attempt_at"] is not None
    for sub_id in (sub["id"], down["id"]):
        assert _call("DELETE", f"{stack.api}/webhook-subscriptions/{sub_id}", stack.token)[0] == 204


def test_a_second_stack_on_the_same_api_port_exits_with_a_one_line_message(stack):
    second = _Stack(_ports(CRM_API_PORT=stack.ports["CRM_API_PORT"]))
    try:
        code = second.wait(30)
    finally:
        second.stop()

    stderr = second.stderr.text.strip()
    assert code != 0
    assert "Traceback" not in stderr
    assert stderr.splitlines() == [stderr]
    assert str(stack.ports["CRM_API_PORT"]) in stderr and "CRM_API_PORT" in stderr


def test_sigint_stops_the_stack_cleanly(stack):
    stack.process.send_signal(signal.SIGINT)

    assert stack.wait(10) == 0
    assert "Traceback" not in stack.stderr.text
