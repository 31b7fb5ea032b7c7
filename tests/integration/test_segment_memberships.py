"""Segment memberships where DynamoDB enforces them (a storage suite: DynamoDB Local under
`make test`): more changes than one transaction holds, evaluations racing each other, a
redelivered backfill page, a customer deleted while being evaluated."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from chalicelib import wiring
from chalicelib.domain.segments import Rules
from tests.functional.conftest import Api


@pytest.fixture
def api(client, staff_token) -> Api:
    return Api(client, staff_token)


def _segments(count: int, rules: Rules) -> list[str]:
    return [wiring.segment_service().create(f"Segment {n}", None, rules).id for n in range(count)]


def test_a_customer_joins_more_segments_than_one_transaction_holds_each_counted_once(api):
    service = wiring.membership_service()
    customer = api.create_customer(name="Åsa Öberg", locale="sv-SE")
    ids = _segments(70, Rules(locales=("sv",)))  # 70 joins: three transactions of 32
    assert service.evaluate([customer["id"]]) == 70
    assert service.evaluate([customer["id"]]) == 0
    assert wiring.segment_repository().member_counts(ids) == dict.fromkeys(ids, 1)
    assert set(wiring.membership_repository().memberships(customer["id"]).joined) == set(ids)
    assert service.forget(customer["id"]) == 70
    assert wiring.segment_repository().member_counts(ids) == dict.fromkeys(ids, 0)


@pytest.mark.dynamodb_local  # threads: moto's in-process tables are not thread-safe
def test_racing_evaluations_of_one_customer_count_each_membership_once(api):
    customers = [api.create_customer(name=f"Kund {n}", tags=["vip"]) for n in range(3)]
    ids = _segments(3, Rules(tags_any=("vip",)))
    with ThreadPoolExecutor(max_workers=6) as pool:
        changed = list(pool.map(lambda c: wiring.membership_service().evaluate([c["id"]]), customers * 4))
    assert sum(changed) == 9  # three segments for each of three customers, whoever came first
    assert wiring.segment_repository().member_counts(ids) == dict.fromkeys(ids, 3)


def test_a_redelivered_backfill_page_counts_nothing_twice(api, monkeypatch):
    from chalicelib.services import segment_membership as segments

    monkeypatch.setattr(segments, "BUILD_PAGE", 2)
    for n in range(3):
        api.create_customer(name=f"Kund {n}")
    service = wiring.membership_service()
    segment = wiring.segment_service().create("Everyone", None, Rules(never_purchased=True))
    assert service.build_page(segment.id, 1, 0, None) == "page done"
    assert service.build_page(segment.id, 1, 0, None) == "done before"
    progress = wiring.segment_repository().progress(segment.id)
    assert (progress.build, progress.pages_done, progress.pages_total) == (1, 1, None)


def test_a_customer_deleted_before_the_write_joins_nothing(api, monkeypatch):
    service = wiring.membership_service()
    customer = api.create_customer(name="Jyrki Mäkelä", locale="fi")
    (segment_id,) = _segments(1, Rules(locales=("fi",)))
    repository = wiring.membership_repository()
    real = repository.write_memberships
    deleted = []

    def delete_first(*args, **kwargs):
        if not deleted:
            deleted.append(api.delete(f"/customers/{customer['id']}").status)
        return real(*args, **kwargs)

    monkeypatch.setattr(repository, "write_memberships", delete_first)
    assert service.evaluate([customer["id"]]) == 0  # the profile check failed; read again: gone
    assert deleted == [204]
    assert wiring.segment_repository().member_counts([segment_id]) == {segment_id: 0}
