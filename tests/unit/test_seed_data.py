from __future__ import annotations

import copy
import random
import re
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from chalicelib.local.seed_data import demo_customers, demo_interactions, demo_products, seed

NOW = datetime(2026, 10, 1, 9, 30, tzinfo=timezone(timedelta(hours=2)))

TYPES = {"purchase", "return", "complaint", "inquiry", "feedback", "visit"}
CHANNELS = {"store", "web", "mobile", "phone", "email", "letter", "video", "chat", "social"}
SEVERITIES = {"low", "medium", "high", "critical"}
LOCALES = {"sv", "sv-SE", "fi", "fi-FI", "sl", "sl-SI", "tl", "tl-PH", "en", "en-GB"}
CURRENCIES = {"EUR", "SEK", "PHP"}
REQUIRED = {
    "Åsa Öberg": ("sv", "Åsa"),
    "Jyrki Mäkelä": ("fi", None),
    "Saša Kovačič": ("sl", None),
    "Maria Dela Cruz": ("tl", "Ria"),
    "Nguyễn Văn An": ("en", "An"),
}
E164 = re.compile(r"^\+[1-9]\d{7,14}$")
PHONE_RANGES = ("+4670", "+35840", "+38641", "+63917", "+442079460")
PRICE = re.compile(r"^\d+\.\d{2}$")
CUSTOMER_PATH = re.compile(r"^/customers/(?P<id>[^/]+)/interactions$")


class FakeApi:
    """Records every POST and answers 201 with a fresh id (products: their sku), like the real API."""

    def __init__(self, fail_on: str | None = None, fail_status: int = 409) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []
        self.products: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.fail_on = fail_on
        self.fail_status = fail_status

    def __call__(self, path: str, body: dict) -> tuple[int, dict]:
        if self.fail_on is not None and re.search(self.fail_on, path):
            return self.fail_status, {"error": "Conflict", "message": "already exists"}
        self.paths.append(path)
        if path == "/products":
            self.products.append(copy.deepcopy(body))
            return 201, dict(body)
        new_id = f"id-{len(self.calls) + 1:04d}"
        self.calls.append((path, copy.deepcopy(body), new_id))
        return 201, {"id": new_id, **body}

    @property
    def customers(self) -> list[tuple[dict[str, Any], str]]:
        return [(body, new_id) for path, body, new_id in self.calls if path == "/customers"]

    @property
    def interactions(self) -> list[tuple[str, dict[str, Any], str]]:
        """(customer id, body, interaction id), in posting order."""
        found = []
        for path, body, new_id in self.calls:
            match = CUSTOMER_PATH.match(path)
            if match:
                found.append((match["id"], body, new_id))
        return found


@pytest.fixture(scope="module")
def api() -> FakeApi:
    fake = FakeApi()
    seed(fake, now=NOW)
    return fake


def bodies(api: FakeApi, kind: str | None = None) -> list[dict[str, Any]]:
    return [body for _, body, _ in api.interactions if kind is None or body["type"] == kind]


# --------------------------------------------------------------------------- customers


def test_it_seeds_at_least_twelve_customers(api: FakeApi) -> None:
    assert len(api.customers) >= 12


def test_the_five_required_customers_are_present_with_their_locales_and_preferred_names(
    api: FakeApi,
) -> None:
    by_name = {body["name"]: body for body, _ in api.customers}
    for name, (language, preferred_name) in REQUIRED.items():
        assert name in by_name, name
        assert by_name[name]["locale"].split("-")[0] == language
        if preferred_name is not None:
            assert by_name[name]["preferred_name"] == preferred_name


def test_every_locale_family_is_present(api: FakeApi) -> None:
    families = Counter(body["locale"].split("-")[0] for body, _ in api.customers)
    assert set(families) == {"sv", "fi", "sl", "tl", "en"}


