"""Every curl example of the README, run as printed against a fresh local stack with its demo
data (see readme_examples.py)."""

from __future__ import annotations

import pytest

from tests.e2e import readme_examples
from tests.e2e.test_local_stack import ROOT, started_stack


@pytest.fixture(scope="module")
def stack():
    yield from started_stack()


def test_every_curl_example_of_the_readme_works_against_the_demo_data_as_printed(stack, tmp_path):
    outcomes = readme_examples.run(
        ROOT / "README.md",
        stack.api,
        stack.control,
        f"http://127.0.0.1:{stack.ports['CRM_AWS_PORT']}",
        ROOT,
        tmp_path,
    )

    assert len(outcomes) >= 30
    failures = [
        f"#{o.example.number} {o.problem()}: {o.example.command[:160]}\n    {o.body[:300]!r}"
        for o in outcomes
        if o.problem()
    ]
    assert not failures, "\n".join(failures)
