"""Run a Chalice app's stream, queue and schedule handlers locally, the way Lambda would.

`chalice local` serves HTTP only. `EventPump` finds the app's `on_dynamodb_record`,
`on_sqs_message` and `schedule` handlers, polls the local services (moto, DynamoDB Local) for
them and invokes each handler with the event Lambda would deliver (lambda_events.py): one
consumer per stream (pump_streams.py: shards, checkpoints, bisecting, the on-failure
destination), one per queue (pump_queues.py), and the schedules (pump_schedules.py).

Retries happen on the next poll, without Lambda's backoff. Handler errors are logged and never
stop the pump. `start()` polls every source in one thread; `start(per_source=True)` gives each
stream, queue and the schedules a thread of their own, as Lambda runs one poller per event
source mapping: a busy consumer then never holds the others back. `wait_idle()` waits until the
running pump has consumed everything written before the call.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from chalice.app import DynamoDBEventConfig, ScheduledEventConfig, SQSEventConfig

from chalicelib.local.lambda_events import LambdaContext, function_arn, on_failure_record, scheduled_event
from chalicelib.local.pump_queues import QueueConsumer
from chalicelib.local.pump_schedules import Schedule
from chalicelib.local.pump_streams import StreamConsumer

log = logging.getLogger(__name__)

DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_S = 60  # Chalice's default lambda_timeout

OnFailure = Callable[[str, dict], None]


def _log_on_failure(function_name: str, record: dict) -> None:
    log.warning(
        "%s: retries exhausted, batch sent to the on-failure destination: %s",
        function_name,
        json.dumps(record, default=str),
    )


class EventPump:
    """`EventPump(app).start()` in the local stack; `drain()` in tests.

    `config` (a chalice Config, see `stack.chalice_config`) supplies the stage and each
    function's memory and timeout; `on_failure(function_name, record)` receives Lambda's
    on-failure record when a stream batch is given up (the default logs it). `clock` times
    the schedules. `clients` maps service names (`dynamodb`, `dynamodbstreams`, `sqs`) to the
    boto3 clients to use instead of default ones, e.g. pointed at DynamoDB Local.
    `starting_position` ("LATEST" or "TRIM_HORIZON") overrides every stream handler's: "LATEST"
    leaves out what the streams hold at the first poll. `held_iterators` follows
    `NextShardIterator` instead of taking a fresh iterator on every poll (not on moto).
    """

    def __init__(
        self,
        app: Any,
        *,
        poll_interval: float = 0.2,
        max_attempts: int = 3,
        config: Any = None,
        on_failure: OnFailure | None = None,
        clock: Callable[[], float] = time.monotonic,
        clients: Mapping[str, Any] | None = None,
        starting_position: str | None = None,
        held_iterators: bool = False,
    ) -> None:
        self.app = app
        self.starting_position = starting_position
        self.held_iterators = held_iterators
        self.poll_interval = poll_interval
        self.max_attempts = max(1, max_attempts)
        self.on_failure = on_failure or _log_on_failure
        self._config = config
        self._stage = getattr(config, "chalice_stage", None) or "local"
        self._clock = clock
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # When each polling loop last began a poll that found nothing to do, and how many
        # handler invocations there have been: what wait_idle() watches.
        self._idle_since: dict[str, float] = {}
        self.invocations = 0  # handler invocations begun, and ended (for wait_idle)
        self.completed = 0
        self._counting = threading.Lock()
        self._clients: dict[str, Any] = dict(clients or {})
        self.stream_consumers: list[StreamConsumer] = []
        self.queue_consumers: list[QueueConsumer] = []
        self.schedules: dict[str, Schedule] = {}
        now = clock()
        for source in app.event_sources:
            if isinstance(source, DynamoDBEventConfig):
                self.stream_consumers.append(StreamConsumer(self, source))
            elif isinstance(source, SQSEventConfig):
                self.queue_consumers.append(QueueConsumer(self, source))
            elif isinstance(source, ScheduledEventConfig):
                self.schedules[source.name] = Schedule(source, now)
            else:
                log.info("%s (%s) is not run locally", source.name, type(source).__name__)

    # AWS clients are made on first use, so the environment (endpoint, region) set before
    # then is the one they use.
    def _client(self, service: str) -> Any:
        if service not in self._clients:
            import boto3

            self._clients[service] = boto3.client(service)
        return self._clients[service]

    @property
    def dynamodb(self) -> Any:
        return self._client("dynamodb")

    @property
    def streams(self) -> Any:
        return self._client("dynamodbstreams")

    @property
    def sqs(self) -> Any:
        return self._client("sqs")

    def function_name(self, name: str) -> str:
        return f"{self.app.app_name}-{self._stage}-{name}"

    def _context(self, name: str) -> LambdaContext:
        memory, timeout = DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_S
        if self._config is not None:
            scoped = self._config.scope(self._stage, name)
            memory = scoped.lambda_memory_size or memory
            timeout = scoped.lambda_timeout or timeout
        function_name = self.function_name(name)
        return LambdaContext(
            function_name=function_name,
            memory_limit_in_mb=int(memory),
            invoked_function_arn=function_arn(function_name),
            timeout_ms=int(timeout) * 1000,
            log_group_name=f"/aws/lambda/{function_name}",
        )

    def invoke(self, name: str, event: dict) -> Any:
        """Call handler `name` with `event` and a fresh context, as one Lambda invocation."""
        with self._counting:
            self.invocations += 1
        try:
            return self.app.handler_map[name](event, self._context(name))
        finally:
            with self._counting:
                self.completed += 1

    def report_failure(self, name: str, attempts: int, batch_info: dict) -> None:
        function_name = self.function_name(name)
        try:
            self.on_failure(function_name, on_failure_record(function_name, attempts, batch_info))
        except Exception:
            log.exception("the on-failure hook of %s failed", function_name)

    def trigger(self, name: str) -> Any:
        """Run schedule `name` now; its result is returned and its exception raised."""
        if name not in self.schedules:
            raise KeyError(name)
        return self.invoke(name, scheduled_event(self.function_name(name)))

    def run_due_schedules(self) -> bool:
        ran = False
        now = self._clock()
        for schedule in self.schedules.values():
            if schedule.take_due(now):
                ran = True
                try:
                    self.trigger(schedule.name)
                except Exception:
                    log.exception("%s failed", self.function_name(schedule.name))
        return ran

    def poll_once(self, *, schedules: bool = True) -> bool:
        """One round over every stream, queue (and due schedule); True if a handler ran."""
        with self._lock:
            invoked = False
            for consumer in [*self.stream_consumers, *self.queue_consumers]:
                try:
                    invoked |= consumer.poll()
                except Exception:
                    log.exception("polling for %s failed", self.function_name(consumer.name))
            if schedules:
                invoked |= self.run_due_schedules()
            return invoked

    def drain(self, timeout: float = 60) -> None:
        """Process until no stream has new records and no queue holds messages (visible,
        in flight or delayed): failed messages are waited for until they land in a DLQ (not the
        retries that outbound webhooks hide for hours: pump_queues.SCHEDULED_RETRIES). The
        timeout is a ceiling for a stuck handler, not a target: an erasure of a large customer
        on a loaded machine takes seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.poll_once(schedules=False):
                waiting = {c.queue_name: n for c in self.queue_consumers if (n := c.pending())}
                if not waiting:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"queues still hold messages after {timeout} s: {waiting}")
                time.sleep(min(self.poll_interval, 0.05))
            elif time.monotonic() > deadline:
                raise TimeoutError(f"handlers still busy after {timeout} s")

    def start(self, *, per_source: bool = False) -> EventPump:
        if self._threads:
            return self
        self._stopping.clear()
        self._idle_since.clear()
        if not per_source:
            loops = {"event-pump": self.poll_once}
        else:
            # boto3 makes clients unsafely across threads: every thread shares these.
            for service in ("dynamodb", "dynamodbstreams", "sqs"):
                self._client(service)
            loops = {f"pump:{c.name}": c.poll for c in [*self.stream_consumers, *self.queue_consumers]}
            loops["pump:schedules"] = self.run_due_schedules
        for name, poll in loops.items():
            thread = threading.Thread(target=self._run, args=(name, poll), name=name, daemon=True)
            self._threads.append(thread)
            thread.start()
        return self

    def stop(self, timeout: float = 5) -> None:
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        # A thread still in a handler is kept: start() does not run a second poller beside it.
        self._threads = [thread for thread in self._threads if thread.is_alive()]

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    def _run(self, name: str, poll: Callable[[], bool]) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                busy = poll()
            except Exception:
                log.exception("%s: polling failed", name)
                self._stopping.wait(self.poll_interval)  # not idle: what it failed to read is unread
                continue
            if not busy:
                self._idle_since[name] = started
                self._stopping.wait(self.poll_interval)

    def wait_idle(self, timeout: float = 60) -> None:
        """Wait, while the pump runs, until every polling loop has found nothing to do in a poll
        begun after this call, with no handler invoked meanwhile and no queue holding messages:
        everything written before the call has been consumed. TimeoutError after `timeout`."""
        if not self.running:
            raise RuntimeError("wait_idle() needs a running pump: start() it, or drain()")
        deadline = time.monotonic() + timeout
        names = [thread.name for thread in self._threads]
        while True:
            # Both counts: a handler begun before the mark may still write after another
            # loop's idle poll; it is seen finishing.
            with self._counting:
                mark, invocations, completed = time.monotonic(), self.invocations, self.completed
            while not all(self._idle_since.get(name, 0.0) > mark for name in names):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"handlers still busy after {timeout} s")
                time.sleep(0.02)
            with self._counting:
                # Nothing began or ended since the mark, and nothing is running.
                quiet = (
                    (self.invocations, self.completed) == (invocations, completed) == (completed, completed)
                )
            if quiet and not any(c.pending() for c in self.queue_consumers):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"handlers still busy after {timeout} s")


def queue_destination(queue_url: str) -> OnFailure:
    """An `on_failure` hook that sends Lambda's on-failure record to an SQS queue."""

    import boto3

    sqs = boto3.client("sqs")  # made once: boto3 does not make clients safely across threads

    def send(function_name: str, record: dict) -> None:
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record, default=str))
        log.warning("%s: retries exhausted, batch info sent to %s", function_name, queue_url)

    return send
