"""The whole backend on this machine, in one process: `python -m chalicelib.local.run` (`make run`).

It starts moto, deploys infra/resources.json to it, serves the Chalice app over HTTP (Chalice's
own local gateway, so the HTTP middleware runs), runs the stream, queue and schedule handlers
with the event pump, seeds demo data through the API, and prints the URL and a staff token.
Everything lives in memory: when this process stops, the data is gone.

Environment:
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

from chalicelib.local.stack import (
    HOST,
    PortInUse,
    apply_environment,
    check_ports,
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
    """`post(path, body) -> (status, json)` to the local API, for `seed_data.seed`."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}

    def post(path: str, body: dict) -> tuple[int, Any]:
        connection.request("POST", path, body=json.dumps(body).encode(), headers=headers)
        response = connection.getresponse()
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


def _serve(stage: str, aws_port: int, api_port: int, control_port: int, seed: bool) -> None:
    with ExitStack() as running:
        moto = start_moto(aws_port)
        running.callback(moto.stop)
        # chalicelib.config reads the environment once, on import: set it before the app exists.
        apply_environment(local_environment(aws_port, api_port, stage))
        outputs = deploy(stage)

        from app import app
        from chalicelib.local.pump import EventPump, queue_destination
        from chalicelib.local.server import LocalApiServer
        from chalicelib.local.stack import chalice_config
        from chalicelib.local.token import issue

        api = LocalApiServer(app, port=api_port, stage=stage).start()
        running.callback(api.stop)
        failure_queue = outputs.get("StreamFailureQueueUrl")
        pump = EventPump(
            app,
            config=chalice_config(app, stage),
            on_failure=queue_destination(failure_queue) if failure_queue else None,
        )
        running.callback(pump.stop)
        # Take the stream positions now, so even LATEST handlers see the demo data, but poll
        # only after seeding: moto is CPU-bound and seeding takes a third longer under polling.
        pump.poll_once()
        control = ControlServer(pump, control_port).start()
        running.callback(control.stop)

        token = issue(stage)
        lines = []
        if seed:
            from chalicelib.local.seed_data import seed as seed_demo_data

            counts = seed_demo_data(_poster(api.port, token))
            lines.append(
                f"Seeded {counts['products']} products, {counts['customers']} customers"
                f" and {counts['interactions']} interactions."
            )
            # The consumers catch up with the seed before the stack says it is ready, so the
            # demo data's loyalty is there and a new write is consumed within a second.
            pump.drain(timeout=300)
        pump.start()
        schedules = ", ".join(sorted(pump.schedules)) or "none in this app"
        lines += [
            f"Data lives in memory (moto on {HOST}:{aws_port}) and is gone when this stops. Ctrl-C stops it.",
            f"Run a schedule now: curl -X POST http://{HOST}:{control_port}/schedules/<name> ({schedules})",
            f"CRM API: {api.url}",
            f"Staff token: {token}",
            f'Try: curl -H "Authorization: Bearer $TOKEN" {api.url}/customers',
        ]
        print("\n".join(lines), flush=True)
        while True:
            time.sleep(3600)


def _settings() -> tuple[str, bool, dict[str, int]]:
    stage = os.environ.get("CRM_STAGE", "local")
    seed = os.environ.get("CRM_SEED", "1").strip().lower() not in ("0", "false", "no", "")
    ports = {
        "CRM_AWS_PORT": _port("CRM_AWS_PORT", 5000),
        "CRM_API_PORT": _port("CRM_API_PORT", 8000),
        "CRM_CONTROL_PORT": _port("CRM_CONTROL_PORT", 8001),
    }
    if len(set(ports.values())) < len(ports):
        raise ValueError(f"the ports must differ: {ports}")
    return stage, seed, ports


def main() -> int:
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    try:
        try:
            stage, seed, ports = _settings()
            check_ports(ports)
        except (PortInUse, ValueError) as error:
            print(f"crm local: {error}", file=sys.stderr)
            return 2
        _configure_logging()
        _serve(stage, ports["CRM_AWS_PORT"], ports["CRM_API_PORT"], ports["CRM_CONTROL_PORT"], seed)
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
