"""`python -m tests.e2e.app_server PORT`: the app alone on Chalice's local server
(chalicelib.local.server), no AWS behind it, for the routes that need none (/health,
/openapi.json, /docs, and every 401). Prints "ready" and serves until stdin closes.

`serving(port, **env)` runs it from a test with the suite's environment."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Served:
    def __init__(self, process: subprocess.Popen, port: int) -> None:
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.stderr.append(line.rstrip("\n"))


@contextlib.contextmanager
def serving(port: int, **env: str) -> Iterator[Served]:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.e2e.app_server", str(port)],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    served = Served(process, port)
    try:
        if process.stdout.readline().strip() != "ready":
            process.wait(10)
            raise RuntimeError("the app server did not start:\n" + "\n".join(served.stderr))
        yield served
    finally:
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main(port: int) -> None:
    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("chalicelib.local").setLevel(logging.INFO)
    from app import app
    from chalicelib.local.server import LocalApiServer

    running = LocalApiServer(app, port=port).start()
    print("ready", flush=True)
    sys.stdin.read()
    running.stop()


if __name__ == "__main__":
    main(int(sys.argv[1]))
