"""Campaigns over HTTP, with runs done by the consumers (the local event pump runs them as
Lambda would)."""

from __future__ import annotations

import email

TEMPLATES = {
    "en": {
        "subject": "Hi {{ preferred_name }}",
        "body": "Try {{ product.name }} at {{ product.price }}. {{ unsubscribe_url }}",
    },
    "sv": {
        "subject": "Hej {{ preferred_name }}",
        "body": "Prova {{ product.name }} för {{ product.price }}. {{ unsubscribe_url }}",
    },
}


def _sent_messages() -> list:
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends

    return list(ses_backends[DEFAULT_ACCOUNT_ID]["eu-north-1"].sent_messages)


def _segment(api, pump, rules: dict) -> dict:
    reply = api.post("/segments", {"name": "Seg", "rules": rules})
    assert reply.status == 201, reply.json
    pump.drain()
    return api.get(f"/segments/{reply.json['id']}").json


def test_a_manual_run_sends_each_consenting_member_one_message(api, pump):
    ids = [
        api.create_customer(
            name="Åsa Öberg", locale="sv-SE", email="asa@example.com", marketing_consent=True
        )["id"],
        api.create_customer(name="Lars Berg", locale="sv", email="lars@example.com", marketing_consent=False)[
            "id"
        ],
        api.create_customer(name="Ann Lee", locale="sv", marketing_consent=True)["id"],
    ]
    pump.drain()
    segment = _segment(api, pump, {"locales": ["sv"]})
    assert segment["member_count"] == 3
    reply = api.post(
        "/campaigns",
        {
            "name": "Spring",
            "segment_id": segment["id"],
            "status": "active",
            "templates": TEMPLATES,
            "recommendation": "none",
        }
        | {
            "templates": {
                k: {"subject": v["subject"], "body": "Hej {{ name }} {{ unsubscribe_url }}"}
                for k, v in TEMPLATES.items()
            }
        },
    )
    assert reply.status == 201, reply.json
    campaign = reply.json
    run = api.post(f"/campaigns/{campaign['id']}/runs")
    assert run.status == 202, run.json
    pump.drain()
    done = api.get(f"/campaigns/{campaign['id']}/runs/{run.json['id']}").json
    assert done["status"] == "completed", done
    assert done["targeted"] == 3 and done["sent"] == 1, done
    assert done["skipped"]["no_consent"] == 1 and done["skipped"]["no_email"] == 1
    sent = _sent_messages()
    assert len(sent) == 1
    parsed = email.message_from_string(sent[0].raw_data)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    recipients = api.get(f"/campaigns/{campaign['id']}/runs/{run.json['id']}/recipients?outcome=sent").json
    assert [r["customer_id"] for r in recipients["items"]] == [ids[0]]
