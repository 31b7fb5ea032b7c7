"""The parts of a repeatable attempt (a batch's items): each draws its ids apart from the others,
the same in every attempt, so a retry rebuilds each item's ids whatever the other items drew."""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.domain import attempts, ids
from chalicelib.domain.attempts import Seed

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def _seed(nonce: bytes = b"\x07" * 16) -> Seed:
    return Seed("crm-seed#x", nonce, NOW, False)


def _ids_of_parts(draws_before: dict[int, int], nonce: bytes = b"\x07" * 16) -> list[str]:
    made = []
    with attempts.repeatable(_seed(nonce)):
        for index in range(3):
            with attempts.part(index):
                for _ in range(draws_before.get(index, 0)):
                    ids.new_id("aud")
                made.append(ids.new_id(ids.CUSTOMER))
    return made


def test_a_part_draws_the_same_ids_whatever_the_parts_before_it_drew():
    plain = _ids_of_parts({})
    assert _ids_of_parts({0: 3})[1:] == plain[1:]
    assert _ids_of_parts({}) == plain and len(set(plain)) == 3


def test_parts_of_another_seed_draw_other_ids():
    assert set(_ids_of_parts({})).isdisjoint(_ids_of_parts({}, nonce=b"\x08" * 16))


def test_the_first_id_of_a_part_is_known_before_the_part_runs():
    with attempts.repeatable(_seed()):
        foreseen = [ids.first_id_of_part(ids.CUSTOMER, index) for index in range(3)]
    assert foreseen == _ids_of_parts({})


def test_outside_an_attempt_a_part_changes_nothing():
    with attempts.part(4):
        assert attempts.current() is None and attempts.random_bytes(10) is None
    assert ids.first_id_of_part(ids.CUSTOMER, 0) is None


def test_a_part_keeps_the_requests_time_and_seed_key():
    with attempts.repeatable(_seed()), attempts.part(2):
        seed = attempts.current()
        assert seed is not None and seed.key == "crm-seed#x" and attempts.pinned_now() == NOW
