from tests.functional.conftest import assert_problem


def test_smoke(api):
    assert api.get("/health", auth=False).json == {"status": "ok"}
    c = api.create_customer(email="asa@example.com", preferred_name="Åsa", locale="sv")
    got = api.get(f"/customers/{c['id']}")
    assert got.status == 200 and got.json["name"] == "Åsa Öberg"
    assert api.get("/customers?q=oberg").json["items"][0]["id"] == c["id"]
    r = api.post(
        f"/customers/{c['id']}/interactions",
        {
            "type": "purchase",
            "channel": "web",
            "currency": "EUR",
            "items": [
                {"sku": "A", "name": "a", "quantity": 1, "unit_price": 1.10},
                {"sku": "B", "name": "b", "quantity": 1, "unit_price": "2.20"},
            ],
        },
    )
    assert r.status == 201, r.json
    assert r.json["amount"] == "3.30"
    assert_problem(api.post("/customers", {"name": ""}), 400, "name")
