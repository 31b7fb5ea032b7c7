"""Deleting a customer removes the profile at once and the timeline from the customers stream."""

from __future__ import annotations

import json
from pathlib import Path

from tests.functional.conftest import Api

EVENT = Path(__file__).parent / "events" / "customer_profile_removed.json"


def _event_for(customer_id: str) -> dict:
    return json.loads(EVENT.read_text().replace("__CUSTOMER_ID__", customer_id))


def _interaction_count(customer_id: str) -> int:
    from chalicelib.store.models import InteractionModel

    return InteractionModel.count(customer_id)


def test_a_removed_profile_record_purges_the_customers_timeline(client, staff_token):
    api = Api(client, staff_token)
    gone = api.create_customer(name="Saša Kovačič")
    kept = api.create_customer(name="Mojca Žagar")
    for who in (gone, kept):
        for kind in ("visit", "inquiry", "feedback"):
            api.post(f"/customers/{who['id']}/interactions", {"type": kind, "channel": "store"})
    assert api.delete(f"/customers/{gone['id']}").status == 204

    response = client.lambda_.invoke("on_customer_change", _event_for(gone["id"]))
    assert response.payload == {"batchItemFailures": []}
    assert _interaction_count(gone["id"]) == 0
    assert _interaction_count(kept["id"]) == 3

    again = client.lambda_.invoke("on_customer_change", _event_for(gone["id"]))
    assert again.payload == {"batchItemFailures": []}
    assert _interaction_count(kept["id"]) == 3


def test_a_removed_profile_record_removes_the_customers_sign_in_links(client, staff_token):
    from chalicelib.api import deps
    from chalicelib.config import get_settings

    api = Api(client, staff_token)
    gone = api.create_customer(name="Saša Kovačič")
    kept = api.create_customer(name="Mojca Žagar")
    for who, sub in ((gone, "sub-gone"), (kept, "sub-kept")):
        assert api.request("PUT", f"/customers/{who['id']}/identities/{sub}").status == 201
    me = api.as_role("customer", gone["id"])
    assert me.patch("/me", {"email": "ny@example.com"}).status == 202
    assert api.delete(f"/customers/{gone['id']}").status == 204

    response = client.lambda_.invoke("on_customer_change", _event_for(gone["id"]))
    assert response.payload == {"batchItemFailures": []}
    identities, issuer = deps.identity_repository(), get_settings().jwt_issuer
    assert identities.customer_for(issuer, "sub-gone") is None and identities.of_customer(gone["id"]) == []
    assert deps.repositories()[0].email_change(gone["id"]) is None
    assert identities.customer_for(issuer, "sub-kept") == kept["id"]
