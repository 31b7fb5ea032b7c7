"""The local stack's event consumers, in a process of their own: `python -m chalicelib.local.consumers`.

`chalicelib.local.run` starts it once the tables and queues exist, with the stack's environment
(endpoints, table and queue names). It runs the app's stream, queue and schedule handlers with
the event pump, one polling thread per event source, and serves the control endpoint. A
process apart from the API, as Lambda runs consumers apart from the API's functions: the
request threads and the consumers do not share one interpreter lock, so a busy API does not
starve the consumers (measured in `make bench`: in one process, under load, the consumers fell
50 s behind).

Environment (run.py sets it):
    CRM_STAGE                     stage in .chalice/config.json (default local)
    CRM_CONTROL_PORT              the control endpoint below (default 8001)
    CRM_LOCAL_DYNAMODB            local: the streams are DynamoDB Local's (NextShardIterator is
                                  followed); otherwise moto's (a fresh iterator on every poll)
    CRM_STREAM_FAILURE_QUEUE_URL  where stream batches the pump gives up on go (else logged)
    CRM_CONSUMERS_QUIET           1: the handlers log at WARNING until the first /drain
                                  returns (the demo seed is not worth a line per record)

Every stream is read from its trim horizon: the stack's streams are as new as its tables, so
that is every change made since the tables were created, for LATEST handlers too.

Control endpoint, on 127.0.0.1:CRM_CONTROL_PORT:
    GET  /health            200 {"status": "ok"} once the consumers run
    GET  /schedules         200 {"schedules": [names]}
    POST /schedules/{name}  runs that schedule handler now, as EventBridge would:
                            200 when it returned, 404 for an unknown name, 500 if it raised
    POST /drain?timeout=S   200 once everything written before the request has been consumed
                            (streams read, queues empty), 504 if that takes longer than S
                            seconds (default 60)
    GET  /mail?to=ADDRESS   200 {"messages": [...]}: the mail SES (moto) took, oldest first,
                            each {"id", "to", "subject", "headers", "text"}; `to` filters by
                            recipient (read from moto's /moto-api/data.json at AWS_ENDPOINT_URL)
    POST /hooks/{name}      a webhook receiver for outbound webhooks (CRM_WEBHOOK_ALLOW_HOSTS
                            lets the local stage deliver here): records the request and answers
                            204, or the status `?answer=` names (e.g. 500, 410: to see retries)
    GET  /hooks/{name}      200 {"received": [...]}: what was posted to that receiver, oldest
                            first, each {"at", "headers" (webhook-*, content-type), "body"}

SIGTERM or SIGINT stops it (status 0); so does the end of the process that started it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chalicelib.local.processes import Stop, exit_now, stop_on_signals, while_parent_lives

HOST = "127.0.0.1"
DEFAULT_DRAIN_TIMEOUT_S = 60.0
HOOKS = "/hooks/"
MAX_HOOK_BODY = 64 * 1024
MAX_HOOKS_KEPT = 1000  # per receiver name, the newest
log = logging.getLogger("chalicelib.local.consumers")


class _ControlHandler(BaseHTTPRequestHandler):
    server: _ControlHTTPServer

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if url.path.startswith(HOOKS):
            with self.server.hooks_lock:
                received = list(self.server.hooks.get(url.path[len(HOOKS) :], ()))
            self._reply(HTTPStatus.OK, {"received": received})
        elif url.path == "/mail":
            to = parse_qs(url.query).get("to", [""])[0]
            self._reply(HTTPStatus.OK, {"messages": sent_mail(os.environ["AWS_ENDPOINT_URL"], to)})
        elif self.path == "/health":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        elif self.path == "/schedules":
            self._reply(HTTPStatus.OK, {"schedules": sorted(self.server.pump.schedules)})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/drain":
            self._drain(parse_qs(url.query).get("timeout", [""])[0])
            return
        if url.path.startswith(HOOKS) and len(url.path) > len(HOOKS):
            self._receive_hook(url.path[len(HOOKS) :], parse_qs(url.query).get("answer", [""])[0])
            return
        pump = self.server.pump
        prefix = "/schedules/"
        name = url.path[len(prefix) :] if url.path.startswith(prefix) else ""
        if name not in pump.schedules:
            self._reply(HTTPStatus.NOT_FOUND, {"error": f"no schedule {name!r}"})
            return
        try:
            pump.trigger(name)
        except Exception as error:
            log.exception("schedule %s failed", name)
            self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"schedule": name, "error": repr(error)})
            return
        self._reply(HTTPStatus.OK, {"schedule": name, "status": "ran"})

    def _receive_hook(self, name: str, answer: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, MAX_HOOK_BODY))
        kept = ("content-type", "webhook-id", "webhook-timestamp", "webhook-signature")
        with self.server.hooks_lock:
            received = self.server.hooks.setdefault(name, [])
            received.append(
                {
                    "at": time.time(),
                    "headers": {k.lower(): v for k, v in self.headers.items() if k.lower() in kept},
                    "body": body.decode("utf-8", "replace"),
                }
            )
            del received[:-MAX_HOOKS_KEPT]
        status = int(answer) if answer.isdigit() and 200 <= int(answer) <= 599 else 204
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _drain(self, timeout_text: str) -> None:
        try:
            timeout = float(timeout_text) if timeout_text else DEFAULT_DRAIN_TIMEOUT_S
        except ValueError:
            timeout = -1.0
        if not 0 < timeout <= 3600:
            problem = {"error": "timeout must be a number of seconds, 0 < S <= 3600"}
            self._reply(HTTPStatus.BAD_REQUEST, problem)
            return
        try:
            self.server.pump.wait_idle(timeout)
        except TimeoutError as error:
            self._reply(HTTPStatus.GATEWAY_TIMEOUT, {"status": "busy", "error": str(error)})
            return
        self.server.on_drained()
        self._reply(HTTPStatus.OK, {"status": "drained"})

    def _reply(self, status: HTTPStatus, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def sent_mail(aws_endpoint: str, to: str = "") -> list[dict]:
    """What moto's SES took (SendEmail and SendRawEmail), parsed as a mail client would."""
    from email import message_from_string, policy
    from urllib.request import urlopen

    with urlopen(f"{aws_endpoint.rstrip('/')}/moto-api/data.json", timeout=30) as answer:  # noqa: S310
        ses = json.load(answer).get("ses", {})
    found = []
    for sent in ses.get("RawMessage", []):
        parsed = message_from_string(sent["raw_data"], policy=policy.default)
        body = parsed.get_body(("plain",))
        found.append(
            {
                "id": sent["id"],
                "to": str(parsed["To"]),
                "subject": str(parsed["Subject"]),
                "headers": {name: str(value) for name, value in parsed.items()},
                "text": body.get_content() if body is not None else "",
            }
        )
    for sent in ses.get("Message", []):
        destinations = sent.get("destinations") or {}
        found.append(
            {
                "id": sent["id"],
                "to": ", ".join(destinations.get("ToAddresses", [])),
                "subject": sent.get("subject", ""),
                "headers": {},
                "text": sent.get("body", ""),
            }
        )
    return [m for m in found if not to or to.lower() in m["to"].lower()]


