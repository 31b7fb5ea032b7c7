"""A bounded mixed load against a running local stack (`bench.local_stack.LocalStack`): N clients,
each with its own keep-alive connection (http.client), for a fixed time or request count; then
how long the stream consumers take to catch up with what the load wrote, and the memory of the
stack's processes before, during and after."""

from __future__ import annotations

import http.client
import json
import os
import random
import threading
import time
import traceback
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import median, ms, percentile
from bench.local_stack import HOST, LocalStack, machine_cpu_s, process_cpu_s, processes_cpu_s, thread_cpu_s

# (operation, weight): about two reads for each write, as staff at a service desk work (look a
# customer up, read the timeline and the open cases, record what happened). An update is a GET
# for the ETag and a PATCH with If-Match; a 412 is answered by reading again and retrying.
MIX: tuple[tuple[str, int], ...] = (
    ("get customer", 22),
    ("timeline page", 18),
    ("name search", 12),
    ("cases page", 10),
    ("record visit", 10),
    ("record purchase", 14),
    ("record complaint", 4),
    ("update customer", 10),
)
EXPECTED = {"PATCH": (200, 412), "POST": (201,), "GET": (200,)}
MAX_PATCH_ATTEMPTS = 5
SKUS = (
    ("SKU-COFFEE-500", "Coffee beans, medium roast 500 g", "12.90"),
    ("SKU-FILTER-100", "Coffee filters, 100 pcs", "3.90"),
    ("SKU-TEA-GREEN-100", "Green tea, loose leaf 100 g", "6.50"),
)


@dataclass
class Sample:
    operation: str  # the request: "GET /customers/{id}", ...
    status: int  # 0: no response (connection error, timeout)
    seconds: float
    ok: bool


class Connection:
    """One keep-alive HTTP/1.1 connection with the staff token; reconnects after an error."""

    def __init__(self, port: int, token: str, timeout: float = 30.0) -> None:
        self._port = port
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._http: http.client.HTTPConnection | None = None
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self.recording = True

    def request(
        self, method: str, path: str, name: str, body: dict | None = None, headers: dict | None = None
    ) -> tuple[int, dict | None, dict[str, str]]:
        all_headers = {**self._headers, **(headers or {})}
        raw = None
        if body is not None:
            all_headers["Content-Type"] = "application/json"
            raw = json.dumps(body, ensure_ascii=False).encode()
        if self._http is None:
            self._http = http.client.HTTPConnection(HOST, self._port, timeout=self._timeout)
        start = time.perf_counter()
        try:
            self._http.request(method, path, body=raw, headers=all_headers)
            response = self._http.getresponse()
            payload = response.read()
            status = response.status
            reply_headers = {k.lower(): v for k, v in response.getheaders()}
        except (OSError, http.client.HTTPException) as error:
            elapsed = time.perf_counter() - start
            self._http.close()
            self._http = None
            self._record(name, 0, elapsed, f"{method} {path}: {type(error).__name__}: {error}")
            return 0, None, {}
        elapsed = time.perf_counter() - start
        ok = status in EXPECTED[method]
        self._record(name, status, elapsed, None if ok else f"{method} {path}: {status} {payload[:200]!r}")
        try:
            document = json.loads(payload) if payload else None
        except ValueError:
            document = None
        return status, document, reply_headers

    def _record(self, name: str, status: int, seconds: float, error: str | None) -> None:
        if not self.recording:
            if error:
                raise RuntimeError(f"while preparing the load: {error}")
            return
        self.samples.append(Sample(name, status, seconds, error is None))
        if error and len(self.errors) < 5:
            self.errors.append(error)

    def close(self) -> None:
        if self._http is not None:
            self._http.close()


@dataclass
class Pool:
    """What the clients pick from, and what the consumer-lag check needs to know."""

    customers: list[str]
    terms: list[str]
    baseline_purchases: dict[str, int]
    lock: threading.Lock = field(default_factory=threading.Lock)
    purchases: Counter = field(default_factory=Counter)
    complaints: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    last_purchase: tuple[str, str] | None = None


def _page(api: Connection, path: str, limit: int = 100, pages: int = 10) -> list[dict]:
    items: list[dict] = []
    cursor = None
    for _ in range(pages):
        separator = "&" if "?" in path else "?"
        query = f"{path}{separator}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        status, page, _ = api.request("GET", query, "prepare")
        if status != 200 or page is None:
            raise RuntimeError(f"GET {query}: {status}")
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    return items


