"""The whole backend on this machine: `python -m chalicelib.local.run` (`make run`).

It starts moto (and DynamoDB Local for the tables and streams, where Java 17 is installed),
deploys infra/resources.json to them, serves the Chalice app over HTTP (Chalice's own local
gateway, so the HTTP middleware runs), starts the stream, queue and schedule handlers in a
process of their own (`chalicelib.local.consumers`, with the control endpoint), seeds demo data
through the API, waits until the consumers have caught up with it, and prints the URL and a
staff token. Everything lives in memory: when this process stops, the data is gone.

Environment:
    CRM_LOCAL_DYNAMODB  local: DynamoDB Local, moto: moto, unset: DynamoDB Local if Java 17 is there
    CRM_DYNAMODB_PORT DynamoDB Local                 (default 8002)
    CRM_AWS_PORT      moto                           (default 5000)
    CRM_API_PORT      the CRM API                    (default 8000)
    CRM_CONTROL_PORT  the consumers' control endpoint (default 8001)
    CRM_SEED          1: seed demo data, 0: start empty (default 1)
    CRM_API_PROCESSES processes serving the API port (default 2; see api_worker.py)
    CRM_STAGE         stage in .chalice/config.json  (default local)

Control endpoint, on 127.0.0.1:CRM_CONTROL_PORT (see chalicelib/local/consumers.py):
    GET  /health            200 {"status": "ok"}
    GET  /schedules         200 {"schedules": [names]}
    POST /schedules/{name}  runs that schedule handler now, as EventBridge would:
                            200 when it returned, 404 for an unknown name, 500 if it raised
    POST /drain?timeout=S   200 once everything written before it has been consumed, else 504
    e.g. curl -X POST http://127.0.0.1:8001/schedules/<name>
Schedules also run on their own: rate(...) at that rate, cron(...) once a day (see pump_schedules.py).

If the stack has an output `StreamFailureQueueUrl`, stream batches the pump gives up on are sent
there (Lambda's on-failure destination); otherwise they are logged.

Ctrl-C or SIGTERM stops everything (exit status 0). A port in use: one line on stderr, status 2.
If the consumers' process stops, the stack stops too (status 1).
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from http import HTTPStatus
from typing import Any

from chalicelib.config import Settings
from chalicelib.local.dynamodb_local import Unavailable
from chalicelib.local.processes import Stop, exit_now, stop_on_signals, stop_process
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
# Processes serving the API: one Python process serves at most about one core (its interpreter
# lock), so a second one lets the API use a two-core machine (measured in `make bench`).
DEFAULT_API_PROCESSES = 2


def _port(variable: str, default: int) -> int:
    value = os.environ.get(variable, str(default))
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise ValueError(f"{variable}={value!r} is not a port number")
    return int(value)


class ProcessFailed(Exception):
    """A process of the stack (the consumers', an API process) exited or never answered."""


def _start_api_processes(api: Any, count: int, stage: str, quiet: bool) -> list[subprocess.Popen]:
    """`count` more processes serving `api`'s listening socket (chalicelib.local.api_worker),
    with `quiet`, logging requests only after a SIGUSR1."""
    fd = api.socket.fileno()
    env = {
        **os.environ,
        "CRM_STAGE": stage,
        "CRM_API_SOCKET_FD": str(fd),
        "CRM_API_QUIET": "1" if quiet else "0",
    }
    return [
        subprocess.Popen(
            [sys.executable, "-m", "chalicelib.local.api_worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            pass_fds=(fd,),
        )
        for _ in range(count)
    ]


class Consumers:
    """The event consumers and the control endpoint, in a process of their own
    (`chalicelib.local.consumers`): `Consumers.start(port, env)`, `.drain()`, `.stop()`."""

    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process = process
        self.port = port

    @classmethod
    def start(cls, port: int, env: dict[str, str], timeout: float = 60.0) -> Consumers:
        process = subprocess.Popen(
            [sys.executable, "-m", "chalicelib.local.consumers"], env=env, stdin=subprocess.DEVNULL
        )
        consumers = cls(process, port)
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise ProcessFailed(f"the consumers' process exited with status {process.returncode}")
            try:
                if consumers._call("GET", "/health", 1.0)[0] == HTTPStatus.OK:
                    return consumers
            except OSError:
                pass
            if time.monotonic() > deadline:
                consumers.stop()
                raise ProcessFailed(f"the consumers did not answer on port {port} within {timeout:.0f} s")
            time.sleep(0.1)

    def _call(self, method: str, path: str, timeout: float) -> tuple[int, Any]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            connection.close()

    def drain(self, timeout: float) -> None:
        """Until everything written so far is consumed."""
        status, body = self._call("POST", f"/drain?timeout={timeout:g}", timeout + 10)
        if status != HTTPStatus.OK:
            raise ProcessFailed(f"the consumers did not catch up: {body}")

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.process, timeout)


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


def _schedule_names(app: Any) -> list[str]:
    from chalice.app import ScheduledEventConfig

    return [source.name for source in app.event_sources if isinstance(source, ScheduledEventConfig)]


def _handler_counts(app: Any) -> str:
    from chalice.app import DynamoDBEventConfig, SQSEventConfig

    kinds = [type(source) for source in app.event_sources]
    return (
        f"{kinds.count(DynamoDBEventConfig)} stream, {kinds.count(SQSEventConfig)} queue"
        f" and {len(_schedule_names(app))} schedule handlers"
    )


def _start_dynamodb_local(port: int) -> Any:
    from chalicelib.local.dynamodb_local import DynamoDBLocal

    return DynamoDBLocal.start(port)


def _stop_when_started(starting: Any) -> None:
    try:
        server = starting.result()
    except Exception:  # it never started: nothing to stop, and the error is reported elsewhere
        return
    server.stop()


def _serve(stage: str, ports: dict[str, int], dynamodb: str, seed: bool, api_processes: int) -> None:
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
        steps.done(f"AWS emulators: moto on {HOST}:{aws_port} (SQS, SES, S3, CloudFormation)")

        if starting is not None:
            running.callback(_stop_when_started, starting)

        def dynamodb_local_started() -> None:
            if starting is not None:
                starting.result()
                from chalicelib.local.dynamodb_local import DYNAMODB_LOCAL_VERSION

                steps.done(f"DynamoDB Local {DYNAMODB_LOCAL_VERSION} on {dynamodb_url} (tables and streams)")

        outputs = deploy(stage, dynamodb=dynamodb, before_tables=dynamodb_local_started)
        # The bucket's name holds moto's account and the region: the app uses the one made.
        if outputs.get("ExportsBucketName"):
            os.environ["CRM_EXPORTS_BUCKET"] = outputs["ExportsBucketName"]
        if outputs.get("ImportsBucketName"):
            os.environ["CRM_IMPORTS_BUCKET"] = outputs["ImportsBucketName"]
        where = "DynamoDB Local" if dynamodb == "local" else "moto"
        steps.done(f"tables, queues and the bucket from infra/resources.json (tables on {where})")

        from app import app
        from chalicelib.local.server import LocalApiServer
        from chalicelib.local.token import issue
        from chalicelib.observability import logger

        api = LocalApiServer(app, port=api_port, stage=stage).start()
        running.callback(api.stop)
        steps.done(f"API server on {api.url}")

        def start_consumers() -> Consumers:
            env = {**os.environ, "CRM_STAGE": stage, "CRM_CONTROL_PORT": str(control_port)}
            env.update(CRM_LOCAL_DYNAMODB=dynamodb, CRM_CONSUMERS_QUIET="1" if seed else "0")
            if outputs.get("StreamFailureQueueUrl"):
                env["CRM_STREAM_FAILURE_QUEUE_URL"] = outputs["StreamFailureQueueUrl"]
            started = Consumers.start(control_port, env)
            running.callback(started.stop)
            steps.done(f"consumers: {_handler_counts(app)} (a process of their own)")
            return started

        token = issue(stage)
        more_api = _start_api_processes(api, api_processes - 1, stage, quiet=seed)
        for process in more_api:
            running.callback(stop_process, process)
        # On DynamoDB Local the consumers keep up beside the seed; moto is one Python process,
        # which the seed's writes keep busy: there they start after it, and read the streams
        # from the start all the same.
        consumers = start_consumers() if dynamodb == "local" or not seed else None
        if seed:
            from chalicelib.local.seed_data import seed as seed_demo_data

            # The seed's requests are not worth a log line each: request logs start after the URL.
            level = logger.log_level
            logger.setLevel(logging.WARNING)
            try:
                workers = 2 + 2 * api_processes if dynamodb == "local" else 1
                counts = seed_demo_data(_poster(api.port, token), workers=workers)
            finally:
                logger.setLevel(level)
            steps.done(
                f"demo data: {counts['products']} products, {counts['customers']} customers,"
                f" {counts['interactions']} interactions, {counts['segments']} segments and"
                f" {counts['campaigns']} campaign{'s' if counts['campaigns'] != 1 else ''}"
            )
            if consumers is None:
                consumers = start_consumers()
        if seed:
            for process in more_api:
                process.send_signal(signal.SIGUSR1)  # request logs from now on
            # The consumers catch up before the stack says it is ready, so the demo data's
            # loyalty is there and a new write is consumed within a second.
            consumers.drain(timeout=300)
            steps.done("demo data consumed (loyalty, habits, cases, co-purchases, segments)")
        schedules = ", ".join(sorted(_schedule_names(app))) or "none in this app"
        store = f"DynamoDB Local on {dynamodb_url}" if dynamodb_url else f"moto on {HOST}:{aws_port}"
        allowed = (
            ", ".join(Settings.from_env({**os.environ, "CRM_STAGE": stage}).webhook_allow_hosts) or "no host"
        )
        lines = [
            f"Data lives in memory ({store}) and is gone when this stops. Ctrl-C stops it.",
            f"Run a schedule now: curl -X POST http://{HOST}:{control_port}/schedules/<name> ({schedules})",
            f"Mail sent (SES in moto): curl http://{HOST}:{control_port}/mail?to=<address>",
            f"Webhooks: inbound POST {api.url}/webhooks/<source id>; outbound to public https URLs"
            f" and, over http too, {allowed} (CRM_WEBHOOK_ALLOW_HOSTS; README: Webhooks)",
            f"CRM API: {api.url}",
            f"Staff token: {token}",
            f'Try: curl -H "Authorization: Bearer $TOKEN" {api.url}/customers',
        ]
        if more_api:
            served = f"The API is served by {api_processes} processes (CRM_API_PROCESSES)."
            lines.insert(2, served)
        print("\n".join(lines), flush=True)
        children = {"the consumers' process": consumers.process}
        children.update({f"API process {n}": process for n, process in enumerate(more_api, start=2)})
        while True:
            for name, process in children.items():
                if process.poll() is not None:
                    raise ProcessFailed(f"{name} exited with status {process.returncode}")
            time.sleep(0.5)


def _settings() -> tuple[str, bool, dict[str, int], str, int]:
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
    processes = os.environ.get("CRM_API_PROCESSES", str(DEFAULT_API_PROCESSES)).strip()
    if not processes.isdigit() or not 1 <= int(processes) <= 32:
        raise ValueError(f"CRM_API_PROCESSES={processes!r} is not a number of processes from 1 to 32")
    return stage, seed, ports, dynamodb, int(processes)


def main() -> int:
    stop_on_signals()
    try:
        try:
            stage, seed, ports, dynamodb, api_processes = _settings()
            check_ports(ports)
        except (PortInUse, ValueError) as error:
            print(f"crm local: {error}", file=sys.stderr)
            return 2
        _configure_logging()
        try:
            _serve(stage, ports, dynamodb, seed, api_processes)
        except Unavailable as error:
            print(f"crm local: DynamoDB Local could not start: {error}", file=sys.stderr)
            return 2
        except ProcessFailed as error:
            print(f"crm local: {error}; stopping", file=sys.stderr)
            return 1
    except Stop:
        print("Stopped; the local data is gone.", file=sys.stderr)
    return 0


if __name__ == "__main__":
    exit_now(main())
