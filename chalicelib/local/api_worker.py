"""One more process serving the local stack's API: `python -m chalicelib.local.api_worker`.

`chalicelib.local.run` starts `CRM_API_PROCESSES - 1` of these after the demo seed, each given
the API's listening socket (file descriptor `CRM_API_SOCKET_FD`): every process accepts
connections from it, and the kernel spreads them over the processes. One Python process serves
at most about one core (its interpreter lock); several serve the API on every core, as Lambda
serves requests from many instances at once. They hold nothing of their own: every request
reads and writes DynamoDB Local or moto, whichever process serves it.

With `CRM_API_QUIET=1` it logs requests only from the first SIGUSR1 on (the demo seed's
requests are not worth a line each). SIGTERM or SIGINT stops it (status 0); so does the end of
the process that started it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from typing import Any

from chalicelib.local.processes import Stop, exit_now, stop_on_signals, while_parent_lives


class _RequestLogs:
    """Quiet until SIGUSR1 with CRM_API_QUIET=1; the signal may come before the app is loaded."""

    def __init__(self) -> None:
        self.quiet = os.environ.get("CRM_API_QUIET") == "1"
        self._restore: Any = None

    def on_signal(self, signum: int, frame: Any) -> None:
        self.quiet = False
        if self._restore is not None:
            self._restore()

    def apply(self, logger: Any) -> None:
        level = logger.log_level
        self._restore = lambda: logger.setLevel(level)
        if self.quiet:
            logger.setLevel(logging.WARNING)


def _serve(request_logs: _RequestLogs) -> None:
    parent = os.getppid()
    listening = socket.socket(fileno=int(os.environ["CRM_API_SOCKET_FD"]))

    from app import app
    from chalicelib.local.server import LocalApiServer
    from chalicelib.observability import logger

    request_logs.apply(logger)
    api = LocalApiServer(app, stage=os.environ.get("CRM_STAGE", "local"), listening=listening).start()
    try:
        while_parent_lives(parent)
    finally:
        api.stop()


def main() -> int:
    request_logs = _RequestLogs()
    signal.signal(signal.SIGUSR1, request_logs.on_signal)
    stop_on_signals()
    with contextlib.suppress(Stop):
        _serve(request_logs)
    return 0


if __name__ == "__main__":
    exit_now(main())
