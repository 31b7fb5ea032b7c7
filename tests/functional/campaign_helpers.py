"""What the campaign suites share: a segment built by the consumers, a campaign body, the mail
moto's SES took, and a catalogue whose popular product campaigns can recommend."""

from __future__ import annotations

import email
from datetime import timedelta
from email import policy
from email.message import Message
from urllib.parse import urlsplit
from uuid import uuid4

from chalicelib.config import get_settings

# A product in every template: a customer for whom nothing is recommended is skipped.
TEMPLATES = {
    "en": {
        "subject": "Hi {{ preferred_name }}",
        "body": "Hello {{ preferred_name }}, try {{ product.name }} at {{ product.price }}.\n"
        "Unsubscribe: {{ unsubscribe_url }}",
    },
    "sv": {
        "subject": "Hej {{ preferred_name }}",
        "body": "Hej {{ preferred_name }}, prova {{ product.name }} för {{ product.price }}.\n"
        "Avregistrera: {{ unsubscribe_url }}",
    },
    "tl": {
        "subject": "Kumusta {{ preferred_name }}",
        "body": "Kumusta {{ preferred_name }}, subukan ang {{ product.name }}.\n{{ unsubscribe_url }}",
    },
}
# No product: every consenting member with an email gets it.
PLAIN_TEMPLATES = {
    "en": {"subject": "News for {{ name }}", "body": "Hello {{ preferred_name }}. {{ unsubscribe_url }}"},
    "sv": {"subject": "Nyheter för {{ name }}", "body": "Hej {{ preferred_name }}. {{ unsubscribe_url }}"},
}
TAG = "campaign-test"


def segment(api, pump, rules: dict | None = None) -> dict:
    """A segment, built (its members counted) by the consumers."""
    reply = api.post("/segments", {"name": "Campaign audience", "rules": rules or {"tags_any": [TAG]}})
    assert reply.status == 201, reply.json
    pump.drain()
    built = api.get(f"/segments/{reply.json['id']}").json
    assert built["status"] == "ready", built
    return built


def member(api, name: str, **fields) -> dict:
    """A customer the default segment rules take in: consenting, with an email, unless told."""
    slug = name.split()[0].lower().encode("ascii", "ignore").decode() or "kund"
    defaults = {"email": f"{slug}.{uuid4().hex[:8]}@example.com", "marketing_consent": True, "tags": [TAG]}
    return api.create_customer(name=name, **(defaults | fields))


def campaign_body(segment_id: str, **fields) -> dict:
    return {"name": "Spring", "segment_id": segment_id, "templates": TEMPLATES} | fields


def create_campaign(api, segment_id: str, **fields) -> dict:
    reply = api.post("/campaigns", campaign_body(segment_id, **fields))
    assert reply.status == 201, reply.json
    return reply.json


def run_now(api, pump, campaign_id: str) -> dict:
    """A manual run, done by the consumers: the run as GET answers it afterwards."""
    started = api.post(f"/campaigns/{campaign_id}/runs")
    assert started.status == 202, started.json
    pump.drain()
    run = api.get(f"/campaigns/{campaign_id}/runs/{started.json['id']}").json
    assert run["status"] == "completed", run
    return run


def outcomes(api, campaign_id: str, run_id: str, outcome: str | None = None, limit: int = 100) -> dict:
    """customer id → (outcome, reason) of a run's decisions, walked page by page."""
    path = f"/campaigns/{campaign_id}/runs/{run_id}/recipients"
    path += f"?outcome={outcome}" if outcome else ""
    walked = api.walk(path, limit)
    assert len({r["customer_id"] for r in walked}) == len(walked), walked
    return {r["customer_id"]: (r["outcome"], r["reason"]) for r in walked}


def sent_mail() -> list:
    """The raw messages moto's SES took, oldest first."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID][get_settings().region].sent_messages)


def raw_headers(raw: str) -> Message:
    """The message as it is on the wire (compat32: header values are not decoded)."""
    return email.message_from_string(raw)


def decoded(raw: str):
    """The message as a mail client reads it: encoded words decoded, the body as text."""
    return email.message_from_string(raw, policy=policy.default)


def mail_to(address: str) -> list:
    return [m for m in sent_mail() if address in m.destinations]


def unsubscribe_path(raw: str) -> str:
    """The path and query of the message's List-Unsubscribe URL (the test client takes paths)."""
    value = raw_headers(raw)["List-Unsubscribe"]
    assert value.startswith("<") and value.endswith(">"), value
    url = urlsplit(value[1:-1])
    return f"{url.path}?{url.query}"


def catalogue(api) -> None:
    """Tea (named in English, Swedish and Finnish) and honey, in EUR."""
    for sku, names, price in (
        ("SKU-TEA", {"en": "Green tea", "sv": "Grönt te", "fi": "Vihreä tee"}, "7.50"),
        ("SKU-HONEY", {"en": "Honey"}, "6.00"),
    ):
        reply = api.post("/products", {"sku": sku, "names": names, "price": price, "currency": "EUR"})
        assert reply.status == 201, reply.json


def buy(api, customer_id: str, *skus: str, days_ago: float = 1) -> None:
    from chalicelib import wiring

    at = wiring.clock.now() - timedelta(days=days_ago)
    reply = api.post(
        f"/customers/{customer_id}/interactions",
        {
            "type": "purchase",
            "channel": "store",
            "currency": "EUR",
            "occurred_at": at.isoformat(),
            "items": [{"sku": s, "name": s.title(), "quantity": 1, "unit_price": "5.00"} for s in skus],
        },
    )
    assert reply.status == 201, reply.json


def popular_tea(api, pump) -> None:
    """Tea is the most bought product: two shoppers outside the campaign's segment bought it."""
    catalogue(api)
    for n in range(2):
        shopper = api.create_customer(name=f"Shopper {n}")
        buy(api, shopper["id"], "SKU-TEA")
    pump.drain()
