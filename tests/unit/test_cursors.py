from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from chalicelib.api.cursors import CursorSigner
from chalicelib.domain.clock import FrozenClock
from chalicelib.errors import ValidationFailed

KEY = {"pk": "CUSTOMER#cus_1", "sk": "INTERACTION#2026-11-26T12:00:00.000000Z#int_1"}


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))


def signer(clock: FrozenClock, *keys: str, max_age_s: int = 3600) -> CursorSigner:
    return CursorSigner(keys or ("key-now",), max_age_s, clock.now)


def refused(cursors: CursorSigner, scope: str, cursor: str) -> None:
    with pytest.raises(ValidationFailed) as caught:
        cursors.decode(scope, cursor)
    assert [e.field for e in caught.value.errors] == ["cursor"]


def test_a_cursor_gives_back_the_key_it_was_made_of(clock):
    cursors = signer(clock)
    assert cursors.decode("timeline:cus_1", cursors.encode("timeline:cus_1", KEY)) == KEY


def test_a_cursor_of_one_list_is_refused_by_another(clock):
    cursors = signer(clock)
    refused(cursors, "timeline:cus_2", cursors.encode("timeline:cus_1", KEY))


def test_an_edited_cursor_is_refused(clock):
    cursors = signer(clock)
    cursor = cursors.encode("timeline:cus_1", KEY)
    payload, _, rest = cursor.partition(".")
    edited = payload[:-1] + ("A" if payload[-1] != "A" else "B") + "." + rest
    refused(cursors, "timeline:cus_1", edited)
    refused(cursors, "timeline:cus_1", "not-a-cursor")
    refused(cursors, "timeline:cus_1", "ä" + cursor)


def test_a_cursor_expires_after_its_max_age(clock):
    cursors = signer(clock, max_age_s=3600)
    cursor = cursors.encode("customers", KEY)
    clock.advance(timedelta(seconds=3600))
    assert cursors.decode("customers", cursor) == KEY
    clock.advance(timedelta(seconds=1))
    refused(cursors, "customers", cursor)


def test_after_a_key_rotation_cursors_of_the_previous_key_still_work_and_new_ones_use_the_new_key(clock):
    before = signer(clock, "key-old")
    after = signer(clock, "key-old", "key-new")
    old_cursor = before.encode("customers", KEY)
    assert after.decode("customers", old_cursor) == KEY
    new_cursor = after.encode("customers", KEY)
    refused(before, "customers", new_cursor)
    refused(signer(clock, "key-new"), "customers", old_cursor)


def test_a_cursor_needs_a_key():
    with pytest.raises(ValueError):
        CursorSigner([], 60, lambda: datetime.now(UTC))
    with pytest.raises(ValueError):
        CursorSigner([""], 60, lambda: datetime.now(UTC))