def test_customer_bodies_follow_the_api_contract(api: FakeApi) -> None:
    names = set()
    for body, _ in api.customers:
        assert 1 <= len(body["name"]) <= 200
        names.add(body["name"])
        assert body["locale"] in LOCALES
        local, _, domain = body["email"].partition("@")
        assert domain in {"example.com", "example.org", "example.net"}
        assert local.isascii() and local
        assert E164.match(body["phone"]), body["phone"]
        assert body["phone"].startswith(PHONE_RANGES), body["phone"]
        assert isinstance(body["marketing_consent"], bool)
        assert len(body["tags"]) <= 10
        assert all(isinstance(tag, str) and 0 < len(tag) <= 40 for tag in body["tags"])
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in body["attributes"].items())
    assert len(names) == len(api.customers), "customer names are unique"


def test_consent_tags_and_attributes_vary_between_customers(api: FakeApi) -> None:
    customers = [body for body, _ in api.customers]
    assert {body["marketing_consent"] for body in customers} == {True, False}
    tags = {tag for body in customers for tag in body["tags"]}
    assert {"vip", "newsletter", "b2b"} <= tags
    assert any(body["attributes"].get("loyalty_card") == "SE-1029" for body in customers)


def test_names_keep_their_diacritics(api: FakeApi) -> None:
    names = " ".join(body["name"] for body, _ in api.customers)
    for letter in "ÅÖäöčšŽñễă":
        assert letter in names, letter


def test_demo_customers_returns_fresh_copies() -> None:
    first = demo_customers()
    first[0]["tags"].append("mutated")
    assert "mutated" not in demo_customers()[0]["tags"]


# --------------------------------------------------------------------------- interactions


def test_it_seeds_at_least_one_hundred_interactions(api: FakeApi) -> None:
    assert len(api.interactions) >= 100


def test_seed_reports_what_it_created() -> None:
    fake = FakeApi()
    assert seed(fake, now=NOW) == {
        "products": len(fake.products),
        "customers": len(fake.customers),
        "interactions": len(fake.interactions),
        "segments": len([path for path in fake.paths if path == "/segments"]),
        "campaigns": len([path for path in fake.paths if path == "/campaigns"]),
    }


def test_segments_are_posted_last_so_that_each_is_built_from_every_customer(api: FakeApi) -> None:
    segments = [i for i, path in enumerate(api.paths) if path == "/segments"]
    campaigns = [i for i, path in enumerate(api.paths) if path == "/campaigns"]
    assert len(segments) >= 3 and min(segments) == len(api.paths) - len(segments) - len(campaigns)
    assert min(campaigns) > max(segments)


def test_the_demo_campaign_is_active_on_a_demo_segment_with_templates_in_all_five_languages(
    api: FakeApi,
) -> None:
    segment_ids = {new_id for path, _, new_id in api.calls if path == "/segments"}
    [campaign] = [body for path, body, _ in api.calls if path == "/campaigns"]
    assert campaign["status"] == "active" and campaign["segment_id"] in segment_ids
    assert set(campaign["templates"]) == {"en", "sv", "fi", "sl", "tl"}
    assert "segment" not in campaign


def test_every_type_and_every_channel_appears_at_least_five_times(api: FakeApi) -> None:
    types = Counter(body["type"] for body in bodies(api))
    channels = Counter(body["channel"] for body in bodies(api))
    assert set(types) == TYPES
    assert set(channels) == CHANNELS
    assert min(types.values()) >= 5, types
    assert min(channels.values()) >= 5, channels


def test_every_customer_has_a_history_with_several_purchases(api: FakeApi) -> None:
    kinds_by_customer: dict[str, Counter[str]] = {}
    for customer_id, body, _ in api.interactions:
        kinds_by_customer.setdefault(customer_id, Counter())[body["type"]] += 1
    assert set(kinds_by_customer) == {new_id for _, new_id in api.customers}
    # One newcomer has bought nothing yet (recommendations show them the most-bought products).
    purchases = sorted(kinds["purchase"] for kinds in kinds_by_customer.values())
    assert purchases[0] == 0 and purchases[1] >= 3
    for kinds in kinds_by_customer.values():
        assert kinds["complaint"] >= 1
        assert kinds["inquiry"] >= 1


