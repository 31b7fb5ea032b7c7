"""Figure 1: the cold-start proxy. `import app` in fresh processes against a bare Chalice app that
imports boto3, interleaved; and where the time goes (`python -X importtime`)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections import defaultdict

from bench.common import BENCH, ROOT, median, ms, process_env

SNIPPET = "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( +)(\S+)$")
TARGETS = {"app": (ROOT, "app"), "baseline": (BENCH, "baseline_app")}


def _import_once(cwd, module: str) -> tuple[float, float]:
    """(seconds inside `import module`, seconds for the whole process)."""
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", SNIPPET.format(module=module)],
        cwd=cwd,
        env=process_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - start
    return float(done.stdout.strip().splitlines()[-1]), wall


def import_times(runs: int) -> dict:
    # One unmeasured run each writes the bytecode caches, as a warm deployment would have them.
    for cwd, module in TARGETS.values():
        _import_once(cwd, module)
    samples: dict[str, dict[str, list[float]]] = {k: {"import": [], "process": []} for k in TARGETS}
    names = list(TARGETS)
    for round_ in range(runs):
        order = names if round_ % 2 == 0 else names[::-1]
        for name in order:
            imported, wall = _import_once(*TARGETS[name])
            samples[name]["import"].append(imported)
            samples[name]["process"].append(wall)
    result = {
        name: {
            "import_ms_median": ms(median(s["import"])),
            "process_ms_median": ms(median(s["process"])),
            "import_ms_samples": [ms(x) for x in s["import"]],
        }
        for name, s in samples.items()
    }
    result["ratio"] = round(median(samples["app"]["import"]) / median(samples["baseline"]["import"]), 3)
    result["runs"] = runs
    return result


def parse_importtime(
    stderr: str, root_module: str = "app"
) -> tuple[float, dict[str, dict[str, float]], dict[str, int]]:
    """From `-X importtime` output: the root import's cumulative µs, and per top-level package
    its cumulative µs (each time the package is entered from outside it, so the packages it
    imports itself are included) and the sum of its own modules' self µs; and the self µs of
    each project module (what its own body costs, e.g. building pydantic models)."""
    lines = []
    for raw in stderr.splitlines():
        match = _LINE.match(raw)
        if match:
            self_us, cumulative_us, indent, module = match.groups()
            lines.append(((len(indent) - 1) // 2, module, int(self_us), int(cumulative_us)))
    end = max(i for i, line in enumerate(lines) if line[0] == 0 and line[1] == root_module)
    begin = max((i for i in range(end) if lines[i][0] == 0), default=-1) + 1
    subtree = lines[begin : end + 1]
    packages: dict[str, dict[str, float]] = defaultdict(lambda: {"cumulative_us": 0, "self_us": 0})
    # importtime prints a module after the modules it imported: read backwards, parents come first.
    stack: list[tuple[int, str]] = []
    for depth, module, self_us, cumulative_us in reversed(subtree):
        while stack and stack[-1][0] >= depth:
            stack.pop()
        top = module.split(".")[0]
        parent_top = stack[-1][1].split(".")[0] if stack else None
        if parent_top != top:
            packages[top]["cumulative_us"] += cumulative_us
        packages[top]["self_us"] += self_us
        stack.append((depth, module))
    modules = {m: s for _, m, s, _ in subtree if m.split(".")[0] in FIRST_PARTY}
    return float(subtree[-1][3]), dict(packages), modules


FIRST_PARTY = {"app", "chalicelib", "bench"}


def _kind(package: str) -> str:
    if package in FIRST_PARTY:
        return "project"
    return "stdlib" if package in sys.stdlib_module_names or package.startswith("_") else "third-party"


def import_profile(runs: int, top: int = 10) -> dict:
    totals: list[float] = []
    per_package: dict[str, dict[str, list[float]]] = defaultdict(lambda: {"cumulative_us": [], "self_us": []})
    per_module: dict[str, list[float]] = defaultdict(list)
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import app"],
            cwd=ROOT,
            env=process_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        total, packages, modules = parse_importtime(done.stderr)
        totals.append(total)
        for name, self_us in modules.items():
            per_module[name].append(self_us)
        for name, figures in packages.items():
            for key, value in figures.items():
                per_package[name][key].append(value)
    rows = [
        {
            "package": name,
            "kind": _kind(name),
            # A package missing from a run (never the case for a fixed set of imports) counts as 0.
            "cumulative_us": round(median(f["cumulative_us"] + [0] * (runs - len(f["cumulative_us"])))),
            "self_us": round(median(f["self_us"] + [0] * (runs - len(f["self_us"])))),
        }
        for name, f in per_package.items()
        if name != "app"
    ]
    rows.sort(key=lambda r: r["cumulative_us"], reverse=True)
    project = sorted(((round(median(v)), k) for k, v in per_module.items()), reverse=True)[:5]
    return {
        "app_cumulative_us": round(median(totals)),
        "runs": runs,
        "top": rows[:top],
        "project_modules_self_us": {name: us for us, name in project},
    }
