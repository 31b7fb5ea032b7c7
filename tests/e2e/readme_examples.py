"""The README's shell examples as one script, run against a local stack as a reader would paste
them: every `sh` block that calls the API, in order, in one bash session (so `TOKEN`, `API` and the
ids the examples read into variables carry over), with only the ports changed to the stack's.

Each curl of the README is checked: its status must be one the comment on its line names (e.g.
`# 204`, `# 404`) or else a 2xx, and a list it receives must not be empty unless the comment says
`empty`: an example that shows nothing teaches nothing."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

FENCE = re.compile(r"^```sh\n(.*?)^```", re.M | re.S)
STATUS = re.compile(r"\b([1-5]\d\d)\b")
MARKER = re.compile(r"::status (\d+) (\d+)")
WRAPPER = r"""
set -o pipefail
make() { command make --no-print-directory -C "$__root" "$@"; }  # the examples run elsewhere
curl() {  # counted in a file: a curl in a pipeline or in $(...) runs in a subshell
  local n=$(( $(cat "$__bodies/count" 2>/dev/null || echo 0) + 1 ))
  echo "$n" > "$__bodies/count"
  command curl "$@" -w "%{stderr}\n::status $n %{http_code}\n" 2>"$__bodies/$n.status" | tee -p "$__bodies/$n"
}
"""


@dataclass(frozen=True)
class Example:
    number: int  # the n-th curl of the README
    command: str
    comment: str

    def expected(self) -> set[int]:
        return {int(code) for code in STATUS.findall(self.comment)}


def blocks(readme: str) -> list[str]:
    """The `sh` blocks that talk to the API (not `make test`, deployment or browser steps)."""
    return [b for b in FENCE.findall(readme) if "curl" in b and ("$API" in b or "127.0.0.1:80" in b)]


def commands(block: str) -> list[tuple[str, str]]:
    """(command, comments) for each logical command: lines joined over `\\` and over quoted
    strings that span lines; a comment runs from an unquoted `#` to the end of its line, and a
    comment line starting with `→` belongs to the command before it."""
    out: list[tuple[str, str]] = []
    code: list[str] = []
    comments: list[str] = []
    quoted = None
    for line in block.splitlines(keepends=True):
        text, comment = line, ""
        for i, char in enumerate(line):
            if quoted:
                quoted = None if char == quoted else quoted
            elif char in "'\"":
                quoted = char
            elif char == "#" and (i == 0 or line[i - 1] in " \t"):
                text, comment = line[:i], line[i + 1 :].strip()
                break
        code.append(text)
        if comment:
            comments.append(comment)
        if quoted or text.rstrip().endswith("\\"):
            continue
        command = "".join(code).rstrip()
        if command.strip():
            out.append((command, " ".join(comments)))
        elif out and comments and comments[0].startswith("→"):
            out[-1] = (out[-1][0], f"{out[-1][1]} {' '.join(comments)}".strip())
        code, comments = [], []
    return out


def script(
    readme: str, api: str, control: str, aws: str = "http://127.0.0.1:5000"
) -> tuple[str, list[Example]]:
    lines, examples = [], []
    for block in blocks(readme):
        for command, comment in commands(block):
            if command.lstrip().startswith(("open ", "xdg-open ")):
                continue  # a browser
            for printed, actual in (("8000", api), ("8001", control), ("5000", aws)):
                command = command.replace(f"http://127.0.0.1:{printed}", actual)
            for _ in range(command.count("curl ")):
                examples.append(Example(len(examples) + 1, command, comment))
            lines.append(command)
    return WRAPPER + "\n".join(lines) + "\n", examples


@dataclass(frozen=True)
class Outcome:
    example: Example
    status: int | None
    body: bytes

    def problem(self) -> str | None:
        expected = self.example.expected()
        if self.status is None:
            return "did not run"
        if self.status >= 500 or (expected and self.status not in expected):
            return f"answered {self.status}"
        if not expected and not 200 <= self.status < 300:
            return f"answered {self.status}, and its comment names no such status"
        try:
            document = json.loads(self.body or b"null")
        except ValueError:
            return None
        if isinstance(document, dict) and document.get("items") == [] and "empty" not in self.example.comment:
            return "listed nothing"
        return None


def run(
    readme: Path, api: str, control: str, aws: str, cwd: Path, bodies: Path, timeout: float = 300
) -> list[Outcome]:
    text, examples = script(readme.read_text(encoding="utf-8"), api, control, aws)
    bodies.mkdir(parents=True, exist_ok=True)
    # The examples name files of the repository as a reader's shell at its root does
    # (`curl -T docs/samples/sv/customers.csv ...`).
    if not (bodies / "docs").exists():
        (bodies / "docs").symlink_to(cwd / "docs")
    subprocess.run(
        ["bash", "-c", text],
        cwd=bodies,  # what the examples write (export.json) stays out of the tree
        env={**_env(), "__bodies": str(bodies), "__root": str(cwd)},
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    # Each curl's status is in a file of its own: on the script's stderr, the bodies the examples
    # echo there (`| tee /dev/stderr`) could come between.
    written = "".join(path.read_text("utf-8", "replace") for path in sorted(bodies.glob("*.status")))
    statuses = {int(n): int(code) for n, code in MARKER.findall(written)}
    return [
        Outcome(
            e,
            statuses.get(e.number),
            (bodies / str(e.number)).read_bytes() if (bodies / str(e.number)).exists() else b"",
        )
        for e in examples
    ]


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith(("TOKEN", "CTOKEN", "API"))}
