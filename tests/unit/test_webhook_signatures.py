"""Standard Webhooks v1 signatures: the specification's published vector, the reference
library in both directions, and every way the headers can be wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook

from chalicelib.domain import webhook_signatures as signatures
from chalicelib.domain.webhook_secrets import first_secret, rotated, valid

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
NOW = datetime.fromtimestamp(TIMESTAMP, UTC)


def headers(**overrides: str | None) -> dict[str, str]:
    values = {"webhook-id": MSG_ID, "webhook-timestamp": str(TIMESTAMP), "webhook-signature": SIGNATURE}
    values.update(overrides)
    return {name: value for name, value in values.items() if value is not None}


def refused(given: dict[str, str], *, body: bytes = BODY, now: datetime = NOW) -> str:
    with pytest.raises(signatures.SignatureRefused) as caught:
        signatures.verify([SECRET], given, body, now, 300)
    return caught.value.header


def test_the_published_vector_signs_to_the_published_signature():
    assert signatures.sign(SECRET, MSG_ID, TIMESTAMP, BODY) == SIGNATURE


def test_the_published_vector_verifies_and_answers_its_id():
    assert signatures.verify([SECRET], headers(), BODY, NOW, 300) == MSG_ID


def test_a_signature_of_the_reference_library_verifies():
    secret = signatures.new_secret()
    body = '{"type": "order.created", "name": "Åsa Öberg"}'
    signature = Webhook(secret).sign("msg_1", NOW, body)
    given = {"webhook-id": "msg_1", "webhook-timestamp": str(TIMESTAMP), "webhook-signature": signature}
    assert signatures.verify([secret], given, body.encode(), NOW, 300) == "msg_1"


def test_the_reference_library_verifies_our_headers_of_several_secrets():
    now = datetime.now(UTC)
    secrets = valid(rotated(first_secret(now), now), now)
    body = b'{"type": "customer.created", "data": {}}'
    signed = signatures.headers_for(secrets[0], "evt_1", int(now.timestamp()), body)
    signed["webhook-signature"] = " ".join(
        signatures.sign(s, "evt_1", int(now.timestamp()), body) for s in secrets
    )
    for secret in secrets:
        assert Webhook(secret).verify(body, signed) == {"type": "customer.created", "data": {}}


def test_a_new_secret_is_whsec_and_32_random_bytes():
    first, second = signatures.new_secret(), signatures.new_secret()
    assert first.startswith("whsec_") and first != second
    assert len(signatures.secret_key(first)) == 32


def test_any_listed_v1_signature_may_match():
    other = signatures.sign(signatures.new_secret(), MSG_ID, TIMESTAMP, BODY)
    assert signatures.verify(
        [SECRET], headers(**{"webhook-signature": f"v2,abc {other} {SIGNATURE}"}), BODY, NOW, 300
    )


def test_any_valid_secret_may_match():
    assert signatures.verify([signatures.new_secret(), SECRET], headers(), BODY, NOW, 300) == MSG_ID


def test_the_raw_bytes_are_signed_not_a_reserialised_body():
    assert refused(headers(), body=b'{"test":2432232314}') == "webhook-signature"


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_or_blank_header_is_named(header):
    assert refused(headers(**{header: None})) == header
    assert refused(headers(**{header: "  "})) == header


@pytest.mark.parametrize(
    "value",
    [
        "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        "v1;abc",
        "v1,not base64!",
        "v1,abc",
        "v2,abc",
        "v1a,xyz v2,abc",
    ],
)
def test_a_malformed_signature_header_is_named(value):
    assert refused(headers(**{"webhook-signature": value})) == "webhook-signature"


@pytest.mark.parametrize("value", ["1614265330.5", "-1614265330", "1.6e9", "soon", "1614265330 1", "9" * 40])
def test_a_timestamp_that_is_not_integer_seconds_is_named(value):
    assert refused(headers(**{"webhook-timestamp": value})) == "webhook-timestamp"


@pytest.mark.parametrize("value", ["msg with space", "x" * 257, "msg\u00e5"])
def test_a_malformed_id_is_named(value):
    assert refused(headers(**{"webhook-id": value})) == "webhook-id"


@pytest.mark.parametrize("skew", [timedelta(seconds=-301), timedelta(seconds=301)])
def test_a_timestamp_beyond_the_tolerance_is_refused(skew):
    assert refused(headers(), now=NOW - skew) == "webhook-timestamp"


@pytest.mark.parametrize("skew", [timedelta(seconds=-300), timedelta(seconds=300)])
def test_a_timestamp_at_the_tolerance_is_accepted(skew):
    assert signatures.verify([SECRET], headers(), BODY, NOW - skew, 300) == MSG_ID


def test_a_wrong_secret_is_refused():
    assert refused_with([signatures.new_secret()]) == "webhook-signature"


def test_no_secret_at_all_is_refused():
    assert refused_with([]) == "webhook-signature"


def refused_with(secrets: list[str]) -> str:
    with pytest.raises(signatures.SignatureRefused) as caught:
        signatures.verify(secrets, headers(), BODY, NOW, 300)
    return caught.value.header


def test_more_signatures_than_any_rotation_needs_are_refused_unread():
    many = " ".join([SIGNATURE] * 11)
    assert refused(headers(**{"webhook-signature": many})) == "webhook-signature"


def test_a_rotation_keeps_the_old_secret_for_24_hours_then_only_the_new_one():
    now = datetime(2026, 12, 2, 9, tzinfo=UTC)
    (old,) = first_secret(now)
    after = rotated((old,), now)
    assert valid(after, now) == (after[0].value, old.value)
    assert valid(after, now + timedelta(hours=23, minutes=59)) == (after[0].value, old.value)
    assert valid(after, now + timedelta(hours=24)) == (after[0].value,)


def test_rotations_keep_at_most_three_secrets_and_never_revive_an_expired_one():
    now = datetime(2026, 12, 2, 9, tzinfo=UTC)
    secrets = first_secret(now)
    for minutes in range(1, 6):
        secrets = rotated(secrets, now + timedelta(minutes=minutes))
    assert len(secrets) == 3
    later = rotated(secrets, now + timedelta(days=2))
    # The two that had expired are gone; the current one gets its 24 hours beside the new one.
    assert [s.value for s in later[1:]] == [secrets[0].value]
