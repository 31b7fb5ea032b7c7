"""Figure 5b: the size of the real deployment package (`python -m infra.package`)."""

from __future__ import annotations

import subprocess
import sys
import time
import zipfile
from collections import Counter

from bench.common import ROOT, process_env

LAMBDA_ZIP_LIMIT_MB = 50.0  # direct upload of a zipped deployment package
LAMBDA_UNZIPPED_LIMIT_MB = 250.0  # function code and layers, unzipped


def package_size(stage: str = "prod", timeout: int = 600) -> dict:
    out = ROOT / "build" / stage
    command = [sys.executable, "-m", "infra.package", "--stage", stage, "--out", f"build/{stage}"]
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=process_env(), capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"`{' '.join(command[1:])}` took more than {timeout} s"}
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return {"error": f"exit {done.returncode}: {' | '.join(tail)}"}
    path = out / "deployment.zip"
    with zipfile.ZipFile(path) as archive:
        entries = archive.infolist()
    by_top: Counter = Counter()
    for entry in entries:
        by_top[entry.filename.split("/")[0]] += entry.compress_size
    return {
        "command": " ".join(["python", *command[1:]]),
        "build_seconds": round(seconds, 1),
        "zip_mb": round(path.stat().st_size / 1e6, 2),
        "unzipped_mb": round(sum(e.file_size for e in entries) / 1e6, 2),
        "files": len(entries),
        "pyc_files": sum(1 for e in entries if e.filename.endswith(".pyc")),
        "largest_mb": {name: round(size / 1e6, 2) for name, size in by_top.most_common(6)},
    }
