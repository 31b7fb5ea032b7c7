"""What every process of the local stack does alike: stop on SIGINT/SIGTERM, stop when the
process that started it is gone, and exit without finalizing the interpreter."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from typing import Any


class Stop(Exception):
    """Raised in the main thread by SIGINT or SIGTERM (see `stop_on_signals`)."""


def _on_signal(signum: int, frame: Any) -> None:
    # Only the first signal interrupts; shutting down must not be interrupted itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stop


def stop_on_signals() -> None:
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)


def while_parent_lives(parent: int) -> None:
    """Return once `parent` is gone (the stack was killed without a chance to stop us)."""
    while os.getppid() == parent:
        threading.Event().wait(1.0)


def stop_process(process: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, and SIGKILL if it has not exited within `timeout` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def exit_now(status: int) -> None:
    """Flush and leave. Finalizing the interpreter would free in-memory state (moto's, the
    app's) object by object, which takes seconds; that state is being thrown away anyway."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