def test_every_occurred_at_parses_has_an_offset_and_is_not_in_the_future(api: FakeApi) -> None:
    for body in bodies(api):
        occurred_at = datetime.fromisoformat(body["occurred_at"])
        assert occurred_at.utcoffset() is not None, body["occurred_at"]
        assert re.search(r"[+-]\d{2}:\d{2}$", body["occurred_at"]), body["occurred_at"]
        assert occurred_at <= NOW
        assert occurred_at >= NOW - timedelta(days=400)


def test_interactions_are_posted_after_all_customers_and_in_chronological_order(api: FakeApi) -> None:
    paths = [path for path, _, _ in api.calls]
    assert paths[: len(api.customers)] == ["/customers"] * len(api.customers)
    last_seen: dict[str, datetime] = {}
    for customer_id, body, _ in api.interactions:
        occurred_at = datetime.fromisoformat(body["occurred_at"])
        assert occurred_at >= last_seen.get(customer_id, occurred_at)
        last_seen[customer_id] = occurred_at


def test_private_reference_keys_are_not_posted(api: FakeApi) -> None:
    assert not [key for body in bodies(api) for key in body if key.startswith("_")]


def test_each_return_refers_to_an_earlier_purchase_of_the_same_customer(api: FakeApi) -> None:
    purchases: dict[str, tuple[str, dict[str, Any]]] = {}
    returns = 0
    for customer_id, body, new_id in api.interactions:
        if body["type"] == "purchase":
            purchases[new_id] = (customer_id, body)
            continue
        if body["type"] != "return":
            assert "purchase_id" not in body
            continue
        returns += 1
        assert body["purchase_id"] in purchases, "the purchase was posted before the return"
        owner, purchase = purchases[body["purchase_id"]]
        assert owner == customer_id
        assert datetime.fromisoformat(purchase["occurred_at"]) < datetime.fromisoformat(body["occurred_at"])
        assert body["currency"] == purchase["currency"]
        bought = Counter()
        for item in purchase["items"]:
            bought[item["sku"]] += item["quantity"]
        for item in body["items"]:
            assert item["sku"] in bought
            assert 0 < item["quantity"] <= bought[item["sku"]]
    assert returns >= 6


def test_purchases_and_returns_carry_currency_and_well_formed_items(api: FakeApi) -> None:
    currencies = Counter()
    prices: dict[tuple[str, str], str] = {}
    for body in bodies(api):
        if body["type"] not in {"purchase", "return"}:
            assert "items" not in body and "currency" not in body
            continue
        assert body["currency"] in CURRENCIES
        currencies[body["currency"]] += 1
        assert body["items"]
        for item in body["items"]:
            assert item["sku"].startswith("SKU-")
            assert item["name"]
            assert isinstance(item["quantity"], int) and item["quantity"] > 0
            assert isinstance(item["unit_price"], str)
            assert PRICE.match(item["unit_price"]), item["unit_price"]
            # One price per SKU and currency: the catalogue is stable.
            key = (item["sku"], body["currency"])
            assert prices.setdefault(key, item["unit_price"]) == item["unit_price"]
    assert set(currencies) == CURRENCIES
    assert currencies.most_common(1)[0][0] == "EUR"


def test_the_catalogue_is_small_and_includes_premium_support(api: FakeApi) -> None:
    skus = {item["sku"] for body in bodies(api, "purchase") for item in body["items"]}
    assert 8 <= len(skus) <= 16
    names = {item["name"] for body in bodies(api, "purchase") for item in body["items"]}
    assert "Premium support (12 months)" in names


def test_purchase_habits_are_visible_as_repeat_purchases_of_the_same_sku(api: FakeApi) -> None:
    repeats: Counter[tuple[str, str]] = Counter()
    for customer_id, body, _ in api.interactions:
        if body["type"] == "purchase":
            for item in body["items"]:
                repeats[(customer_id, item["sku"])] += 1
    habitual = {customer for (customer, _), count in repeats.items() if count >= 3}
    assert len(habitual) >= len(api.customers) // 2