def prepare(port: int, token: str, new_customers: int, seed: int = 3) -> Pool:
    """The seeded customers plus `new_customers` created now (not measured), the search terms
    (their names' first three letters) and each customer's purchase count as the loyalty
    consumer has it now."""
    api = Connection(port, token)
    api.recording = False
    rng = random.Random(seed)
    for n in range(new_customers):
        first = rng.choice(("Aino", "Åsa", "Mateja", "Ligaya", "Oliver", "Saara", "Nils", "Maja"))
        last = rng.choice(("Virtanen", "Lindqvist", "Novak", "Santos", "Reyes", "Berg", "Korhonen"))
        body = {"name": f"{first} {last}", "email": f"bench.{seed}.{n}@example.com", "locale": "en"}
        api.request("POST", "/customers", "prepare", body)
    customers = _page(api, "/customers")
    terms = sorted({c["name"].split()[0][:3].lower() for c in customers if len(c["name"].split()[0]) >= 3})
    baseline = {}
    for customer in customers:
        status, loyalty, _ = api.request("GET", f"/customers/{customer['id']}/loyalty", "prepare")
        baseline[customer["id"]] = loyalty["frequency"] if status == 200 and loyalty else 0
    api.close()
    return Pool([c["id"] for c in customers], terms, baseline)


class Client(threading.Thread):
    def __init__(
        self,
        number: int,
        port: int,
        token: str,
        pool: Pool,
        start: threading.Barrier,
        seconds: float,
        max_requests: int,
    ) -> None:
        super().__init__(name=f"load-{number}", daemon=True)
        self.api = Connection(port, token)
        self.pool = pool
        self.rng = random.Random(1000 + number)
        self.number = number
        self._start = start
        self._seconds = seconds
        self._max_requests = max_requests
        self.retries_after_412 = 0
        self.client_errors = 0
        self.gave_up_after_412 = 0
        self.finished_at = 0.0
        operations, weights = zip(*MIX, strict=True)
        self._operations: list[str] = list(operations)
        self._weights: list[int] = list(weights)
        self._sequence = 0

    def run(self) -> None:
        self._start.wait()
        deadline = time.monotonic() + self._seconds
        try:
            while time.monotonic() < deadline and len(self.api.samples) < self._max_requests:
                operation = self.rng.choices(self._operations, self._weights)[0]
                try:
                    getattr(self, "_" + operation.replace(" ", "_"))(self.rng.choice(self.pool.customers))
                except Exception:  # a bug in the bench, not the stack: counted, reported, not fatal
                    self.client_errors += 1
                    if len(self.api.errors) < 5:
                        self.api.errors.append("bench client: " + traceback.format_exc(limit=2))
        finally:
            self.finished_at = time.monotonic()
            self.api.close()

    def _get_customer(self, customer: str) -> None:
        self.api.request("GET", f"/customers/{customer}", "GET /customers/{id}")

    def _timeline_page(self, customer: str) -> None:
        self.api.request("GET", f"/customers/{customer}/interactions?limit=25", "GET timeline page")

    def _name_search(self, _customer: str) -> None:
        term = self.rng.choice(self.pool.terms)
        self.api.request("GET", f"/customers?q={urllib.parse.quote(term)}&limit=25", "GET /customers?q=")

    def _cases_page(self, _customer: str) -> None:
        self.api.request("GET", "/cases?limit=25", "GET /cases")

    def _record_visit(self, customer: str) -> None:
        kind = self.rng.choice(("visit", "inquiry", "feedback"))
        body = {"type": kind, "channel": self.rng.choice(("store", "phone", "web")), "note": "bench load"}
        self.api.request("POST", f"/customers/{customer}/interactions", "POST interaction", body)

    def _record_purchase(self, customer: str) -> None:
        items = [
            {"sku": sku, "name": name, "quantity": self.rng.randint(1, 2), "unit_price": price}
            for sku, name, price in self.rng.sample(SKUS, self.rng.randint(1, 2))
        ]
        body = {"type": "purchase", "channel": "store", "currency": "EUR", "items": items}
        status, created, _ = self.api.request(
            "POST", f"/customers/{customer}/interactions", "POST purchase", body
        )
        if status == 201 and created:
            with self.pool.lock:
                self.pool.purchases[customer] += 1
                self.pool.last_purchase = (customer, created["id"])

    def _record_complaint(self, customer: str) -> None:
        body = {
            "type": "complaint",
            "channel": "phone",
            "severity": self.rng.choice(("low", "low", "medium", "high")),
            "subject": "Delivery was late",
            "note": "bench load",
        }
        status, created, _ = self.api.request(
            "POST", f"/customers/{customer}/interactions", "POST complaint", body
        )
        if status == 201 and created:
            with self.pool.lock:
                self.pool.complaints[customer].add(created["id"])

    def _update_customer(self, customer: str) -> None:
        self._sequence += 1
        tags = [f"bench-{self.number}", f"round-{self._sequence % 7}"]
        for attempt in range(MAX_PATCH_ATTEMPTS):
            name = "GET /customers/{id}" if attempt == 0 else "GET /customers/{id} (re-read after 412)"
            status, _, headers = self.api.request("GET", f"/customers/{customer}", name)
            if status != 200 or "etag" not in headers:
                return
            status, _, _ = self.api.request(
                "PATCH",
                f"/customers/{customer}",
                "PATCH /customers/{id}",
                {"tags": tags},
                {"If-Match": headers["etag"]},
            )
            if status != 412:
                return
            self.retries_after_412 += 1
        self.gave_up_after_412 += 1


