"""Demo data for a local stack, seeded through the public HTTP API (`POST /products`,
`/customers`, `/customers/{id}/interactions`, `/segments`, `/campaigns`), so it obeys the same
validation as real traffic. The transport is injected: `post(path, json_body) -> (status, json)`.

The data lives in `demo/`: `products.json`, `customers.json` (with the habits their histories
follow), `texts/<language>.json`, `segments.json`, `campaigns.json`. The customers write in
Swedish, Finnish, Slovenian, Tagalog and English. Histories buy from a small, stable catalogue,
so purchase habits (a SKU bought again at regular intervals) show. Deterministic per seed/now.

Bodies returned by `demo_interactions` may carry two private keys that are not part
of the API contract and are removed by `seed` before posting:

* `_ref` on a purchase: a local reference for that purchase;
* `_purchase_ref` on a return: the `_ref` of the purchase it returns, which `seed`
  replaces with `purchase_id`, the id from that purchase's 201 response.
"""

from __future__ import annotations

import copy
import functools
import json
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

Post = Callable[[str, dict], tuple[int, dict]]

__all__ = ["Post", "demo_customers", "demo_interactions", "demo_products", "seed"]

HISTORY_DAYS = 200  # how far back the generated histories reach, in days before `now`
LANGUAGES = ("en", "sv", "fi", "sl", "tl")
# Where the customers of each language live: their interactions happen in that local time.
TIME_ZONES = {
    "sv": ZoneInfo("Europe/Stockholm"),
    "fi": ZoneInfo("Europe/Helsinki"),
    "sl": ZoneInfo("Europe/Ljubljana"),
    "tl": ZoneInfo("Asia/Manila"),
    "en": ZoneInfo("Europe/London"),
}

# Slots are parallel across languages: complaint slot 3 is the critical one over chat in every
# language's texts, and so on. Customers pick slots by their index, which keeps the mix of
# severities and channels even however the random generator falls.
_COMPLAINT_SLOTS = (  # (severity, channel) of each complaint in texts/<language>.json
    ("low", "email"), ("medium", "phone"), ("high", "letter"),
    ("critical", "chat"), ("medium", "social"), ("low", "store"),
)  # fmt: skip
_INQUIRY_CHANNELS = ("phone", "email", "chat", "video", "social", "web")
_FEEDBACK_CHANNELS = ("web", "email", "social", "mobile")
_FEEDBACK_AFTER_RETURN = 2  # the feedback slot thanking us for help with a return
_VISIT_CHANNELS = ("store", "store", "video")
_RETURN_CHANNELS = ("store", "web", "letter")

# Opening hours per channel: when a customer plausibly reaches us that way (local time; none in
# the small hours, when summer time begins or ends, so no time is skipped or repeated). A
# letter's is when the post is opened.
_HOURS = {"store": (9, 19), "phone": (8, 17), "video": (9, 16), "letter": (9, 15)}
_OTHER_HOURS = (7, 22)

# --------------------------------------------------------------------------- the data files


@dataclass(frozen=True)
class _Product:
    names: dict[str, str]  # language -> product name
    prices: dict[str, str]  # currency -> unit price, a decimal string with 2 places
    max_qty: int = 1  # for one-off purchases
    return_reason: str = "regret"  # key into the texts' "return_reason"
    companion: str | None = None  # a SKU often bought together with this one


@dataclass(frozen=True)
class _Habit:
    """The same SKU bought again every `every_days` (± `jitter_days`)."""

    sku: str
    every_days: int
    jitter_days: int
    qty: tuple[int, int]
    channel: str
    companion_chance: float = 0.0


@dataclass(frozen=True)
class _Profile:
    currency: str
    habits: tuple[_Habit, ...]
    one_offs: tuple[str, ...] = ()  # SKUs bought once, each in its own purchase
    returns: tuple[str, ...] = ()  # one-off SKUs that are returned later


def _profile(raw: dict[str, Any]) -> _Profile:
    habits = tuple(_Habit(**{**habit, "qty": tuple(habit["qty"])}) for habit in raw["habits"])
    return _Profile(raw["currency"], habits, tuple(raw.get("one_offs", ())), tuple(raw.get("returns", ())))


