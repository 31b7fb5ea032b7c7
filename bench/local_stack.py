"""`python -m chalicelib.local.run` (`make run`) as a subprocess on free loopback ports: how long
it takes to print its URL, its step lines, its staff token, and the resident memory of its
Python processes (the API's, the consumers' child) and of its DynamoDB Local (Java) child."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from bench.common import ROOT

HOST = "127.0.0.1"
PORT_VARIABLES = ("CRM_API_PORT", "CRM_CONTROL_PORT", "CRM_AWS_PORT", "CRM_DYNAMODB_PORT")
# "[ 14.8 s] DynamoDB Local 3.3.1 on http://... (tables and streams) (12.3 s)"
_STEP = re.compile(r"^\[\s*([\d.]+) s\] (.*) \(([\d.]+) s\)$")
_KEPT_LINES = 200  # of stdout, from the start: the step lines and the banner, not request logs


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def rss_kb(pid: int | None) -> dict[str, int] | None:
    """VmRSS (resident now) and VmHWM (peak resident) of a process, in kB (Linux)."""
    if pid is None:
        return None
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return None
    values = {}
    for line in lines:
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values or None


def _command(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return []


def _is_dynamodb_local(pid: int) -> bool:
    return any(part.endswith(b"DynamoDBLocal.jar") for part in _command(pid))


def _is_consumers(pid: int) -> bool:
    return b"chalicelib.local.consumers" in _command(pid)


def _is_api_worker(pid: int) -> bool:
    return b"chalicelib.local.api_worker" in _command(pid)


def children(parent: int, test) -> list[int]:
    """The pids of the children of `parent` for which `test(pid)` holds."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # ppid is the second field after the parenthesised command name.
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and test(int(entry.name)):
            found.append(int(entry.name))
    return found


def process_cpu_s(pid: int | None) -> float | None:
    """User + system CPU seconds a process has used so far (all its threads)."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int) -> dict[int, float]:
    """CPU seconds of each live thread of a process, by native thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    threads = {}
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return threads
    for task in tasks:
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        threads[int(task.name)] = (int(fields[11]) + int(fields[12])) / tick
    return threads