def _latency(samples: list[Sample]) -> dict:
    seconds = [s.seconds for s in samples]
    return {
        "count": len(seconds),
        "p50_ms": ms(median(seconds)),
        "p95_ms": ms(percentile(seconds, 95)),
        "p99_ms": ms(percentile(seconds, 99)),
        "max_ms": ms(max(seconds)),
    }


class MemorySampler(threading.Thread):
    """The stack's RSS once a second while it runs (bounded by `stop()`)."""

    def __init__(self, stack: LocalStack, interval: float = 1.0) -> None:
        super().__init__(name="rss", daemon=True)
        self._stack = stack
        self._interval = interval
        self._stopping = threading.Event()
        self.samples: list[dict] = []

    def run(self) -> None:
        start = time.monotonic()
        while not self._stopping.is_set():
            memory = self._stack.memory()
            self.samples.append(
                {
                    "t_s": round(time.monotonic() - start, 1),
                    "python_kb": (memory["python"] or {}).get("VmRSS"),
                    "consumers_kb": (memory["consumers"] or {}).get("VmRSS"),
                    "more_api_kb": (memory["more API processes"] or {}).get("VmRSS"),
                    "java_kb": (memory["java"] or {}).get("VmRSS"),
                    # cumulative CPU seconds, for the cores used between two samples
                    "python_cpu_s": process_cpu_s(self._stack.process.pid),
                    "consumers_cpu_s": process_cpu_s(self._stack.consumers_pid),
                    "java_cpu_s": process_cpu_s(self._stack.java_pid),
                    "machine_busy_s": machine_cpu_s()[0],
                }
            )
            self._stopping.wait(self._interval)

    def stop(self) -> None:
        self._stopping.set()
        self.join(5)

    def peak_kb(self, which: str) -> int | None:
        values = [s[f"{which}_kb"] for s in self.samples if s[f"{which}_kb"] is not None]
        return max(values) if values else None


def _role(name: str) -> str:
    if "chalice.local" in name:
        return "API request threads (Chalice local gateway + app)"
    if "werkzeug" in name:
        return "moto server request threads"
    return "other threads (main, accept loops, moto, DynamoDB Local watcher)"