# For a customer who is not one of the demo customers.
_DEFAULT_PROFILE = _Profile(
    currency="EUR",
    habits=(_Habit("SKU-COFFEE-500", 45, 6, (1, 1), "web"),),
    one_offs=("SKU-HEADPHONES-BT",),
)


@dataclass(frozen=True)
class _Demo:
    catalogue: dict[str, _Product]
    texts: dict[str, dict[str, Any]]  # language -> texts/<language>.json
    customers: tuple[dict[str, Any], ...]  # bodies for POST /customers
    profiles: dict[str, _Profile]  # customer name -> the habits their history follows


def _read(name: str) -> Any:
    return json.loads(resources.files(__package__).joinpath("demo", name).read_text(encoding="utf-8"))


@functools.cache
def _demo() -> _Demo:
    entries = _read("customers.json")
    demo = _Demo(
        catalogue={sku: _Product(**raw) for sku, raw in _read("products.json").items()},
        texts={lang: _read(f"texts/{lang}.json") for lang in LANGUAGES},
        customers=tuple(entry["customer"] for entry in entries),
        profiles={entry["customer"]["name"]: _profile(entry["profile"]) for entry in entries},
    )
    _check(demo)
    return demo


def _check(demo: _Demo) -> None:
    """What the generator relies on, said by file: an edit to `demo/` that breaks it fails here,
    not halfway through a seed."""
    catalogue = demo.catalogue
    for sku, product in catalogue.items():
        if set(product.names) != set(LANGUAGES) or product.companion not in (None, *catalogue):
            raise ValueError(f"products.json: {sku} needs a name in each of {LANGUAGES}, a listed companion")
    for name, profile in [*demo.profiles.items(), ("the default profile", _DEFAULT_PROFILE)]:
        for sku in (*(habit.sku for habit in profile.habits), *profile.one_offs):
            if sku not in catalogue or profile.currency not in catalogue[sku].prices:
                raise ValueError(
                    f"customers.json: {name} buys {sku} in {profile.currency}, not in products.json"
                )
    slots = {
        "complaint": _COMPLAINT_SLOTS,
        "inquiry": _INQUIRY_CHANNELS,
        "feedback": _FEEDBACK_CHANNELS,
        "visit": _VISIT_CHANNELS,
    }
    for lang, texts in demo.texts.items():
        for kind, kind_slots in slots.items():
            if len(texts[kind]) != len(kind_slots):
                raise ValueError(f"texts/{lang}.json: {kind} needs {len(kind_slots)} entries, one per slot")


# --------------------------------------------------------------------------- time zones


def _when(now: datetime, zone: ZoneInfo, days_ago: int, hour: int, minute: int) -> datetime:
    """`hour:minute` in `zone`, on the local day `days_ago` days before `now` or, if that is later
    than `now`, a day before."""
    day = (now - timedelta(days=days_ago)).astimezone(zone).date()
    moment = datetime.combine(day, time(hour, minute), tzinfo=zone)
    while moment > now:
        day -= timedelta(days=1)
        moment = datetime.combine(day, time(hour, minute), tzinfo=zone)
    return moment


def _random_moment(
    rng: random.Random, now: datetime, zone: ZoneInfo, channel: str, days_ago: int
) -> datetime:
    first, last = _HOURS.get(channel, _OTHER_HOURS)
    return _when(now, zone, days_ago, rng.randint(first, last), rng.randint(0, 59))


# --------------------------------------------------------------------------- interactions


def _language(customer: dict) -> str:
    lang = str(customer.get("locale", "en")).split("-")[0].lower()
    return lang if lang in LANGUAGES else "en"


