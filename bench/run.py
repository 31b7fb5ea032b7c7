"""`make bench`: performance figures of the CRM backend, printed as a table and written to
bench/results/latest.json. See bench/README.md for what each figure means."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import RESULTS, apply_local_env  # noqa: E402

SECTIONS = (
    "coldstart",
    "counts",
    "overhead",
    "stream",
    "campaigns",
    "scale",
    "backends",
    "duplicates",
    "package",
    "startup",
    "load",
    "imports",
)
# Diagnostics, only with --only: `profile` (about a minute) says where a request's CPU goes.
OPTIONAL = ("profile",)
_STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[bench {time.perf_counter() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS + OPTIONAL}"
    )
    parser.add_argument("--coldstart-runs", type=int, default=9, help="fresh processes per variant (≥ 7)")
    parser.add_argument("--importtime-runs", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=100, help="handler overhead rounds (≥ 50)")
    parser.add_argument("--small", type=int, default=1_000, help="items per table, small size")
    parser.add_argument("--large", type=int, default=100_000, help="items per table, large size")
    parser.add_argument("--scale-iterations", type=int, default=50)
    parser.add_argument("--stock-iterations", type=int, default=5, help="rounds against stock moto at scale")
    parser.add_argument("--stream-batches", type=int, default=9)
    parser.add_argument("--duplicates-small", type=int, default=1_000, help="customers, small size")
    parser.add_argument("--duplicates-large", type=int, default=100_000, help="customers, large size")
    parser.add_argument("--import-customers", type=int, default=100_000, help="rows of the customers import")
    parser.add_argument(
        "--import-interactions", type=int, default=100_000, help="rows of the interactions import"
    )
    parser.add_argument("--import-workers", type=int, default=2, help="chunk consumers at once")
    parser.add_argument(
        "--campaign-recipients", type=int, default=1_000, help="members of the campaign's segment"
    )
    parser.add_argument("--backends-writes", type=int, default=200, help="per size, DynamoDB Local")
    parser.add_argument("--backends-queries", type=int, default=200, help="per size, DynamoDB Local")
    parser.add_argument(
        "--backends-large-tables",
        choices=("interactions", "both"),
        default="interactions",
        help="which tables grow to --large in section backends (both: DynamoDB Local loads twice as much)",
    )
    parser.add_argument("--moto-writes-small", type=int, default=10)
    parser.add_argument("--moto-queries-small", type=int, default=20)
    parser.add_argument("--moto-writes-large", type=int, default=3, help="seconds each on moto")
    parser.add_argument("--moto-queries-large", type=int, default=5)
    parser.add_argument("--load-clients", type=int, default=12)
    parser.add_argument("--load-seconds", type=float, default=60, help="on DynamoDB Local")
    parser.add_argument("--load-seconds-moto", type=float, default=20)
    parser.add_argument("--load-max-requests", type=int, default=20_000, help="per client")
    parser.add_argument("--load-customers", type=int, default=45, help="created before the load")
    parser.add_argument("--load-customers-moto", type=int, default=10, help="moto: each takes ~0.5 s")
    parser.add_argument("--lag-timeout", type=float, default=60)
    parser.add_argument("--load-backends", default="local,moto", help="backends of sections startup and load")
    parser.add_argument("--output", type=Path, default=RESULTS / "latest.json")
    return parser.parse_args(argv)


def guarded(results: dict, name: str, fn: Callable[[], dict]) -> None:
    """One failing section is reported as such; the others still run."""
    log(f"{name} ...")
    start = time.perf_counter()
    try:
        results[name] = fn()
    except Exception as error:
        traceback.print_exc()
        results[name] = {"error": f"{type(error).__name__}: {error}"}
    results[name]["seconds"] = round(time.perf_counter() - start, 1)
    log(f"{name} done in {results[name]['seconds']} s")


def _start_local_worker(args: argparse.Namespace):
    """bench.backends in a subprocess, through its small-size phase; None when DynamoDB Local
    cannot run here or the worker failed (the reason is logged)."""
    from bench import backends
    from chalicelib.local import dynamodb_local

    reason = dynamodb_local.why_unavailable()
    if reason is not None:
        log(f"backends: DynamoDB Local unavailable: {reason}")
        return None
    log("backends: DynamoDB Local at the small size (python -m bench.backends) ...")
    worker = backends.LocalWorker(args)
    if not worker.wait("small"):
        log(f"backends: {worker.error}")
        return None
    return worker


def _load_scale_tables(args: argparse.Namespace) -> None:
    from bench import inprocess

    log("scale: bulk-loading moto ...")
    try:
        inprocess.scale_tables(args.small, args.large, log)
    except Exception:  # the sections that need the tables load them again and report it
        traceback.print_exc()


def run(args: argparse.Namespace) -> dict:
    apply_local_env()
    only = {s.strip() for s in args.only.split(",") if s.strip()}
    results: dict = {}
    if "coldstart" in only:
        from bench import coldstart

        def cold() -> dict:
            figures = coldstart.import_times(args.coldstart_runs)
            figures["importtime"] = coldstart.import_profile(args.importtime_runs)
            return figures

        guarded(results, "coldstart", cold)
    worker = None
    if only & {"counts", "overhead", "stream", "campaigns", "scale", "backends", "duplicates"}:
        from bench import inprocess, mock

        moto = mock.start_moto()
        recorder = mock.Recorder()
        try:
            http = inprocess.Http()
            if "counts" in only:
                guarded(results, "counts", lambda: inprocess.request_counts(http, recorder))
            if "overhead" in only:
                guarded(
                    results,
                    "overhead",
                    lambda: inprocess.handler_overhead(http, recorder, args.iterations, warmup=20),
                )
            if "stream" in only:
                guarded(
                    results,
                    "stream",
                    lambda: inprocess.stream_throughput(recorder, args.stream_batches, warmup=2),
                )
            if "campaigns" in only:
                # Before the scale data set is loaded: the run empties every table first.
                from bench import campaigns

                guarded(
                    results,
                    "campaigns",
                    lambda: campaigns.campaign_run(http, recorder, args.campaign_recipients, log),
                )
            if "backends" in only:
                worker = _start_local_worker(args)
            if only & {"scale", "backends"}:
                # Untimed work side by side: DynamoDB Local's bulk load (a JVM), moto's (this
                # process) and the package build; every timing runs alone.
                if worker is not None:
                    worker.go()
                _load_scale_tables(args)
                if "package" in only:
                    from bench.package_size import package_size

                    guarded(results, "package", package_size)
                if worker is not None:
                    log("backends: waiting for DynamoDB Local's bulk load ...")
                    worker.wait("loaded")
            if "scale" in only:
                guarded(
                    results,
                    "scale",
                    lambda: inprocess.scale(
                        http,
                        recorder,
                        args.small,
                        args.large,
                        args.scale_iterations,
                        args.stock_iterations,
                        log,
                    ),
                )
            if "backends" in only:
                from bench import backends

                def both() -> dict:
                    loaded = inprocess.scale_tables(args.small, args.large, log)
                    log("backends: moto ...")
                    on_moto = backends.moto(http, recorder, loaded, args)
                    if worker is None:
                        return {"moto": on_moto, "local": {"error": "DynamoDB Local did not start"}}
                    log("backends: DynamoDB Local at the large size ...")
                    worker.go()
                    return {"moto": on_moto, "local": worker.result()}

                guarded(results, "backends", both)
            if "duplicates" in only:
                # Last of the moto sections: it empties the customers table the others loaded.
                from bench import duplicates

                guarded(
                    results,
                    "duplicates",
                    lambda: duplicates.detection(
                        http, recorder, args.duplicates_small, args.duplicates_large, log
                    ),
                )
        finally:
            if worker is not None:
                worker.stop()
            recorder.uninstall()
            moto.stop()
    if "imports" in only:
        from bench import imports

        guarded(
            results,
            "imports",
            lambda: imports.run(args.import_customers, args.import_interactions, args.import_workers, log),
        )
    if "package" in only and "package" not in results:
        from bench.package_size import package_size

        guarded(results, "package", package_size)
    if "profile" in only:
        from bench.profile_requests import profile

        guarded(results, "profile", profile)
    stack_backends = [b.strip() for b in args.load_backends.split(",") if b.strip()]
    if "load" in only:
        from bench import load

        def loads() -> dict:
            runs = {}
            for backend in stack_backends:
                try:
                    runs[backend] = load.stack_run(
                        backend,
                        clients=args.load_clients,
                        seconds=args.load_seconds if backend == "local" else args.load_seconds_moto,
                        max_requests=args.load_max_requests,
                        new_customers=args.load_customers if backend == "local" else args.load_customers_moto,
                        lag_timeout=args.lag_timeout,
                        log=log,
                    )
                except Exception as error:
                    traceback.print_exc()
                    runs[backend] = {"backend": backend, "error": f"{type(error).__name__}: {error}"}
            return runs

        guarded(results, "load", loads)
    if "startup" in only:
        from bench import load

        if "load" in results and "error" not in results["load"]:
            # The load section's stacks were started as this section starts them (through
            # bench.stack_probe, which runs chalicelib.local.run as __main__).
            results["startup"] = {
                backend: {k: run_[k] for k in ("backend", "startup", "memory_at_rest_after_seed", "stop_s")}
                | {"load_average_before": run_["load_average_before"]}
                for backend, run_ in results["load"].items()
                if backend != "seconds" and "startup" in run_
            }
            results["startup"]["seconds"] = 0.0
        else:
            guarded(
                results,
                "startup",
                lambda: {backend: load.startup_only(backend, log) for backend in stack_backends},
            )
    return results


# -- the table --------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def _error_row(rows: list, figure: str, section: dict) -> bool:
    if "error" in section:
        rows.append((figure, f"error: {section['error']}"[:90], "", "n/a"))
        return True
    return False


def table_rows(results: dict) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    cold = results.get("coldstart")
    if cold and not _error_row(rows, "1. cold start", cold):
        app, base = cold["app"], cold["baseline"]
        rows.append(
            (
                f"1. import app vs bare Chalice+boto3 (median of {cold['runs']} processes)",
                f"{app['import_ms_median']:.0f} ms vs {base['import_ms_median']:.0f} ms"
                f" = {cold['ratio']:.2f}x",
                "<= 1.5x",
                verdict(cold["ratio"] <= 1.5),
            )
        )
        third = [r for r in cold["importtime"]["top"] if r["kind"] == "third-party"][:5]
        top = ", ".join(f"{r['package']} {r['cumulative_us'] / 1000:.0f}" for r in third)
        rows.append(("1. import-time top third-party (cumulative ms)", top, "", "info"))
    counts = results.get("counts")
    if counts and not _error_row(rows, "2. requests", counts):
        for name, figures in counts.items():
            if name == "seconds":
                continue
            ops = "+".join(f"{op}x{n}" if n > 1 else op for op, n in sorted(figures["operations"].items()))
            rows.append(
                (
                    f"2. DynamoDB requests: {name}",
                    f"{figures['total']} ({ops})",
                    f"<= {figures['minimum']}",
                    verdict(figures["total"] <= figures["minimum"] and not figures.get("scan")),
                )
            )
    overhead = results.get("overhead")
    if overhead and not _error_row(rows, "3. handler overhead", overhead):
        for name in ("get customer", "timeline page"):
            f = overhead[name]
            rows.append(
                (
                    f"3. handler overhead: {name} (app / raw boto3)",
                    f"{f['app_ms']:.2f} / {f['raw_ms']:.2f} ms = {f['ratio']:.2f}x "
                    f"(outside DynamoDB calls {f['app_outside_dynamodb_ms']:.2f} ms)",
                    "<= 1.3x",
                    verdict(f["ratio"] <= 1.3),
                )
            )
    scale = results.get("scale")
    if scale and not _error_row(rows, "4. scale", scale):
        small = sum(scale["sizes"]["small"].values()) // 2
        large = sum(scale["sizes"]["large"].values()) // 2
        label = f"{large:,}/{small:,}"
        for name, f in scale["keyed"].items():
            rows.append(
                (
                    f"4. {name} {label} items, key-addressed moto",
                    f"{f['small_ms']:.2f} -> {f['large_ms']:.2f} ms = {f['ratio']:.2f}x",
                    "<= 1.2x",
                    verdict(f["ratio"] <= 1.2),
                )
            )
        for name, f in scale["stock"].items():
            rows.append(
                (
                    f"4. {name} {label} items, stock moto",
                    f"{f['small_ms']:.1f} -> {f['large_ms']:.1f} ms = {f['ratio']:.1f}x",
                    "info: moto Query walks the table",
                    "info",
                )
            )
        for name, sizes in scale["requests"].items():
            same = sizes["small"] == sizes["large"]
            reads = sizes["large"]["reads"]
            scanned = "/".join(str(r["scanned"]) for r in reads)
            rows.append(
                (
                    f"4. {name}: requests and items read, both sizes",
                    f"{sum(sizes['large']['operations'].values())} requests, Query read {scanned} items",
                    "identical",
                    verdict(same),
                )
            )
    stream = results.get("stream")
    if stream and not _error_row(rows, "5. stream", stream):
        rows.append(
            (
                "5. loyalty consumer, batches of 100 records / 10 customers",
                f"{stream['records_per_second']:.0f} records/s ({stream['batch_ms_median']:.0f} ms/batch, "
                f"{stream['dynamodb_share'] * 100:.0f}% in moto)",
                "info",
                "info",
            )
        )
    package = results.get("package")
    if package and not _error_row(rows, "5. deployment package", package):
        rows.append(
            (
                "5. deployment.zip (prod)",
                f"{package['zip_mb']:.1f} MB zipped, {package['unzipped_mb']:.1f} MB unzipped",
                "<= 50 / <= 250 MB",
                verdict(package["zip_mb"] <= 50 and package["unzipped_mb"] <= 250),
            )
        )
    elif package:
        rows[-1] = ("5. deployment.zip (prod)", "n/a: " + package["error"][:80], "<= 50 / <= 250 MB", "n/a")
    rows += backend_rows(results)
    rows += stack_rows(results)
    rows += profile_rows(results)
    rows += campaign_rows(results)
    from bench.duplicates import rows as duplicate_rows

    rows += duplicate_rows(results)
    from bench.imports import rows as import_rows

    rows += import_rows(results)
    return rows


def _ops(operations: dict) -> str:
    return ", ".join(f"{op} {n:,}" for op, n in sorted(operations.items(), key=lambda item: -item[1]))


def campaign_rows(results: dict) -> list[tuple[str, str, str, str]]:
    section = results.get("campaigns")
    rows: list[tuple[str, str, str, str]] = []
    if not section or _error_row(rows, "11. campaign run", section):
        return rows
    run_, n = section["run"], section["recipients"]
    head = f"11. campaign run, {n:,} recipients:"
    reasons = ", ".join(f"{reason} {count}" for reason, count in run_["skipped"].items() if count)
    decided = section["sent"] + section["skipped"] + section["failed"]
    once = section["ses_messages"] == section["ses_recipients"] == section["sent"]
    dynamodb, sqs, ses = section["dynamodb"], section["sqs"], section["ses"]
    rows.append(
        (
            f"{head} sent / skipped / failed",
            f"{section['sent']} / {section['skipped']} ({reasons}) / {section['failed']}; "
            f"SES took {section['ses_messages']} messages for {section['ses_recipients']} addresses",
            "all decided, 1 message per sent",
            verdict(run_["status"] == "completed" and decided == n and once),
        )
    )
    rows.append(
        (
            f"{head} DynamoDB requests per recipient",
            f"{dynamodb['per_recipient']:.2f} ({dynamodb['requests']:,}: {_ops(dynamodb['operations'])})",
            f"<= {dynamodb['allowed_per_recipient']:.2f} (design)",
            verdict(dynamodb["requests"] <= dynamodb["allowed"]),
        )
    )
    messages = sqs["messages"]
    rows.append(
        (
            f"{head} SQS requests per recipient (the app's)",
            f"{sqs['per_recipient']:.3f} ({_ops(sqs['operations'])}) for {sum(messages.values())} messages "
            f"({sqs['messages_per_recipient']:.3f} per recipient: {_ops(messages)})",
            f"<= {sqs['allowed'] / n:.3f} (design)",
            verdict(sqs["requests"] <= sqs["allowed"]),
        )
    )
    rows.append(
        (
            f"{head} SES requests per sent message",
            f"{ses['per_sent']:.2f} ({_ops(ses['operations'])})",
            "1",
            verdict(ses["requests"] == section["sent"]),
        )
    )
    pump = section["pump"]
    rows.append(
        (
            f"{head} the pump's polling (Lambda's event source mappings)",
            "; ".join(_ops(ops) for ops in pump.values()),
            "info: not the app's requests",
            "info",
        )
    )
    seconds = section["seconds_in_requests"]
    rows.append(
        (
            f"{head} wall time, queued to completed",
            f"{section['wall_s']:.0f} s, {section['recipients_per_second']:.1f} recipients/s "
            f"({seconds.get('dynamodb', 0):.0f} s in DynamoDB calls; CPU {section['cpu_s']:.0f} s, "
            f"load average {section['load_average_before']:.1f})",
            "info: moto-bound",
            "info",
        )
    )
    return rows


def profile_rows(results: dict) -> list[tuple[str, str, str, str]]:
    section = results.get("profile")
    rows: list[tuple[str, str, str, str]] = []
    if not section or _error_row(rows, "10. profile", section):
        return rows
    rows.append(
        (
            "10. one request at a time, DynamoDB Local: wall / server CPU / JVM CPU",
            f"{section['wall_ms_per_request']:.1f} / {section['server_thread_cpu_ms_per_request']:.1f} / "
            f"{section['java_cpu_ms_per_request']:.1f} ms "
            f"({section['dynamodb_calls_per_request']} DynamoDB calls)",
            "info",
            "info",
        )
    )
    top = ", ".join(
        f"{name.split(' (')[0]} {figure['ms_per_request']:.1f}"
        for name, figure in list(section["components"].items())[:5]
    )
    rows.append(("10. request wall time by component (ms)", top, "info", "info"))
    per_op = ", ".join(
        f"{name.split(' (')[0]} {figure['java_cpu_ms']:.1f}"
        for name, figure in section["dynamodb_local_cpu_per_operation"].items()
    )
    rows.append(("10. DynamoDB Local JVM CPU per call (ms)", per_op, "info", "info"))
    return rows


BACKEND_NAMES = {"local": "DynamoDB Local", "moto": "moto"}


def _p(figure: dict) -> str:
    return f"{figure['p50_ms']:.1f}/{figure['p99_ms']:.1f} ms (n={figure['n']})"


def backend_rows(results: dict) -> list[tuple[str, str, str, str]]:
    section = results.get("backends")
    rows: list[tuple[str, str, str, str]] = []
    if not section or _error_row(rows, "6. backends", section):
        return rows
    local, on_moto = section.get("local", {}), section.get("moto", {})
    if "error" in local:
        rows.append(("6. DynamoDB Local", f"error: {local['error']}"[:90], "", "n/a"))
    for size in ("small", "large"):
        items = (local.get("sizes") or on_moto.get("sizes") or {}).get(size, {})
        label = ", ".join(f"{n.removeprefix('crm-local-')} {c:,}" for n, c in items.items())
        for kind, op, what in (
            ("write", "TransactWriteItems", "write: POST purchase = 1 TransactWriteItems"),
            ("query", "Query", "Query: timeline page = GetItem + Query"),
        ):
            values = []
            for name, backend in (("local", local), ("moto", on_moto)):
                figure = backend.get(size, {}).get(kind)
                if figure:
                    values.append(
                        f"{BACKEND_NAMES[name]} {_p(figure['http'])}, {op} {figure[op]['p50_ms']:.1f}"
                    )
            rows.append((f"6. {what} [{label}] p50/p99", "; ".join(values), "info", "info"))
    if "large" in local and "small" in local:
        growth = {
            kind: local["large"][kind]["http"]["p50_ms"] / local["small"][kind]["http"]["p50_ms"]
            for kind in ("write", "query")
        }
        rows.append(
            (
                "6. DynamoDB Local p50, large / small size",
                f"write {growth['write']:.2f}x, timeline page {growth['query']:.2f}x",
                "<= 1.2x",
                verdict(max(growth.values()) <= 1.2),
            )
        )
    stream = results.get("stream")
    if "stream" in local:
        moto_rate = f"; moto {stream['records_per_second']:.0f}" if stream and "error" not in stream else ""
        rows.append(
            (
                "6. loyalty consumer records/s (batches of 100, 10 customers)",
                f"DynamoDB Local {local['stream']['records_per_second']:.0f}{moto_rate}",
                "info",
                "info",
            )
        )
    if "rss_mb" in local:
        rss = local["rss_mb"]
        rows.append(
            (
                "6. DynamoDB Local RSS: empty / small / large size",
                f"{rss['empty']:.0f} / {rss['small']:.0f} / {rss['large']:.0f} MB "
                f"(peak {rss['peak']:.0f}); bulk load {local['load_items_per_second']} items/s",
                "info",
                "info",
            )
        )
    return rows


def _mb(memory: dict | None, which: str) -> str:
    value = (memory or {}).get(which) or {}
    return f"{value['rss_mb']:.0f}" if value.get("rss_mb") is not None else "-"


def stack_rows(results: dict) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    startup = results.get("startup")
    if startup and not _error_row(rows, "7. start-up", startup):
        for backend, run_ in startup.items():
            if backend == "seconds":
                continue
            steps = run_["startup"]["steps"]
            seed = next((s["took_s"] for s in steps if s["step"].startswith("demo data")), None)
            local = backend == "local"
            ready = run_["startup"]["ready_s"]
            if run_.get("failed_starts"):
                rows.append(
                    (
                        f"7. failed start-ups, {BACKEND_NAMES[backend]}",
                        run_["failed_starts"][0][:90],
                        "none",
                        "FAIL",
                    )
                )
            rows.append(
                (
                    f"7. start-up to the URL, demo seed, {BACKEND_NAMES[backend]}",
                    f"{ready:.1f} s (seed {seed} s; load average {run_['load_average_before'][0]:.1f})",
                    "< 15 s" if local else "info",
                    verdict(ready < 15) if local else "info",
                )
            )
    section = results.get("load")
    if section and not _error_row(rows, "8. load", section):
        for backend, run_ in section.items():
            if backend == "seconds":
                continue
            name = BACKEND_NAMES[backend]
            local = backend == "local"
            if "load" not in run_:
                rows.append((f"8. load, {name}", f"error: {run_.get('error', 'no figures')}"[:90], "", "n/a"))
                continue
            f = run_["load"]
            lag = run_["consumer_lag"]
            lagged = lag["caught_up_s"]
            head = f"8. {f['clients']} clients x {f['seconds']:.0f} s, {name}:"
            for figure, value, target, ok in (
                (
                    "throughput",
                    f"{f['requests_per_second']:.1f} req/s ({f['requests']} requests)",
                    ">= 96",
                    f["requests_per_second"] >= 96,
                ),
                (
                    "latency p50/p95/p99",
                    f"{f['p50_ms']:.0f}/{f['p95_ms']:.0f}/{f['p99_ms']:.0f} ms",
                    "p99 < 500 ms",
                    f["p99_ms"] < 500,
                ),
                (
                    "errors (5xx, unexpected)",
                    f"{f['errors']} {f['error_statuses'] or ''} (412s retried: {f['conflicts_412']})",
                    "0",
                    f["errors"] == 0,
                ),
                (
                    "consumer lag after the load",
                    f"{lagged} s ({lag['complaints']} cases, {lag['purchases']} purchases)"
                    if lagged is not None
                    else f"not caught up in {lag['timeout_s']:.0f} s",
                    "<= 5 s",
                    lagged is not None and lagged <= 5,
                ),
            ):
                rows.append(
                    (f"{head} {figure}", value, target if local else "info", verdict(ok) if local else "info")
                )
            rest, after = run_["memory_at_rest_after_seed"], run_["memory_after_load"]
            peak = run_["memory_during_load_peak_mb"]
            java = (
                f"; Java {_mb(rest, 'java')} -> {peak['java']:.0f} -> {_mb(after, 'java')}"
                if peak.get("java")
                else ""
            )
            consumers = "".join(
                f"; {label} {_mb(rest, name)} -> {peak[key]:.0f} -> {_mb(after, name)}"
                for label, name, key in (
                    ("more API", "more API processes", "more_api"),
                    ("consumers", "consumers", "consumers"),
                )
                if peak.get(key)
            )
            rows.append(
                (
                    f"9. RSS MB at rest / load peak / after, {name}",
                    f"API {_mb(rest, 'python')} -> {peak['python']:.0f} -> {_mb(after, 'python')}"
                    f"{consumers}{java}",
                    "info",
                    "info",
                )
            )
    return rows


def render(rows: list[tuple[str, str, str, str]]) -> str:
    header = ("figure", "value", "target", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)), line]
    out += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(out)


def details(results: dict) -> str:
    out = []
    cold = results.get("coldstart")
    if cold and "importtime" in cold:
        profile = cold["importtime"]
        out.append(
            f"\nimport app, -X importtime (median of {profile['runs']}; "
            f"app {profile['app_cumulative_us']:,} µs; "
            "cumulative includes what a package imports itself, so rows overlap):"
        )
        out.append(f"  {'package':<24} {'kind':<12} {'cumulative µs':>13} {'self µs':>9}")
        out += [
            f"  {r['package']:<24} {r['kind']:<12} {r['cumulative_us']:>13,} {r['self_us']:>9,}"
            for r in profile["top"]
        ]
        slowest = ", ".join(f"{m} {us:,}" for m, us in profile["project_modules_self_us"].items())
        out.append(f"  project modules by self µs (their own bodies): {slowest}")
    counts = results.get("counts")
    if counts and "error" not in counts:
        out.append("\nDynamoDB requests per operation (warm process), and the minimum the data model allows:")
        for name, f in counts.items():
            if name == "seconds":
                continue
            extra = f["first_call_in_process_extra"]
            first = f"; first call in a fresh process also: {extra}" if extra else ""
            out.append(f"  {name}: {f['total']} {f['operations']} — min {f['minimum']}: {f['why']}{first}")
    scale = results.get("scale")
    if scale and "error" not in scale:
        out.append(
            f"\nscale: items per table {scale['sizes']}; {scale['loaded_items']:,} items bulk-loaded in "
            f"{scale['load_seconds']} s; requests per page {json.dumps(scale['requests'])}"
        )
    out += campaign_details(results)
    package = results.get("package")
    if package and "error" not in package:
        out.append(
            f"\npackage: {package['command']} in {package['build_seconds']} s; {package['files']} files, "
            f"{package['pyc_files']} .pyc; largest (compressed MB): {package['largest_mb']}"
        )
    return "\n".join(out)


def campaign_details(results: dict) -> list[str]:
    from bench.campaigns import ALLOWED

    section = results.get("campaigns")
    if not section or "error" in section:
        return []
    data = section["data"]
    dynamodb = section["dynamodb"]
    out = [
        f"\ncampaign run ({section['recipients']:,} members, in-process moto; {data['with_habits']} of the "
        f"sent have purchase habits, the others get the popular list; members per shard "
        f"{data['members_per_shard']}): DynamoDB requests by part of the run:"
    ]
    out += [f"  {part}: {_ops(ops)}" for part, ops in dynamodb["by_part"].items()]
    out.append(f"  what the design allows ({dynamodb['allowed']:,} in all):")
    out += [
        f"    {part}: {allowed:,} ({ALLOWED[part][0]} each: {ALLOWED[part][1]})"
        for part, allowed in dynamodb["allowed_by_part"].items()
        if allowed
    ]
    out.append("  where the data model allows fewer:")
    out += [f"    {line}" for line in section["waste"]]
    others = section["other_consumers"]
    woken = ", ".join(
        f"{name} x{count}"
        for name, count in section["invocations"].items()
        if name not in ("start_campaign_runs", "deliver_campaigns")
    )
    made = "; ".join(
        f"{name}: " + ", ".join(f"{service} {_ops(ops)}" for service, ops in services.items())
        for name, services in others.items()
    )
    out.append(
        f"  other consumers the run's writes (timeline entries) woke: {woken or 'none'}; their "
        f"requests: {made or 'none (a marketing message is neither a purchase nor a complaint)'}"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    results = run(args)
    rows = table_rows(results)
    print(render(rows))
    print(details(results))
    document = {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "total_seconds": round(time.perf_counter() - _STARTED, 1),
        "table": [dict(zip(("figure", "value", "target", "result"), r, strict=True)) for r in rows],
        "results": results,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"\nwritten: {args.output.relative_to(ROOT) if args.output.is_relative_to(ROOT) else args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
