"""Outbound webhook rules: event patterns, the payload, delivery ids, the retry schedule with
its jitter and Retry-After, and the address policy that keeps webhooks off this network."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.domain.events import subscription_disabled_event
from chalicelib.domain.webhook_subscriptions import (
    EVENT_TYPES,
    MAX_ATTEMPTS,
    MAX_DELAY_S,
    PENDING,
    RETRY_DELAYS_S,
    SUCCEEDED,
    Attempt,
    Delivery,
    PatternError,
    UrlRefused,
    body_of,
    check_patterns,
    checked_addresses,
    delivery_id,
    first_delivery_id_at,
    matches,
    parse_retry_after,
    refusal,
    retry_delay_s,
    target_of,
)
from tests.webhook_out_addresses import BLOCKED_ADDRESSES

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
LOCAL = ("127.0.0.1", "localhost")


# Patterns


def test_known_types_prefixes_and_star_are_patterns_and_repeats_are_dropped():
    assert check_patterns(["customer.created", "case.*", "customer.created"]) == (
        "customer.created",
        "case.*",
    )
    assert check_patterns(["*"]) == ("*",)
    assert set(check_patterns(list(EVENT_TYPES))) == set(EVENT_TYPES)


@pytest.mark.parametrize(
    ("patterns", "index"),
    [
        (["customer.created", "customer.exploded"], 1),
        (["order.*"], 0),
        (["customer"], 0),
        (["customer.**"], 0),
        (["*.created"], 0),
        (["Customer.created"], 0),
        ([], 0),
    ],
)
def test_an_unknown_pattern_is_refused_by_its_position(patterns, index):
    with pytest.raises(PatternError) as refused:
        check_patterns(patterns)
    assert refused.value.index == index


def test_patterns_match_their_type_their_prefix_or_everything():
    assert matches(["customer.*"], "customer.erased")
    assert not matches(["customer.*"], "case.opened")
    assert not matches(["case.opened"], "case.opened_again")
    assert matches(["case.status_changed", "*"], "segment.left")
    assert not matches(["segment.joined"], "segment.left")


# Payload and ids


def test_the_body_is_standard_webhooks_payload_shape_and_keeps_every_script():
    body = body_of("customer.created", "2026-11-26T12:00:00.000Z", {"name": "山田 太郎"})
    assert json.loads(body) == {
        "type": "customer.created",
        "timestamp": "2026-11-26T12:00:00.000Z",
        "data": {"name": "山田 太郎"},
    }
    assert "山田" in body


def test_a_delivery_id_is_derived_from_subscription_and_event_and_ordered_by_the_events_time():
    first = delivery_id("sub_1", "evt_1", NOW)
    assert first == delivery_id("sub_1", "evt_1", NOW)
    assert first != delivery_id("sub_2", "evt_1", NOW) != delivery_id("sub_1", "evt_2", NOW)
    assert first.startswith("dlv_")
    later = delivery_id("sub_1", "evt_0", NOW + timedelta(milliseconds=1))
    assert first_delivery_id_at(NOW) <= first < later
    assert first_delivery_id_at(NOW + timedelta(milliseconds=1)) > first


def test_the_disabled_event_names_the_subscription_and_no_customer():
    event = subscription_disabled_event("sub_1", "gone", NOW)
    assert event.to_message() == {
        "id": event.id,
        "type": "webhook.subscription_disabled",
        "occurred_at": "2026-11-26T12:00:00.000Z",
        "customer_id": "",
        "data": {"subscription_id": "sub_1", "reason": "gone", "time": "2026-11-26T12:00:00.000Z"},
    }
    assert event.id == subscription_disabled_event("sub_1", "gone", NOW).id


# Retries


def test_the_schedule_is_svix_s_and_the_eighth_attempt_is_the_last():
    middle = [retry_delay_s(n, lambda: 0.5) for n in range(1, MAX_ATTEMPTS)]
    assert middle == [5, 300, 1800, 7200, 18000, 36000, 36000]
    assert retry_delay_s(MAX_ATTEMPTS, lambda: 0.5) is None
    assert MAX_ATTEMPTS == 8


def test_jitter_spreads_a_delay_by_twenty_percent_either_way():
    assert retry_delay_s(2, lambda: 0.0) == 240
    assert retry_delay_s(2, lambda: 0.999999) == 360
    assert retry_delay_s(7, lambda: 0.999999) == MAX_DELAY_S  # 10 h + 20 % is SQS's limit


@given(attempt=st.integers(1, MAX_ATTEMPTS - 1), draw=st.floats(0, 1, exclude_max=True))
def test_every_delay_is_within_its_jitter_bounds(attempt, draw):
    base = RETRY_DELAYS_S[attempt - 1]
    delay = retry_delay_s(attempt, lambda: draw)
    assert base * 0.8 <= delay <= min(base * 1.2 + 1, MAX_DELAY_S)


def test_retry_after_lengthens_a_delay_but_never_beyond_sqs_s_limit():
    assert retry_delay_s(1, lambda: 0.5, retry_after_s=120) == 120
    assert retry_delay_s(3, lambda: 0.5, retry_after_s=60) == 1800  # shorter: the schedule's
    assert retry_delay_s(1, lambda: 0.5, retry_after_s=10 * 86400) == MAX_DELAY_S


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("Thu, 26 Nov 2026 12:05:00 GMT", 300.0),
        ("Thu, 26 Nov 2026 11:00:00 GMT", 0.0),  # a date gone by: no wait
        ("soon", None),
        ("-5", None),
        ("1.5", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_is_seconds_or_an_http_date(header, seconds):
    assert parse_retry_after(header, NOW) == seconds


# Deliveries lost by the queue


def _delivery(**fields) -> Delivery:
    return Delivery(
        **{"status": PENDING, **fields},
        id="dlv_1",
        subscription_id="sub_1",
        event_id="evt_1",
        type="customer.updated",
        customer_id="cus_1",
        body="{}",
        created_at=NOW,
    )


def test_a_delivery_never_attempted_is_given_up_only_once_the_queue_cannot_hold_its_message():
    # It may wait behind its lane's earlier deliveries for as long as SQS keeps messages.
    waiting = _delivery()
    assert not waiting.given_up_by_the_queue(NOW + timedelta(days=15))
    assert waiting.given_up_by_the_queue(NOW + timedelta(days=15, seconds=1))
    retried = _delivery(retries=1, round_started_at=NOW + timedelta(days=20))
    assert not retried.given_up_by_the_queue(NOW + timedelta(days=21))
    assert not _delivery(status=SUCCEEDED).given_up_by_the_queue(NOW + timedelta(days=29))


def test_an_attempted_delivery_is_given_up_two_days_after_the_attempt_it_waited_for():
    attempt = Attempt(NOW + timedelta(hours=1), 500, 3, "")
    waiting = _delivery(attempts=(attempt,), attempt_count=1, next_attempt_at=NOW + timedelta(hours=6))
    assert not waiting.given_up_by_the_queue(NOW + timedelta(days=2, hours=6))
    assert waiting.given_up_by_the_queue(NOW + timedelta(days=2, hours=6, seconds=1))
    # Attempts of an earlier round say nothing of this round's message.
    earlier_round = _delivery(attempts=(attempt,), attempt_count=0, retries=1, round_started_at=NOW)
    assert not earlier_round.given_up_by_the_queue(NOW + timedelta(days=3))


# The address policy


@pytest.mark.parametrize(("address", "reason"), BLOCKED_ADDRESSES)
def test_no_webhook_goes_to_a_non_public_address(address, reason):
    assert refusal(address) == reason


@pytest.mark.parametrize(
    "address",
    ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111", "::ffff:93.184.216.34", "2002:5db8:d822::1"],
)
def test_a_public_address_is_allowed_in_every_form(address):
    assert refusal(address) is None


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://hooks.example.com/in", "must be an https URL"),
        ("ftp://hooks.example.com/in", "must be an https URL"),
        ("hooks.example.com/in", "must be an https URL"),
        ("https://user:secret@hooks.example.com/", "must not carry a user name or password"),
        ("https://@hooks.example.com/", "must not carry a user name or password"),
        ("https:///in", "must name a host"),
        ("https://hooks.example.com:99999/", "is not a valid URL"),
        ("https://hooks.example.com:0/", "must not name port 0"),
        ("https://93.184.216.34:0/in", "must not name port 0"),
        ("https://hooks.example.com../", "does not name a valid host"),
        ("https://hooks example.com/", "must not contain spaces or control characters"),
        ("https://hooks.example.com/\nHost: evil", "must not contain spaces or control characters"),
        ("https://" + "a" * 2040 + ".com/", "is longer than 2048 characters"),
        ("https://-bad-.example.com/", "does not name a valid host"),
        ("https://127.0.0.1/", "names a loopback address"),
        ("https://127.1/", "names a loopback address"),
        ("https://2130706433/", "names a loopback address"),
        ("https://0x7f.0.0.1/", "names a loopback address"),
        ("https://0.0.0.0/", "names an unspecified address"),
        ("https://[::1]:8443/", "names a loopback address"),
        ("https://[::ffff:169.254.169.254]/", "names a link-local address"),
        ("https://169.254.169.254/latest/meta-data/", "names a link-local address"),
        ("https://10.1.2.3/", "names a private address"),
        ("https://[fd00::1]/", "names a private address"),
    ],
)
def test_a_url_is_refused_with_the_reason(url, message):
    with pytest.raises(UrlRefused) as refused:
        target_of(url, ())
    assert refused.value.message == message


def test_a_url_s_target_has_its_host_port_path_and_host_header():
    target = target_of("https://Hooks.Example.com/in?x=1#part", ())
    assert (target.scheme, target.host, target.port, target.path, target.host_header) == (
        "https",
        "hooks.example.com",
        443,
        "/in?x=1",
        "hooks.example.com",
    )
    assert target_of("https://hooks.example.com:8443", ()).host_header == "hooks.example.com:8443"
    assert target_of("https://hooks.example.com:8443", ()).path == "/"
    assert target_of("https://bücher.example/", ()).host == "xn--bcher-kva.example"
    ipv6 = target_of("https://[2606:4700:4700::1111]:8443/x", ())
    assert (ipv6.literal, ipv6.host_header) == ("2606:4700:4700::1111", "[2606:4700:4700::1111]:8443")


def test_an_absolute_name_is_resolved_as_written_and_named_without_its_trailing_dot():
    target = target_of("https://Hooks.Example.com.:8443/in", ())
    assert (target.host, target.server_name, target.host_header) == (
        "hooks.example.com.",
        "hooks.example.com",
        "hooks.example.com:8443",
    )
    assert target_of("http://localhost.:9000/", LOCAL).allowed


def test_a_path_is_sent_with_its_non_ascii_characters_percent_encoded():
    assert target_of("https://hooks.example.com/ä/in?x=ü&y=%20", ()).path == "/%C3%A4/in?x=%C3%BC&y=%20"


def test_the_allow_list_lets_its_hosts_through_over_http_too():
    target = target_of("http://127.0.0.1:9000/hooks", LOCAL)
    assert (target.allowed, target.literal, target.port) == (True, "127.0.0.1", 9000)
    assert target_of("http://localhost:9000/", LOCAL).allowed
    assert checked_addresses(target_of("http://localhost:9000/", LOCAL), ["127.0.0.1", "::1"]) == (
        "127.0.0.1",
        "::1",
    )
    with pytest.raises(UrlRefused):
        target_of("http://127.0.0.1:9000/hooks", ())  # not without the allow list
    with pytest.raises(UrlRefused):
        target_of("http://127.0.0.2/", LOCAL)  # only what it names


@pytest.mark.parametrize(("address", "reason"), BLOCKED_ADDRESSES)
def test_a_name_resolving_to_a_non_public_address_is_refused(address, reason):
    target = target_of("https://hooks.example.com/in", ())
    with pytest.raises(UrlRefused) as refused:
        checked_addresses(target, ["93.184.216.34", address])
    article = "an" if reason[0] in "aeiou" else "a"
    assert refused.value.message == f"names hooks.example.com, which resolves to {article} {reason} address"


def test_a_name_that_resolves_nowhere_is_refused_and_a_public_one_gives_its_addresses_in_turn():
    target = target_of("https://hooks.example.com/in", ())
    with pytest.raises(UrlRefused, match="does not resolve"):
        checked_addresses(target, [])
    found = ["93.184.216.34", "2606:4700:4700::1111", "93.184.216.34"]
    assert checked_addresses(target, found) == ("93.184.216.34", "2606:4700:4700::1111")
    literal = target_of("https://93.184.216.34/in", ())
    assert checked_addresses(literal, []) == ("93.184.216.34",)