def demo_interactions(customer_index: int, customer: dict, rng: random.Random, now: datetime) -> list[dict]:
    """Request bodies for `POST /customers/{id}/interactions`, oldest first.

    `customer` is the body from `demo_customers()`; `customer_index` its position
    there. Purchases carry a private `_ref`, returns a private `_purchase_ref`
    naming the purchase they return (see the module docstring); `seed` resolves
    them. Every `occurred_at` lies within the last ~400 days and not after `now`.
    """
    now = _aware(now)
    demo = _demo()
    catalogue = demo.catalogue
    lang = _language(customer)
    texts, zone = demo.texts[lang], TIME_ZONES[lang]
    profile = demo.profiles.get(customer.get("name", ""), _DEFAULT_PROFILE)
    currency = profile.currency
    # (moment, tie-breaker, body): a purchase sorts before anything at the same time.
    events: list[tuple[datetime, int, dict]] = []
    refs = 0
    return_days_ago: list[int] = []

    def item(sku: str, quantity: int) -> dict:
        product = catalogue[sku]
        return {
            "sku": sku,
            "name": product.names[lang],
            "quantity": quantity,
            "unit_price": product.prices[currency],
        }

    def purchase(days_ago: int, channel: str, items: list[dict], note: str) -> dict:
        nonlocal refs
        refs += 1
        body = {
            "type": "purchase",
            "channel": channel,
            "occurred_at": _random_moment(rng, now, zone, channel, days_ago),
            "note": note,
            "currency": currency,
            "items": items,
            "_ref": f"c{customer_index}-p{refs}",
        }
        events.append((body["occurred_at"], 0, body))
        return body

    # Habits: the same SKU again and again, at roughly regular intervals.
    for habit in profile.habits:
        days_ago = HISTORY_DAYS - rng.randint(0, min(30, habit.every_days // 2))
        while days_ago >= 1:
            items = [item(habit.sku, rng.randint(*habit.qty))]
            companion = catalogue[habit.sku].companion
            if companion and rng.random() < habit.companion_chance:
                items.append(item(companion, 1))
            note = f"{texts['habit']} {rng.choice(texts['purchase'][habit.channel])}"
            purchase(days_ago, habit.channel, items, note)
            step = habit.every_days + rng.randint(-habit.jitter_days, habit.jitter_days)
            days_ago -= max(1, step)

    # One-off purchases, some of them returned a few days later.
    for sku in profile.one_offs:
        channel = rng.choice(("store", "web", "mobile"))
        product = catalogue[sku]
        items = [item(sku, rng.randint(1, product.max_qty))]
        if product.companion and rng.random() < 0.3:
            items.append(item(product.companion, 1))
        days_ago = rng.randint(30, HISTORY_DAYS - 10)
        note = rng.choice(texts["purchase"][channel])
        bought = purchase(days_ago, channel, items, note)
        if sku not in profile.returns:
            continue
        slot = (customer_index + len(events)) % len(_RETURN_CHANNELS)
        return_channel = _RETURN_CHANNELS[slot]
        returned = items[0]
        return_days_ago.append(days_ago - rng.randint(3, 21))
        note = f"{texts['return_reason'][product.return_reason]} {texts['return_channel'][return_channel]}"
        body = {
            "type": "return",
            "channel": return_channel,
            "occurred_at": _random_moment(rng, now, zone, return_channel, return_days_ago[-1]),
            "note": note,
            "currency": currency,
            "items": [{**returned, "quantity": rng.randint(1, returned["quantity"])}],
            "_purchase_ref": bought["_ref"],
        }
        events.append((body["occurred_at"], 1, body))

    def other(kind: str, channel: str, note: str, days_ago: int | None = None, **extra: str) -> None:
        if days_ago is None:
            days_ago = rng.randint(1, HISTORY_DAYS)
        body = {
            "type": kind,
            "channel": channel,
            "occurred_at": _random_moment(rng, now, zone, channel, days_ago),
            "note": note,
            **extra,
        }
        events.append((body["occurred_at"], 1, body))

    # Two complaints and two inquiries each; slots rotate with the customer index,
    # so over the whole set every severity and every channel comes up evenly.
    for offset in (0, 3):
        slot = (customer_index + offset) % len(_COMPLAINT_SLOTS)
        severity, channel = _COMPLAINT_SLOTS[slot]
        complaint = texts["complaint"][slot]
        other("complaint", channel, complaint["note"], severity=severity, subject=complaint["subject"])
    for offset in (0, 3):
        slot = (customer_index + offset) % len(_INQUIRY_CHANNELS)
        other("inquiry", _INQUIRY_CHANNELS[slot], texts["inquiry"][slot])
    for offset in range(rng.randint(1, 2)):
        slot = (customer_index + offset) % len(_FEEDBACK_CHANNELS)
        days_ago = None
        if slot == _FEEDBACK_AFTER_RETURN:
            if not return_days_ago:  # nothing returned: say something else
                slot = (slot + 2) % len(_FEEDBACK_CHANNELS)
            else:  # thanks for the help with the return, within a week of it
                days_ago = max(0, return_days_ago[-1] - rng.randint(1, 7))
        other("feedback", _FEEDBACK_CHANNELS[slot], texts["feedback"][slot], days_ago)
    for offset in range(rng.randint(1, 2)):
        slot = (customer_index + offset) % len(_VISIT_CHANNELS)
        other("visit", _VISIT_CHANNELS[slot], texts["visit"][slot])

    events.sort(key=lambda event: (event[0], event[1]))
    for moment, _, body in events:
        body["occurred_at"] = moment.isoformat(timespec="seconds")
    return [body for _, _, body in events]


# --------------------------------------------------------------------------- seeding


def demo_products() -> list[dict]:
    """Request bodies for `POST /products`: the catalogue the histories buy from, named in every
    demo language, priced in EUR (fresh copies on every call)."""
    return [
        {
            "sku": sku,
            "names": {lang: product.names[lang] for lang in LANGUAGES},
            "price": product.prices["EUR"],
            "currency": "EUR",
            "active": True,
        }
        for sku, product in sorted(_demo().catalogue.items())
    ]


def demo_customers() -> list[dict]:
    """Request bodies for `POST /customers` (fresh copies on every call)."""
    return copy.deepcopy(list(_demo().customers))


def _aware(now: datetime) -> datetime:
    return now if now.tzinfo is not None else now.replace(tzinfo=UTC)


def _post_created(post: Post, path: str, body: dict, id_field: str = "id") -> dict:
    status, response = post(path, body)
    if status != 201:
        raise RuntimeError(f"POST {path} returned {status}, expected 201: {response!r}")
    if not isinstance(response, dict) or not response.get(id_field):
        raise RuntimeError(f"POST {path} returned 201 without an {id_field}: {response!r}")
    return response


def _post_history(post: Post, customer_id: str, bodies: list[dict]) -> int:
    path = f"/customers/{customer_id}/interactions"
    purchase_ids: dict[str, str] = {}
    for body in bodies:
        body = dict(body)
        ref = body.pop("_ref", None)
        purchase_ref = body.pop("_purchase_ref", None)
        if purchase_ref is not None:
            body["purchase_id"] = purchase_ids[purchase_ref]
        created = _post_created(post, path, body)
        if ref is not None:
            purchase_ids[ref] = created["id"]
    return len(bodies)


def seed(post: Post, *, now: datetime | None = None, seed: int = 7, workers: int = 1) -> dict:
    """Create the demo catalogue, customers and their histories through the HTTP API.

    Products are created first, then customers, then each customer's interactions oldest first,
    so that a return can name the id of the purchase it returns; segments, then campaigns, last.
    Any response other than 201 raises `RuntimeError`. Deterministic for a given `seed` and `now`
    (default: the current time, UTC; a naive `now` is taken as UTC). With `workers` > 1,
    customers' histories are posted that many at a time (`post` must then be thread-safe);
    the bodies are the same.
    """
    now = _aware(now if now is not None else datetime.now(UTC))
    rng = random.Random(seed)  # noqa: S311 - demo data, not security
    products = [_post_created(post, "/products", body, "sku") for body in demo_products()]
    customers = demo_customers()
    ids = [_post_created(post, "/customers", body)["id"] for body in customers]
    # The random choices are drawn in one order whatever `workers` is.
    histories = [demo_interactions(index, customer, rng, now) for index, customer in enumerate(customers)]
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        counts = pool.map(_post_history, [post] * len(ids), ids, histories)
        interactions = sum(counts)
    # Last, so that each segment is built by walking the customers, as a new one would be.
    segments = [_post_created(post, "/segments", body) for body in _read("segments.json")]
    segment_ids = {segment["name"]: segment["id"] for segment in segments}
    campaigns = [
        _post_created(post, "/campaigns", {"segment_id": segment_ids[body.pop("segment")], **body})
        for body in _read("campaigns.json")
    ]
    return {
        "products": len(products),
        "customers": len(ids),
        "interactions": interactions,
        "segments": len(segments),
        "campaigns": len(campaigns),
    }
