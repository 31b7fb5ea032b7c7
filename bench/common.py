"""What every benchmark shares: paths, the local stage's environment, statistics."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"


def local_env() -> dict[str, str]:
    """The variables tests/conftest.py sets: fake credentials and the local stage's settings."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "eu-north-1",
        "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
        "POWERTOOLS_LOG_LEVEL": "WARNING",
        **config["environment_variables"],
        **config["stages"]["local"]["environment_variables"],
    }


def process_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """os.environ without anything that could point boto3 at real AWS, plus the local stage."""
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ENDPOINT_URL", "AWS_PROFILE")}
    env.update(local_env())
    env.update(extra or {})
    return env


def apply_local_env() -> None:
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(local_env())


def median(values: list[float]) -> float:
    return statistics.median(values)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of unsorted values."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), -(-len(ordered) * p // 100)))
    return ordered[int(rank) - 1]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(variants: dict[str, Callable[[], object]], iterations: int, warmup: int) -> dict[str, list]:
    """Run each variant `warmup` times, then `iterations` rounds of all variants in turn (the
    order rotates each round), so drift and background load hit every variant alike."""
    names = list(variants)
    for _ in range(warmup):
        for name in names:
            variants[name]()
    samples: dict[str, list] = {name: [] for name in names}
    for round_ in range(iterations):
        shift = round_ % len(names)
        for name in names[shift:] + names[:shift]:
            samples[name].append(timed(variants[name]))
    return samples
