"""`python -m bench.stack_probe`: `python -m chalicelib.local.run`, unchanged, in a process that
counts its AWS calls by thread and answers SIGUSR1 by writing, to $BENCH_THREADS_OUT (JSON),
its threads' names by native thread id and those counts. The load section reads it to tell the
event pump's CPU time and AWS calls from the request handlers' (CPU from
/proc/<pid>/task/<tid>/stat). Nothing else differs: the same module runs as __main__."""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import threading
from collections import Counter

_calls: Counter = Counter()  # (thread name, service, operation) -> calls


def _thread_name(thread: threading.Thread) -> str:
    # A ThreadingMixIn server's threads run its process_request_thread: name the server.
    server = getattr(getattr(thread, "_target", None), "__self__", None)
    owner = f" [{type(server).__module__}.{type(server).__name__}]" if server is not None else ""
    return thread.name + owner


def _count_calls() -> None:
    import botocore.client

    original = botocore.client.BaseClient._make_api_call

    def counted(client, operation_name, api_params):
        thread = threading.current_thread()
        role = "event-pump" if thread.name.startswith("event-pump") else _thread_name(thread)
        _calls[(role, client.meta.service_model.service_name, operation_name)] += 1
        return original(client, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = counted


def _consumer_threads() -> None:
    """BENCH_PUMP_EXPERIMENT=threads: an experiment, never the default. The event pump polls
    each event source in a thread of its own (as Lambda runs each event source mapping on its
    own) instead of one thread taking every source in turn; schedules stay in the pump's
    thread. It patches EventPump._run, a private method: for measuring what the suggested
    change would do, not a way to run the stack."""
    import logging

    from chalicelib.local import pump as pump_module

    log = logging.getLogger("bench.stack_probe")

    def loop(pump, consumer) -> None:
        while not pump._stopping.is_set():
            try:
                busy = consumer.poll()
            except Exception:
                log.exception("polling for %s failed", consumer.name)
                busy = False
            if not busy:
                pump._stopping.wait(pump.poll_interval)

    def run(self) -> None:
        threads = [
            threading.Thread(target=loop, args=(self, c), name=f"event-pump-{c.name}", daemon=True)
            for c in [*self.stream_consumers, *self.queue_consumers]
        ]
        for thread in threads:
            thread.start()
        while not self._stopping.is_set():
            with self._lock:
                self._run_due_schedules()
            self._stopping.wait(self.poll_interval)
        for thread in threads:
            thread.join(5)

    pump_module.EventPump._run = run

    # chalicelib.events.batch shares one Powertools BatchProcessor per kind, and a
    # BatchProcessor holds the state of the batch it is processing: two stream handlers running
    # at once would corrupt each other's batches (records silently skipped). The experiment
    # needs one processor per batch.
    from chalicelib.events import batch

    def fresh_processor(kind: str):
        from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType

        return BatchProcessor(event_type=EventType.DynamoDBStreams if kind == "streams" else EventType.SQS)

    batch._processor = fresh_processor


def _time_start_up_phases() -> None:
    """One stderr line each for the demo seed's requests and the consumers' catching up after
    them, which the stack reports as one step ("demo data: ..."): where its start-up time goes."""
    import time

    from chalicelib.local import pump, seed_data

    def timed(owner, name: str, label: str) -> None:
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            start = time.monotonic()
            try:
                return original(*args, **kwargs)
            finally:
                print(
                    f"[stack_probe] {label} took {time.monotonic() - start:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )

        setattr(owner, name, wrapper)

    timed(seed_data, "seed", "seed requests")
    timed(pump.EventPump, "drain", "pump.drain")


def _write_threads(signum: int, frame: object) -> None:
    path = os.environ.get("BENCH_THREADS_OUT")
    if not path:
        return
    names = {str(t.native_id): _thread_name(t) for t in threading.enumerate() if t.native_id is not None}
    calls = [[role, service, operation, n] for (role, service, operation), n in list(_calls.items())]
    with open(path + ".tmp", "w", encoding="utf-8") as stream:
        json.dump({"threads": names, "calls": calls}, stream)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _write_threads)
    _count_calls()
    _time_start_up_phases()
    if os.environ.get("BENCH_PUMP_EXPERIMENT") == "threads":
        _consumer_threads()
    sys.argv = ["chalicelib.local.run"]
    runpy.run_module("chalicelib.local.run", run_name="__main__", alter_sys=True)