class _ControlHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, pump: Any, on_drained: Any) -> None:
        super().__init__((HOST, port), _ControlHandler)
        self.pump = pump
        self.on_drained = on_drained
        self.hooks: dict[str, list[dict]] = {}
        self.hooks_lock = threading.Lock()


class ControlServer:
    """The control endpoint (see the module docstring) for a running event pump."""

    def __init__(self, pump: Any, port: int, on_drained: Any = lambda: None) -> None:
        self._http = _ControlHTTPServer(port, pump, on_drained)
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.2}, name="control", daemon=True
        )

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()


def _run() -> None:
    parent = os.getppid()
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("chalicelib.local").setLevel(logging.INFO)

    from app import app
    from chalicelib.local.pump import EventPump, queue_destination
    from chalicelib.local.stack import chalice_config
    from chalicelib.observability import logger

    stage = os.environ.get("CRM_STAGE", "local")
    failure_queue = os.environ.get("CRM_STREAM_FAILURE_QUEUE_URL")
    level = logger.log_level
    quiet = os.environ.get("CRM_CONSUMERS_QUIET") == "1"
    if quiet:
        logger.setLevel(logging.WARNING)

    def on_drained() -> None:
        if quiet:
            logger.setLevel(level)

    pump = EventPump(
        app,
        config=chalice_config(app, stage),
        on_failure=queue_destination(failure_queue) if failure_queue else None,
        starting_position="TRIM_HORIZON",
        held_iterators=os.environ.get("CRM_LOCAL_DYNAMODB") == "local",
    ).start(per_source=True)
    try:
        control = ControlServer(pump, int(os.environ.get("CRM_CONTROL_PORT", "8001")), on_drained).start()
        try:
            while_parent_lives(parent)
        finally:
            control.stop()
    finally:
        pump.stop()


def main() -> int:
    stop_on_signals()
    with contextlib.suppress(Stop):
        _run()
    return 0


if __name__ == "__main__":
    exit_now(main())
