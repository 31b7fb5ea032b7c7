"""What the merge tests share: asking for a merge, running its job, recording two customers as
different people — each through the public route or the job's consumer."""

from __future__ import annotations

from chalicelib.domain.clock import Deadline

# The job's time in a test: a merge of a test's few items never runs out of it.
JOB_SECONDS = 300.0


def merge(api, survivor_id: str, merged_id: str, **options):
    return api.post(f"/customers/{survivor_id}/merge", {"merge_id": merged_id, **options})


def start(api, survivor_id: str, merged_id: str, **options) -> str:
    """POST /customers/{survivor}/merge, which must start the merge; returns its id."""
    reply = merge(api, survivor_id, merged_id, **options)
    assert reply.status == 202, reply.json
    return reply.json["id"]


def finish(merge_id: str) -> None:
    """Run the merge's job to its end (what the jobs queue's consumer does with its message)."""
    from chalicelib import wiring

    assert wiring.merge_job().run(merge_id, Deadline(JOB_SECONDS)) == "completed"


def record_not_duplicates(api, a: str, b: str) -> None:
    assert api.post(f"/customers/{a}/not-duplicate", {"customer_id": b}).status == 204