class CpuWindow:
    """Where the CPU went between `start()` and `stop()`: the stack's threads by role (thread
    names from bench.stack_probe), the DynamoDB Local JVM, this bench process, and every other
    process of the machine (other work sharing the cores)."""

    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack

    def _snapshot(self) -> dict:
        pid = self._stack.process.pid
        return {
            "t": time.monotonic(),
            "machine": machine_cpu_s(),
            "stack": process_cpu_s(pid),
            "threads": thread_cpu_s(pid),
            "java": process_cpu_s(self._stack.java_pid),
            "consumers": process_cpu_s(self._stack.consumers_pid),
            "more_api": processes_cpu_s(self._stack.api_worker_pids),
            "bench": process_cpu_s(os.getpid()),
        }

    def start(self) -> None:
        probe = self._stack.probe_state()
        self._names, self._calls0 = probe["threads"], probe["calls"]
        self._start = self._snapshot()

    def stop(self) -> None:
        self._end = self._snapshot()
        probe = self._stack.probe_state()
        self._names.update(probe["threads"])
        self._calls1 = probe["calls"]

    def _calls(self) -> dict:
        """AWS calls made in the window, by thread role and operation."""
        before = {(r, s, o): n for r, s, o, n in self._calls0}
        calls: dict[str, Counter] = defaultdict(Counter)
        for role, service, operation, n in self._calls1:
            delta = n - before.get((role, service, operation), 0)
            if delta:
                calls[_role(role)][f"{service}.{operation}"] += delta
        return {role: dict(c.most_common()) for role, c in calls.items()}

    def report(self, requests: int) -> dict:
        a, b = self._start, self._end
        wall = b["t"] - a["t"]
        roles: Counter = Counter()
        for tid, cpu in b["threads"].items():
            roles[_role(self._names.get(tid, ""))] += cpu - a["threads"].get(tid, 0.0)
        stack_total = (b["stack"] or 0) - (a["stack"] or 0)
        roles["threads that ended during the window"] = stack_total - sum(roles.values())
        busy = b["machine"][0] - a["machine"][0]
        java = (b["java"] - a["java"]) if a["java"] is not None and b["java"] is not None else 0.0
        consumers = (
            (b["consumers"] - a["consumers"])
            if a["consumers"] is not None and b["consumers"] is not None
            else 0.0
        )
        more_api = (b["more_api"] - a["more_api"]) if a["more_api"] is not None and b["more_api"] else 0.0
        bench = (b["bench"] or 0) - (a["bench"] or 0)

        def cores(seconds: float) -> float:
            return round(seconds / wall, 2)

        return {
            "window_s": round(wall, 2),
            "cores": {
                "machine busy": cores(busy),
                "stack python process (API, moto)": cores(stack_total),
                "more API processes": cores(more_api),
                "consumers process (event pump)": cores(consumers),
                "DynamoDB Local JVM": cores(java),
                "bench process (load clients)": cores(bench),
                "other processes": cores(busy - stack_total - more_api - consumers - java - bench),
            },
            "stack_threads_cores": {role: cores(cpu) for role, cpu in roles.most_common()},
            "aws_calls": self._calls(),
            "aws_calls_per_second": {
                role: round(sum(c.values()) / wall, 1) for role, c in self._calls().items()
            },
            "stack_cpu_ms_per_request": round(stack_total / max(1, requests) * 1000, 2),
            "more_api_cpu_ms_per_request": round(more_api / max(1, requests) * 1000, 2),
            "consumers_cpu_ms_per_request": round(consumers / max(1, requests) * 1000, 2),
            "java_cpu_ms_per_request": round(java / max(1, requests) * 1000, 2),
        }


def run_load(
    stack: LocalStack, pool: Pool, clients: int, seconds: float, max_requests: int
) -> tuple[dict, list[Client]]:
    barrier = threading.Barrier(clients + 1)
    workers = [
        Client(n, stack.api_port, stack.token, pool, barrier, seconds, max_requests) for n in range(clients)
    ]
    for worker in workers:
        worker.start()
    cpu = CpuWindow(stack)
    cpu.start()
    barrier.wait()
    started = time.monotonic()
    # The CPU window closes at the planned end, while every client's connection is still open.
    time.sleep(max(0.0, seconds - 0.5))
    cpu.stop()
    # Requests completed in the window (list lengths read without a lock: approximate).
    in_window = sum(len(w.api.samples) for w in workers)
    for worker in workers:
        worker.join(seconds + 120)
    ended = max(w.finished_at for w in workers)
    samples = [s for w in workers for s in w.api.samples]
    by_operation: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_operation[sample.operation].append(sample)
    duration = ended - started
    errors = [s for s in samples if not s.ok]
    statuses = Counter(str(s.status) for s in samples)
    figures = {
        "clients": clients,
        "seconds_planned": seconds,
        "seconds": round(duration, 2),
        "max_requests_per_client": max_requests,
        "requests": len(samples),
        "requests_per_second": round(len(samples) / duration, 1),
        **_latency(samples),
        "errors": len(errors),
        "error_statuses": dict(Counter(str(s.status) for s in errors)),
        "error_examples": [e for w in workers for e in w.api.errors][:8],
        "statuses": dict(statuses),
        "conflicts_412": statuses.get("412", 0),
        "retries_after_412": sum(w.retries_after_412 for w in workers),
        "gave_up_after_412": sum(w.gave_up_after_412 for w in workers),
        "bench_client_errors": sum(w.client_errors for w in workers),
        "writes": sum(len(v) for k, v in by_operation.items() if k.startswith(("POST", "PATCH"))),
        "operations": {name: _latency(group) for name, group in sorted(by_operation.items())},
        "cpu": cpu.report(in_window),
    }
    return figures, workers


