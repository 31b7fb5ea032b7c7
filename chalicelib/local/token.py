"""Print a bearer token for the local stage: `python -m chalicelib.local.token [--customer ID]`.

Signed with the local stage's secret from .chalice/config.json, so the local stack (and
chalice.test) accept it; no server is needed. The token is the last line of stdout.
"""

from __future__ import annotations

import argparse

from chalicelib.auth import issue_token
from chalicelib.config import Settings
from chalicelib.local.stack import stage_environment

STAFF_SUBJECT = "staff-local"


def issue(stage: str = "local", customer: str | None = None) -> str:
    """A staff token, or a customer token whose subject is `customer`."""
    settings = Settings.from_env(stage_environment(stage))
    subject, role = (customer, "customer") if customer else (STAFF_SUBJECT, "staff")
    return issue_token(
        settings.jwt_secret, subject, role, issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m chalicelib.local.token", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--customer", metavar="ID", help="a customer token for this customer id")
    parser.add_argument("--stage", default="local", help="stage in .chalice/config.json (default: local)")
    args = parser.parse_args(argv)
    try:
        token = issue(args.stage, args.customer)
    except ValueError as error:
        parser.exit(2, f"{parser.prog}: {error}\n")
    print(token)


if __name__ == "__main__":
    main()
