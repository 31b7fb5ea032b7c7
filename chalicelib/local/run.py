"""The whole backend on this machine, in one process: `python -m chalicelib.local.run` (`make run`).

It starts moto (and DynamoDB Local for the tables and streams, where Java 17 is installed),
deploys infra/resources.json to them, serves the Chalice app over HTTP (Chalice's
own local gateway, so the HTTP middleware runs), runs the stream, queue and schedule handlers
with the event pump, seeds demo data through the API, and prints the URL and a staff token.
Everything lives in memory: when this process stops, the data is gone.

Environment:
    CRM_LOCAL_DYNAMODB  local: DynamoDB Local, moto: moto, unset: DynamoDB Local if Java 17 is there
    CRM_DYNAMODB_PORT DynamoDB Local                 (default 8002)
    CRM_AWS_PORT      moto                           (default 5000)
    CRM_API_PORT      the CRM API                    (default 8000)
    CRM_CONTROL_PORT  the control endpoint below     (default 8001)
    CRM_SEED          1: seed demo data, 0: start empty (default 1)
    CRM_STAGE         stage in .chalice/config.json  (default local)

Control endpoint, on 127.0.0.1:CRM_CONTROL_PORT:
    GET  /health            200 {"status": "ok"}
    GET  /schedules         200 {"schedules": [names]}
    POST /schedules/{name}  runs that schedule handler now, as EventBridge would:
                            200 when it returned, 404 for an unknown name, 500 if it raised
    e.g. curl -X POST http://127.0.0.1:8001/schedules/<name>
Schedules also run on their own: rate(...) at that rate, cron(...) once a day (see pump.py).

If the stack has an output `StreamFailureQueueUrl`, stream batches the pump gives up on are sent
there (Lambda's on-failure destination); otherwise they are logged.

Ctrl-C or SIGTERM stops everything (exit status 0). A port in use: one line on stderr, status 2.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from chalicelib.local.dynamodb_local import Unavailable
from chalicelib.local.stack import (
    HOST,
    PortInUse,
    apply_environment,
    check_ports,
    choose_dynamodb,
    deploy,
    local_environment,
    start_moto,
)

log = logging.getLogger("chalicelib.local.run")


class _Stop(Exception):
    """Raised in the main thread by SIGINT/SIGTERM."""


def _on_signal(signum: int, frame: Any) -> None:
    # Only the first signal interrupts; shutting down must not be interrupted itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _Stop


def _port(variable: str, default: int) -> int:
    value = os.environ.get(variable, str(default))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"{variable}={value!r} is not a port number")
    return int(value)


class _ControlHandler(BaseHTTPRequestHandler):
    server: _ControlHTTPServer

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/health":
            self._reply(HTTPStatus.OK, {"status": "ok"})
        elif self.path == "/schedules":
            self._reply(HTTPStatus.OK, {"schedules": sorted(self.server.pump.schedules)})
        else:
            self._reply(HTTPStatus.NOT_FOUND, {"error": "not found"})

    def do_POST(self) -> None:
        pump = self.server.pump
        prefix = "/schedules/"
        name = self.path[len(prefix) :] if self.path.startswith(prefix) else ""
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

    def _reply(self, status: HTTPStatus, body: dict) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _ControlHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, pump: Any) -> None:
        super().__init__((HOST, port), _ControlHandler)
        self.pump = pump


class ControlServer:
    """`GET /health`, `GET /schedules` and `POST /schedules/{name}` for the event pump."""

    def __init__(self, pump: Any, port: int) -> None:
        self._http = _ControlHTTPServer(port, pump)
        self._thread = threading.Thread(
            target=self._http.serve_forever, kwargs={"poll_interval": 0.2}, name="control", daemon=True
        )

    def start(self) -> ControlServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._http.shutdown()
        self._http.server_close()


def _poster(port: int, token: str):
    """A thread-safe `post(path, body) -> (status, json)` to the local API, for `seed_data.seed`:
    one keep-alive connection per thread."""
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    connections = threading.local()

    def post(path: str, body: dict) -> tuple[int, Any]:
        if not hasattr(connections, "http"):
            connections.http = http.client.HTTPConnection(HOST, port, timeout=30)
        connections.http.request("POST", path, body=json.dumps(body).encode(), headers=headers)
        response = connections.http.getresponse()
        raw = response.read()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw.decode(errors="replace")

    return post


def _configure_logging() -> None:
    # The app logs JSON to stdout itself (Powertools); this is for the local machinery.
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("chalicelib.local").setLevel(logging.INFO)


class _Steps:
    """One line per start-up step on stdout, with how long the step took."""

    def __init__(self) -> None:
        self._started = self._last = time.monotonic()

    def done(self, message: str) -> None:
        now = time.monotonic()
        print(f"[{now - self._started:5.1f} s] {message} ({now - self._last:.1f} s)", flush=True)
        self._last = now


def _start_dynamodb_local(port: int) -> Any:
    from chalicelib.local.dynamodb_local import DynamoDBLocal

    return DynamoDBLocal.start(port)


def _stop_when_started(starting: Any) -> None:
    try:
        server = starting.result()
    except Exception:  # it never started: nothing to stop, and the error is reported elsewhere
        return
    server.stop()


def _serve(stage: str, ports: dict[str, int], dynamodb: str, seed: bool) -> None:
    from concurrent.futures import ThreadPoolExecutor

    aws_port, api_port, control_port = ports["CRM_AWS_PORT"], ports["CRM_API_PORT"], ports["CRM_CONTROL_PORT"]
    steps = _Steps()
    steps.done("ports free: " + ", ".join(f"{name}={port}" for name, port in ports.items()))
    with ExitStack() as running, ThreadPoolExecutor(max_workers=1) as background:
        dynamodb_url = f"http://{HOST}:{ports['CRM_DYNAMODB_PORT']}" if dynamodb == "local" else None
        # chalicelib.config reads the environment once, on import: set it before the app exists.
        apply_environment(local_environment(aws_port, api_port, stage, dynamodb_url))
        # The JVM takes a few seconds to start: moto starts and deploys the queues meanwhile.
        starting = (
            background.submit(_start_dynamodb_local, ports["CRM_DYNAMODB_PORT"]) if dynamodb_url else None
        )
        moto = start_moto(aws_port)
        running.callback(moto.stop)
        steps.done(f"AWS emulators: moto on {HOST}:{aws_port} (SQS, SES, CloudFormation)")

        if starting is not None:
            running.callback(_stop_when_started, starting)

        def dynamodb_local_started() -> None:
            if starting is not None:
                starting.result()
                from chalicelib.local.dynamodb_local import DYNAMODB_LOCAL_VERSION

                steps.done(f"DynamoDB Local {DYNAMODB_LOCAL_VERSION} on {dynamodb_url} (tables and streams)")

        outputs = deploy(stage, dynamodb=dynamodb, before_tables=dynamodb_local_started)
        where = "DynamoDB Local" if dynamodb == "local" else "moto"
        steps.done(f"tables and queues from infra/resources.json (tables on {where})")

        from app import app
        from chalicelib.local.pump import EventPump, queue_destination
        from chalicelib.local.server import LocalApiServer
        from chalicelib.local.stack import chalice_config
        from chalicelib.local.token import issue
        from chalicelib.observability import logger

        api = LocalApiServer(app, port=api_port, stage=stage).start()
        running.callback(api.stop)
        failure_queue = outputs.get("StreamFailureQueueUrl")
        pump = EventPump(
            app,
            config=chalice_config(app, stage),
            on_failure=queue_destination(failure_queue) if failure_queue else None,
        )
        running.callback(pump.stop)
        # Take the stream positions now, so even LATEST handlers see the demo data.
        pump.poll_once()
        control = ControlServer(pump, control_port).start()
        running.callback(control.stop)
        steps.done(
            f"API server and consumers: {len(pump.stream_consumers)} stream, {len(pump.queue_consumers)}"
            f" queue and {len(pump.schedules)} schedule handlers"
        )

        token = issue(stage)
        if seed:
            from chalicelib.local.seed_data import seed as seed_demo_data

            # The seed's requests are not worth a log line each: request logs start after the URL.
            level = logger.log_level
            logger.setLevel(logging.WARNING)
            try:
                if dynamodb == "local":
                    pump.start()  # DynamoDB Local keeps up with consumers running beside the seed
                counts = seed_demo_data(_poster(api.port, token), workers=4 if dynamodb == "local" else 1)
                # The consumers catch up before the stack says it is ready, so the demo data's
                # loyalty is there and a new write is consumed within a second.
                pump.stop()
                pump.drain(timeout=300)
            finally:
                logger.setLevel(level)
            steps.done(
                f"demo data: {counts['products']} products, {counts['customers']} customers"
                f" and {counts['interactions']} interactions, consumed"
            )
        pump.start()
        schedules = ", ".join(sorted(pump.schedules)) or "none in this app"
        store = f"DynamoDB Local on {dynamodb_url}" if dynamodb_url else f"moto on {HOST}:{aws_port}"
        lines = [
            f"Data lives in memory ({store}) and is gone when this stops. Ctrl-C stops it.",
            f"Run a schedule now: curl -X POST http://{HOST}:{control_port}/schedules/<name> ({schedules})",
            f"CRM API: {api.url}",
            f"Staff token: {token}",
            f'Try: curl -H "Authorization: Bearer $TOKEN" {api.url}/customers',
        ]
        print("\n".join(lines), flush=True)
        while True:
            time.sleep(3600)


def _settings() -> tuple[str, bool, dict[str, int], str]:
    stage = os.environ.get("CRM_STAGE", "local")
    seed = os.environ.get("CRM_SEED", "1").strip().lower() not in ("0", "false", "no", "")
    dynamodb, why_not_local = choose_dynamodb()
    if dynamodb == "moto" and why_not_local and not why_not_local.startswith("CRM_LOCAL_DYNAMODB"):
        print(f"DynamoDB Local not used ({why_not_local}): the tables run on moto.", flush=True)
    ports = {
        "CRM_API_PORT": _port("CRM_API_PORT", 8000),
        "CRM_CONTROL_PORT": _port("CRM_CONTROL_PORT", 8001),
        "CRM_AWS_PORT": _port("CRM_AWS_PORT", 5000),
    }
    if dynamodb == "local":
        ports["CRM_DYNAMODB_PORT"] = _port("CRM_DYNAMODB_PORT", 8002)
    if len(set(ports.values())) < len(ports):
        raise ValueError(f"the ports must differ: {ports}")
    return stage, seed, ports, dynamodb


def main() -> int:
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        try:
            stage, seed, ports, dynamodb = _settings()
            check_ports(ports)
        except (PortInUse, ValueError) as error:
            print(f"crm local: {error}", file=sys.stderr)
            return 2
        _configure_logging()
        try:
            _serve(stage, ports, dynamodb, seed)
        except Unavailable as error:
            print(f"crm local: DynamoDB Local could not start: {error}", file=sys.stderr)
            return 2
    except _Stop:
        print("Stopped; the local data is gone.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    status = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # Finalizing the interpreter would free moto's in-memory state object by object, which
    # takes seconds after a seed; that state is being thrown away anyway.
    os._exit(status)