def consumer_lag(
    port: int, token: str, pool: Pool, ended_at: float, timeout: float, checkers: int = 6
) -> dict:
    """Seconds from the end of the load until every complaint of the load has its case (GET
    /customers/{id}/cases) and every customer's loyalty counts every purchase of the load (GET
    /customers/{id}/loyalty `frequency`, which includes the last purchase). Each round checks
    what is still missing, `checkers` requests at a time; the figure is when the round that
    found nothing missing ended, so it is an upper bound by at most one round."""
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()
    connections: list[Connection] = []

    def api() -> Connection:
        if not hasattr(local, "api"):
            local.api = Connection(port, token)
            local.api.recording = False
            connections.append(local.api)
        return local.api

    cases_pending = {c: set(ids) for c, ids in pool.complaints.items() if ids}
    loyalty_pending = {c: pool.baseline_purchases.get(c, 0) + n for c, n in pool.purchases.items()}
    checks = sum(len(v) for v in cases_pending.values()) + len(loyalty_pending)
    last_seen: dict[str, int] = {}

    def check_cases(customer: str) -> None:
        cases = _page(api(), f"/customers/{customer}/cases")
        cases_pending[customer] -= {c["interaction_id"] for c in cases}

    def check_loyalty(customer: str) -> None:
        status, loyalty, _ = api().request("GET", f"/customers/{customer}/loyalty", "lag")
        last_seen[customer] = loyalty["frequency"] if status == 200 and loyalty else -1

    rounds = 0
    rounds_s: list[float] = []
    caught_up_s = cases_done_s = loyalty_done_s = None
    deadline = ended_at + timeout
    with ThreadPoolExecutor(max_workers=checkers) as executor:
        while time.monotonic() < deadline:
            rounds += 1
            began = time.monotonic()
            jobs = [executor.submit(check_cases, c) for c in cases_pending]
            jobs += [executor.submit(check_loyalty, c) for c in loyalty_pending]
            for job in jobs:
                job.result()
            for customer in [c for c, missing in cases_pending.items() if not missing]:
                del cases_pending[customer]
            for customer in [c for c, n in loyalty_pending.items() if last_seen.get(c, -1) >= n]:
                del loyalty_pending[customer]
            now = time.monotonic()
            rounds_s.append(round(now - began, 2))
            if not cases_pending and cases_done_s is None:
                cases_done_s = round(now - ended_at, 2)
            if not loyalty_pending and loyalty_done_s is None:
                loyalty_done_s = round(now - ended_at, 2)
            if not cases_pending and not loyalty_pending:
                caught_up_s = round(now - ended_at, 2)
                break
            time.sleep(0.1)
    for connection in connections:
        connection.close()
    return {
        "caught_up_s": caught_up_s,
        "timeout_s": timeout,
        "checks": checks,
        "complaints": sum(len(v) for v in pool.complaints.values()),
        "purchases": sum(pool.purchases.values()),
        "rounds": rounds,
        "first_round_s": rounds_s[0] if rounds_s else None,
        "started_after_load_s": None,
        "cases_caught_up_s": cases_done_s,
        "loyalty_caught_up_s": loyalty_done_s,
        "missing_cases": sum(len(v) for v in cases_pending.values()),
        "missing_loyalty": {c: (last_seen.get(c), n) for c, n in list(loyalty_pending.items())[:5]},
    }


def _kb_to_mb(value: int | None) -> float | None:
    return round(value / 1024, 1) if value is not None else None


def _memory_mb(memory: dict) -> dict:
    return {
        which: {"rss_mb": _kb_to_mb(m.get("VmRSS")), "peak_mb": _kb_to_mb(m.get("VmHWM"))} if m else None
        for which, m in memory.items()
    }