def test_complaints_have_a_subject_and_all_four_severities(api: FakeApi) -> None:
    complaints = bodies(api, "complaint")
    assert {body["severity"] for body in complaints} == SEVERITIES
    for body in complaints:
        assert 0 < len(body["subject"]) <= 200
    for body in bodies(api):
        if body["type"] != "complaint":
            assert "severity" not in body and "subject" not in body


def test_notes_and_subjects_are_short_and_written_in_the_customers_language(api: FakeApi) -> None:
    language = {new_id: body["locale"].split("-")[0] for body, new_id in api.customers}
    texts: dict[str, set[str]] = {}
    for customer_id, body, _ in api.interactions:
        assert 0 < len(body["note"]) <= 4000
        texts.setdefault(language[customer_id], set()).add(body["note"])
        if "subject" in body:
            texts[language[customer_id]].add(body["subject"])
    # No note is shared between languages...
    for one in texts:
        for other in texts:
            if one < other:
                assert not texts[one] & texts[other], (one, other)
    # ...and each language's notes read like that language.
    words = {
        "sv": ("och", "butiken", "Tack", "kunden", "Hej!"),
        "fi": ("ja", "myymälässä", "Kiitos", "asiakas", "Hei!"),
        "sl": ("je", "trgovini", "Hvala", "Stranka", "Pozdravljeni!"),
        "tl": ("ang", "sa", "Salamat", "po", "Magandang"),
        "en": ("the", "store", "Thank", "Customer", "Hello!"),
    }
    for lang, expected in words.items():
        found = set(re.findall(r"[\w!]+", " ".join(texts[lang])))
        assert set(expected) <= found, (lang, set(expected) - found)


# --------------------------------------------------------------------------- products

PRODUCT_SKU = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")


def test_the_catalogue_is_posted_first_with_every_sku_the_histories_buy(api: FakeApi) -> None:
    assert api.paths[: len(api.products)] == ["/products"] * len(api.products)
    assert "/products" not in api.paths[len(api.products) :]
    bought = {item["sku"] for body in bodies(api, "purchase") for item in body["items"]}
    assert bought <= {product["sku"] for product in api.products}


def test_product_bodies_follow_the_api_contract(api: FakeApi) -> None:
    skus = [product["sku"] for product in api.products]
    assert skus == sorted(set(skus))
    for product in api.products:
        assert set(product) == {"sku", "names", "price", "currency", "active"}
        assert PRODUCT_SKU.match(product["sku"]) and len(product["sku"]) <= 64
        assert set(product["names"]) == {"sv", "fi", "sl", "tl", "en"}
        assert all(0 < len(name) <= 200 for name in product["names"].values())
        assert (product["currency"], product["active"]) == ("EUR", True)
        assert PRICE.match(product["price"]), product["price"]


def test_products_carry_the_names_and_eur_prices_the_purchases_use(api: FakeApi) -> None:
    products = {product["sku"]: product for product in api.products}
    language = {new_id: body["locale"].split("-")[0] for body, new_id in api.customers}
    for customer_id, body, _ in api.interactions:
        if body["type"] != "purchase":
            continue
        for item in body["items"]:
            assert item["name"] == products[item["sku"]]["names"][language[customer_id]]
            if body["currency"] == "EUR":
                assert item["unit_price"] == products[item["sku"]]["price"]


def test_demo_products_returns_fresh_copies() -> None:
    first = demo_products()
    first[0]["names"]["en"] = "mutated"
    assert demo_products()[0]["names"]["en"] != "mutated"


# --------------------------------------------------------------------------- seeding


def test_seed_raises_when_creating_a_customer_returns_409() -> None:
    fake = FakeApi(fail_on=r"^/customers$")
    with pytest.raises(RuntimeError, match=r"/customers.*409.*already exists"):
        seed(fake, now=NOW)


def test_seed_raises_when_creating_a_product_fails() -> None:
    fake = FakeApi(fail_on=r"^/products$")
    with pytest.raises(RuntimeError, match=r"/products.*409.*already exists"):
        seed(fake, now=NOW)
    assert fake.calls == []


