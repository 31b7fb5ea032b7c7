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

SECTIONS = ("coldstart", "counts", "overhead", "stream", "scale", "package")
_STARTED = time.perf_counter()


def log(message: str) -> None:
    print(f"[bench {time.perf_counter() - _STARTED:6.1f}s] {message}", file=sys.stderr, flush=True)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {SECTIONS}")
    parser.add_argument("--coldstart-runs", type=int, default=9, help="fresh processes per variant (≥ 7)")
    parser.add_argument("--importtime-runs", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=100, help="handler overhead rounds (≥ 50)")
    parser.add_argument("--small", type=int, default=1_000, help="items per table, small size")
    parser.add_argument("--large", type=int, default=100_000, help="items per table, large size")
    parser.add_argument("--scale-iterations", type=int, default=50)
    parser.add_argument("--stock-iterations", type=int, default=5, help="rounds against stock moto at scale")
    parser.add_argument("--stream-batches", type=int, default=9)
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
    if only & {"counts", "overhead", "stream", "scale"}:
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
        finally:
            recorder.uninstall()
            moto.stop()
    if "package" in only:
        from bench.package_size import package_size

        guarded(results, "package", package_size)
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
    package = results.get("package")
    if package and "error" not in package:
        out.append(
            f"\npackage: {package['command']} in {package['build_seconds']} s; {package['files']} files, "
            f"{package['pyc_files']} .pyc; largest (compressed MB): {package['largest_mb']}"
        )
    return "\n".join(out)


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