def machine_cpu_s() -> tuple[float, float]:
    """(busy, all) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / tick, sum(fields[:8]) / tick


def child(parent: int, test) -> int | None:
    """The pid of a child of `parent` for which `test(pid)` holds."""
    found = children(parent, test)
    return found[0] if found else None


@dataclass
class Step:
    at_s: float
    message: str
    took_s: float


@dataclass
class LocalStack:
    """A running `python -m chalicelib.local.run`. `LocalStack.start(backend)` returns once it has
    printed its URL and token (or raises with its output)."""

    backend: str
    process: subprocess.Popen
    ports: dict[str, int]
    started_at: float
    lines: list[str] = field(default_factory=list)
    arrivals: list[float] = field(default_factory=list)
    later_lines: int = 0
    url: str = ""
    token: str = ""
    ready_s: float | None = None
    java_pid: int | None = None
    consumers_pid: int | None = None
    api_worker_pids: list[int] = field(default_factory=list)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _closed: bool = False
    _errors: IO[bytes] | None = None
    probe: Path | None = None
    _stderr_text: str = ""

    @classmethod
    def start(
        cls, backend: str, *, seed: bool = True, timeout: float = 240.0, probe: Path | None = None
    ) -> LocalStack:
        """With `probe`, run it through bench.stack_probe, which writes its thread names to
        that file on SIGUSR1 (see `thread_names`)."""
        ports = {name: free_port() for name in PORT_VARIABLES}
        # As from a plain shell: the bench's own POWERTOOLS_LOG_LEVEL=WARNING would silence the
        # request log lines `make run` prints (and pays for).
        dropped = ("AWS_ENDPOINT_URL", "AWS_PROFILE", "POWERTOOLS_LOG_LEVEL")
        env = {k: v for k, v in os.environ.items() if k not in dropped}
        env.update({name: str(port) for name, port in ports.items()})
        env.update({"CRM_LOCAL_DYNAMODB": backend, "CRM_SEED": "1" if seed else "0", "PYTHONUNBUFFERED": "1"})
        if probe is not None:
            env["BENCH_THREADS_OUT"] = str(probe)
        module = "bench.stack_probe" if probe is not None else "chalicelib.local.run"
        errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        started_at = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", module],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        stack = cls(backend, process, ports, started_at, _errors=errors, probe=probe)
        threading.Thread(target=stack._read, name="stack-stdout", daemon=True).start()
        try:
            stack._wait_ready(timeout)
        except BaseException:
            stack.stop()
            raise
        return stack

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            now = time.monotonic()
            with self._changed:
                if len(self.lines) < _KEPT_LINES:
                    self.lines.append(line.rstrip("\n"))
                    self.arrivals.append(now - self.started_at)
                    self._changed.notify_all()
                else:
                    self.later_lines += 1  # the app's request logs: counted, not kept
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self.token:
                for i, line in enumerate(self.lines):
                    if line.startswith("CRM API: ") and not self.url:
                        self.url = line.removeprefix("CRM API: ").strip()
                        self.ready_s = self.arrivals[i]
                    elif line.startswith("Staff token: "):
                        self.token = line.removeprefix("Staff token: ").strip()
                if self.token:
                    break
                if self._closed or time.monotonic() > deadline:
                    why = "exited" if self._closed else f"not ready after {timeout:.0f} s"
                    raise RuntimeError(
                        f"local stack ({self.backend}) {why}: {' | '.join(self.lines[-8:])} "
                        f"stderr: {self.stderr()[-800:]}"
                    )
                self._changed.wait(0.1)
        if self.backend == "local":
            self.java_pid = child(self.process.pid, _is_dynamodb_local)
        self.consumers_pid = child(self.process.pid, _is_consumers)
        self.api_worker_pids = children(self.process.pid, _is_api_worker)

    @property
    def steps(self) -> list[Step]:
        found = []
        for line in self.lines:
            match = _STEP.match(line)
            if match:
                found.append(Step(float(match.group(1)), match.group(2), float(match.group(3))))
        return found

    @property
    def api_port(self) -> int:
        return self.ports["CRM_API_PORT"]

    def memory(self) -> dict[str, dict[str, int] | None]:
        return {
            "python": rss_kb(self.process.pid),
            "consumers": rss_kb(self.consumers_pid),
            "more API processes": _summed(rss_kb(pid) for pid in self.api_worker_pids),
            "java": rss_kb(self.java_pid),
        }

    def probe_state(self, timeout: float = 5.0) -> dict:
        """{"threads": {native thread id: Python thread name}, "calls": [[thread, service,
        operation, count], ...]} of the stack process so far (needs `probe`)."""
        if self.probe is None:
            return {"threads": {}, "calls": []}
        self.probe.unlink(missing_ok=True)
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while not self.probe.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            state = json.loads(self.probe.read_text())
        except (OSError, ValueError):
            return {"threads": {}, "calls": []}
        return {"threads": {int(k): v for k, v in state["threads"].items()}, "calls": state["calls"]}

    def stderr(self) -> str:
        """What the stack wrote to stderr so far (all of it, after `stop()`)."""
        if self._errors is None:
            return self._stderr_text
        try:
            self._errors.seek(0)
            return self._errors.read().decode(errors="replace")
        except (OSError, ValueError):
            return ""

    def stop(self, timeout: float = 30.0) -> float:
        """SIGINT, as Ctrl-C; the seconds until it exited (killed after `timeout`)."""
        start = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.java_pid is not None and _is_dynamodb_local(self.java_pid):
            # A stack that had to be killed never stopped its JVM (its own session): stop it here.
            with contextlib.suppress(OSError):
                os.kill(self.java_pid, signal.SIGTERM)
        if self._errors is not None:
            self._stderr_text = self.stderr()
            self._errors.close()
            self._errors = None
        return time.monotonic() - start


def _summed(memories) -> dict[str, int] | None:
    total: dict[str, int] = {}
    for memory in memories:
        for name, value in (memory or {}).items():
            total[name] = total.get(name, 0) + value
    return total or None


def processes_cpu_s(pids: list[int]) -> float | None:
    values = [process_cpu_s(pid) for pid in pids]
    return sum(v for v in values if v is not None) if values else None
