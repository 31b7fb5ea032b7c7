"""Vendor Swagger UI for GET /docs: `python -m infra.swagger_ui [VERSION]`.

Fetches the npm package swagger-ui-dist with `npm pack`, checks the tarball against the
integrity the registry publishes for that version, and writes the files /docs serves (and
their licences) into chalicelib/api/swagger_ui/ with a manifest of their SRI hashes, which the
page names and a test checks. Nothing is fetched at run time: the Lambda package carries the
files (about 1.9 MB, 0.5 MB zipped).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "swagger-ui-dist"
DEFAULT_VERSION = "5.35.0"
SERVED = ("swagger-ui-bundle.js", "swagger-ui.css")
LICENCES = ("LICENSE", "NOTICE", "swagger-ui-bundle.js.LICENSE.txt")
TARGET = Path(__file__).resolve().parent.parent / "chalicelib" / "api" / "swagger_ui"


def sri(data: bytes, algorithm: str = "sha384") -> str:
    """A Subresource Integrity value: `sha384-<base64 digest>`."""
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode()}"


def _npm(*args: str, cwd: Path) -> str:
    done = subprocess.run(  # noqa: S603 (npm from PATH, our own arguments)
        ["npm", *args],  # noqa: S607
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def vendor(version: str, target: Path = TARGET) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spec = f"{PACKAGE}@{version}"
        published = json.loads(_npm("view", spec, "dist.integrity", "--json", cwd=work))
        tarball = work / _npm("pack", spec, "--silent", cwd=work).splitlines()[-1]
        data = tarball.read_bytes()
    if sri(data, "sha512") != published:
        raise SystemExit(f"{spec}: the tarball is not the one the registry publishes ({published})")
    files: dict[str, str] = {}
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        for name in SERVED + LICENCES:
            member = archive.extractfile(f"package/{name}")
            if member is None:
                raise SystemExit(f"{spec} has no {name}")
            content = member.read()
            (target / name).write_bytes(content)
            if name in SERVED:
                files[name] = sri(content)
    manifest = {"package": PACKAGE, "version": version, "tarball_integrity": published, "files": files}
    (target / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version", nargs="?", default=DEFAULT_VERSION)
    manifest = vendor(parser.parse_args(argv).version)
    json.dump(manifest, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