def test_seed_raises_when_creating_an_interaction_fails() -> None:
    fake = FakeApi(fail_on=r"/interactions$", fail_status=422)
    with pytest.raises(RuntimeError, match=r"/customers/id-0001/interactions.*422"):
        seed(fake, now=NOW)
    assert len(fake.customers) >= 12


def test_seed_raises_when_a_201_carries_no_id() -> None:
    def post(path: str, body: dict) -> tuple[int, dict]:
        return 201, (dict(body) if path == "/products" else {})

    with pytest.raises(RuntimeError, match="without an id"):
        seed(post, now=NOW)


def test_two_runs_with_the_same_seed_and_now_are_identical() -> None:
    first, second = FakeApi(), FakeApi()
    seed(first, now=NOW, seed=11)
    seed(second, now=NOW, seed=11)
    assert first.calls == second.calls


def test_a_different_seed_gives_a_different_history() -> None:
    first, second = FakeApi(), FakeApi()
    seed(first, now=NOW, seed=1)
    seed(second, now=NOW, seed=2)
    assert [body for _, body, _ in first.interactions] != [body for _, body, _ in second.interactions]


@pytest.mark.parametrize("seed_value", [0, 1, 7, 42, 2024])
def test_the_guarantees_hold_for_other_seeds_too(seed_value: int) -> None:
    fake = FakeApi()
    seed(fake, now=NOW, seed=seed_value)
    interactions = [body for _, body, _ in fake.interactions]
    assert len(interactions) >= 100
    assert min(Counter(body["type"] for body in interactions).values()) >= 5
    channels = Counter(body["channel"] for body in interactions)
    assert set(channels) == CHANNELS and min(channels.values()) >= 5
    assert {body["severity"] for body in interactions if body["type"] == "complaint"} == SEVERITIES
    assert sum(body["type"] == "return" for body in interactions) >= 6
    assert all(datetime.fromisoformat(body["occurred_at"]) <= NOW for body in interactions)


def test_seed_defaults_now_to_the_current_time() -> None:
    fake = FakeApi()
    before = datetime.now(UTC)
    seed(fake)
    after = datetime.now(UTC)
    latest = max(datetime.fromisoformat(body["occurred_at"]) for _, body, _ in fake.interactions)
    assert latest <= after
    assert latest >= before - timedelta(days=30)


def test_local_times_follow_summer_time_in_europe_and_manila_time_in_the_philippines() -> None:
    customers = demo_customers()
    offsets: dict[str, set[str]] = {}
    for index, customer in enumerate(customers):
        language = customer["locale"].split("-")[0]
        for body in demo_interactions(index, customer, random.Random(3), NOW):
            offsets.setdefault(language, set()).add(body["occurred_at"][-6:])
    assert offsets["sv"] == {"+01:00", "+02:00"}
    assert offsets["sl"] == {"+01:00", "+02:00"}
    assert offsets["fi"] == {"+02:00", "+03:00"}
    assert offsets["en"] == {"+00:00", "+01:00"}
    assert offsets["tl"] == {"+08:00"}


def test_demo_data_that_buys_an_unlisted_sku_fails_naming_the_file_the_customer_and_the_sku(monkeypatch):
    from chalicelib.local import seed_data

    read = seed_data._read

    def edited(name: str) -> Any:
        data = read(name)
        if name == "customers.json":
            data[0]["profile"]["one_offs"].append("SKU-NOT-LISTED")
        return data

    monkeypatch.setattr(seed_data, "_read", edited)
    seed_data._demo.cache_clear()
    try:
        with pytest.raises(ValueError, match=r"^customers\.json: Åsa Öberg buys SKU-NOT-LISTED in SEK"):
            demo_customers()
    finally:
        seed_data._demo.cache_clear()


def test_every_demo_phone_and_locale_passes_the_apis_own_checks_unchanged():
    from chalicelib.domain import contact

    for body in demo_customers():
        if body.get("phone"):
            assert contact.normalize_phone(body["phone"]) == body["phone"], body["name"]
        assert contact.normalize_locale(body["locale"]) == body["locale"], body["name"]
    for product in demo_products():
        for locale in product["names"]:
            assert contact.normalize_locale(locale) == locale, product["sku"]
