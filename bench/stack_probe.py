"""`python -m bench.stack_probe`: `python -m chalicelib.local.run`, unchanged, in a process that
counts its AWS calls by thread and answers SIGUSR1 by writing, to $BENCH_THREADS_OUT (JSON),
its threads' names by native thread id and those counts. The load section reads it to tell the
request handlers' CPU time and AWS calls from the rest of the process's (CPU from
/proc/<pid>/task/<tid>/stat); the consumers run in a child process, measured as a whole.
Nothing else differs: the same module runs as __main__."""

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
        _calls[(_thread_name(thread), client.meta.service_model.service_name, operation_name)] += 1
        return original(client, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = counted


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
    sys.argv = ["chalicelib.local.run"]
    runpy.run_module("chalicelib.local.run", run_name="__main__", alter_sys=True)