def load_average() -> list[float]:
    try:
        with open("/proc/loadavg") as stream:
            return [float(x) for x in stream.read().split()[:3]]
    except OSError:
        return []


def _start(backend: str, result: dict, log: Callable[[str], None], probe: Path | None = None) -> LocalStack:
    """Start the stack; once more if it fails (the failure is kept in `result`, never hidden)."""
    try:
        return LocalStack.start(backend, seed=True, probe=probe)
    except RuntimeError as error:
        result["failed_starts"] = [str(error)[:2000]]
        log(f"{backend}: the stack failed to start ({str(error)[:200]}); starting it once more")
        return LocalStack.start(backend, seed=True, probe=probe)


def stack_run(
    backend: str,
    *,
    clients: int,
    seconds: float,
    max_requests: int,
    new_customers: int,
    lag_timeout: float,
    log: Callable[[str], None],
) -> dict:
    """Start the stack, load it, wait for the consumers, read the memory, stop it."""
    result: dict = {"backend": backend, "load_average_before": load_average()}
    log(f"load/{backend}: starting python -m chalicelib.local.run (demo seed) ...")
    import tempfile

    probe = Path(tempfile.gettempdir()) / f"bench-threads-{backend}-{os.getpid()}.json"
    stack = _start(backend, result, log, probe=probe)
    try:
        result["startup"] = {
            "ready_s": round(stack.ready_s or 0, 2),
            "steps": [{"at_s": s.at_s, "step": s.message, "took_s": s.took_s} for s in stack.steps],
            "command": "python -m bench.stack_probe (runs chalicelib.local.run as __main__)",
        }
        log(f"load/{backend}: URL printed after {stack.ready_s:.1f} s")
        result["memory_at_rest_after_seed"] = _memory_mb(stack.memory())
        pool = prepare(stack.api_port, stack.token, new_customers)
        result["customers"] = len(pool.customers)
        sampler = MemorySampler(stack)
        sampler.start()
        log(f"load/{backend}: {clients} clients for {seconds:.0f} s ...")
        figures, workers = run_load(stack, pool, clients, seconds, max_requests)
        ended_at = max(w.finished_at for w in workers)
        lag_started = time.monotonic()
        result["load"] = figures
        log(
            f"load/{backend}: {figures['requests']} requests, {figures['requests_per_second']} req/s, "
            f"p99 {figures['p99_ms']:.0f} ms, {figures['errors']} errors; waiting for the consumers ..."
        )
        lag = consumer_lag(stack.api_port, stack.token, pool, ended_at, lag_timeout)
        lag["started_after_load_s"] = round(lag_started - ended_at, 2)
        result["consumer_lag"] = lag
        sampler.stop()
        result["memory_during_load_peak_mb"] = {
            "python": _kb_to_mb(sampler.peak_kb("python")),
            "consumers": _kb_to_mb(sampler.peak_kb("consumers")),
            "more_api": _kb_to_mb(sampler.peak_kb("more_api")),
            "java": _kb_to_mb(sampler.peak_kb("java")),
        }
        result["memory_after_load"] = _memory_mb(stack.memory())
        result["memory_samples"] = sampler.samples
    finally:
        result["stop_s"] = round(stack.stop(), 2)
        probe.unlink(missing_ok=True)
        warnings = [line for line in stack.stderr().splitlines() if line.strip()]
        result["stderr_lines"] = len(warnings)
        result["stderr_tail"] = warnings[-15:]
        result["stdout_lines_after_banner"] = stack.later_lines
        result["load_average_after"] = load_average()
    return result


def startup_only(backend: str, log: Callable[[str], None]) -> dict:
    log(f"startup/{backend}: starting python -m chalicelib.local.run (demo seed) ...")
    result: dict = {"backend": backend, "load_average_before": load_average()}
    stack = _start(backend, result, log)
    try:
        result["startup"] = {
            "ready_s": round(stack.ready_s or 0, 2),
            "steps": [{"at_s": s.at_s, "step": s.message, "took_s": s.took_s} for s in stack.steps],
        }
        result["memory_at_rest_after_seed"] = _memory_mb(stack.memory())
    finally:
        result["stop_s"] = round(stack.stop(), 2)
    return result
