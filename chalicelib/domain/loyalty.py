"""Loyalty: per-customer aggregates of purchases and returns, and an RFM score on them.

A DynamoDB stream consumer keeps, per interaction, the `Contribution` it has applied, and
applies `contribution(new) - applied` on INSERT/MODIFY and `-applied` on REMOVE. The
aggregates therefore have to be a group under `apply`: sums are exact, and min/max
boundaries are repaired from the still-applied purchases when the one holding them leaves.
A purchase of many SKUs is applied in parts (`parts_of`), each guarded on its own, so that no
write has to update more SKU habits than one transaction holds. `apply` works on the habits
of the SKUs it touches only, so the caller can store each habit apart.
This module is pure; the consumer owns storage and the guard.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from itertools import pairwise

from chalicelib.domain import money

KINDS = ("purchase", "return")
TIERS = ("bronze", "silver", "gold", "platinum")
_DAY = timedelta(days=1)
# SKUs per part of a purchase: a part's change touches at most twice this many habits (those
# it had and those it has), which with its guard stays within one transaction (100 items).
SKUS_PER_PART = 48
# A SKU names a stored habit (in a sort key of at most 1,024 bytes); the API allows 64 characters.
MAX_SKU_BYTES = 512


class PoisonRecord(ValueError):
    """A purchase or return image that can never be turned into a contribution."""


class RemainingMismatch(ValueError):
    """`remaining_purchases()` does not account for what the aggregates count: the two were
    read at different moments (another write came between, or the customer's loyalty items
    are being purged)."""


def _iso(moment: datetime) -> str:
    # Microseconds kept (unlike clock.to_rfc3339) so that to_dict/from_dict round-trip exactly.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return moment.astimezone(UTC)


def _require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")


# -- contributions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    sku: str
    name: str
    quantity: int


@dataclass(frozen=True)
class Contribution:
    """What one interaction (or one part of it, see `parts_of`) adds to its customer's aggregates.

    `amount` is the purchase's amount or the refunded amount of a return (never negative).
    Returns carry no lines: they reduce spend but never the buying habit. Part 0 is the
    interaction itself (count, spend, time and its first SKUs); a later part of a purchase
    carries only more of its lines, with amount 0.
    """

    interaction_id: str
    kind: str
    occurred_at: datetime
    currency: str
    amount: Decimal
    lines: tuple[Line, ...] = ()
    part: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, not {self.kind!r}")
        _require_aware(self.occurred_at, "occurred_at")
        if not isinstance(self.amount, Decimal) or not self.amount.is_finite() or self.amount < 0:
            raise ValueError("amount must be a finite, non-negative Decimal")
        if self.kind == "return" and self.lines:
            raise ValueError("a return contributes no lines")
        if self.part < 0 or (self.part and (self.kind != "purchase" or self.amount or not self.lines)):
            raise ValueError("a later part is a purchase's lines only, with amount 0")

    @property
    def key(self) -> tuple[str, int]:
        return (self.interaction_id, self.part)

    @property
    def counted(self) -> bool:
        """Whether this is the purchase itself (part 0), which counts, spends and has a time."""
        return self.kind == "purchase" and self.part == 0

    @property
    def skus(self) -> set[str]:
        return {line.sku for line in self.lines}

    def to_dict(self) -> dict:
        data = {
            "interaction_id": self.interaction_id,
            "kind": self.kind,
            "occurred_at": _iso(self.occurred_at),
            "currency": self.currency,
            "amount": str(self.amount),
            "lines": [{"sku": li.sku, "name": li.name, "quantity": li.quantity} for li in self.lines],
        }
        return data | {"part": self.part} if self.part else data

    @classmethod
    def from_dict(cls, data: Mapping) -> Contribution:
        return cls(
            interaction_id=data["interaction_id"],
            kind=data["kind"],
            occurred_at=_parse_iso(data["occurred_at"]),
            currency=data["currency"],
            amount=Decimal(data["amount"]),
            lines=tuple(Line(li["sku"], li["name"], int(li["quantity"])) for li in data["lines"]),
            part=int(data.get("part", 0)),
        )


def parts_of(contribution: Contribution) -> tuple[Contribution, ...]:
    """The parts a contribution is applied in: itself when it has at most SKUS_PER_PART SKUs;
    otherwise its SKUs in order, SKUS_PER_PART to a part (every line of a SKU in one part),
    part 0 keeping the amount. Deterministic, so every delivery of a record splits alike."""
    skus = sorted(contribution.skus)
    if contribution.part or len(skus) <= SKUS_PER_PART:
        return (contribution,)
    parts = []
    for part, start in enumerate(range(0, len(skus), SKUS_PER_PART)):
        chunk = set(skus[start : start + SKUS_PER_PART])
        parts.append(
            replace(
                contribution,
                lines=tuple(line for line in contribution.lines if line.sku in chunk),
                amount=contribution.amount if part == 0 else Decimal(0),
                part=part,
            )
        )
    return tuple(parts)


def _attribute(container: Mapping, name: str, type_: str, where: str = "") -> object | None:
    """The value of a low-level AttributeValue, None when absent or NULL."""
    value = container.get(name)
    if value is None or not isinstance(value, Mapping) or value.get("NULL"):
        return None
    if type_ not in value:
        raise PoisonRecord(f"{where}{name} is not of type {type_}")
    return value[type_]


def _required(container: Mapping, name: str, type_: str, where: str = "") -> object:
    value = _attribute(container, name, type_, where)
    if value is None:
        raise PoisonRecord(f"{where}{name} is missing")
    return value


def _required_text(container: Mapping, name: str, where: str = "") -> str:
    value = _required(container, name, "S", where)
    if not isinstance(value, str) or not value:
        raise PoisonRecord(f"{where}{name} is empty")
    return value


def _line(entry: object, where: str) -> Line:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("M"), Mapping):
        raise PoisonRecord(f"{where} is not a map")
    attributes = entry["M"]
    sku = _required_text(attributes, "sku", f"{where}.")
    if len(sku.encode()) > MAX_SKU_BYTES:
        raise PoisonRecord(f"{where}.sku is longer than {MAX_SKU_BYTES} bytes")
    name = _required_text(attributes, "name", f"{where}.")
    raw_quantity = _required(attributes, "quantity", "N", f"{where}.")
    try:
        quantity = Decimal(str(raw_quantity))
    except ArithmeticError:
        quantity = Decimal(0)
    if not quantity.is_finite() or quantity != quantity.to_integral_value() or quantity < 1:
        raise PoisonRecord(f"{where}.quantity is not a positive whole number")
    return Line(sku, name, int(quantity))


def contribution_of(image: Mapping | None) -> Contribution | None:
    """The contribution of a stream image (low-level AttributeValue form) of an interaction.

    None for no image and for interactions that are neither purchases nor returns. Raises
    `PoisonRecord` when a purchase or return cannot be read, or when the image has no type at
    all (e.g. a KEYS_ONLY stream): silently skipping those would lose spend.
    """
    if image is None:
        return None
    kind = _required_text(image, "type")
    if kind not in KINDS:
        return None
    interaction_id = _required_text(image, "id")
    currency = _required_text(image, "currency")
    if not money.is_currency(currency):
        raise PoisonRecord(f"currency {currency!r} is not an ISO 4217 code")
    occurred_text = _required_text(image, "occurred_at")
    try:
        occurred_at = _parse_iso(occurred_text)
    except ValueError as error:
        raise PoisonRecord(f"occurred_at is not an RFC 3339 timestamp: {error}") from None
    # Stored as a string (PynamoDB would read a number back as a float); a number is fine too.
    raw_amount = image.get("amount")
    amount_type = "N" if isinstance(raw_amount, Mapping) and "N" in raw_amount else "S"
    try:
        amount = money.parse_price(_required(image, "amount", amount_type), currency, at_most=None)
    except money.MoneyError as error:
        raise PoisonRecord(f"amount {error}") from None
    entries = _required(image, "items", "L")
    if not isinstance(entries, list) or not entries:
        raise PoisonRecord("items is empty")
    lines = tuple(_line(entry, f"items.{i}") for i, entry in enumerate(entries))
    return Contribution(
        interaction_id=interaction_id,
        kind=kind,
        occurred_at=occurred_at,
        currency=currency,
        amount=amount,
        lines=lines if kind == "purchase" else (),
    )


# -- aggregates ------------------------------------------------------------------------


@dataclass(frozen=True)
class SkuHabit:
    sku: str
    name: str
    times_bought: int
    quantity: int
    first_purchase_at: datetime
    last_purchase_at: datetime
    # The purchase `name` comes from: with `last_purchase_at`, the key that orders "most recent".
    last_purchase_id: str

    @property
    def mean_interval_days(self) -> float | None:
        if self.times_bought < 2:
            return None
        return (self.last_purchase_at - self.first_purchase_at) / _DAY / (self.times_bought - 1)

    @property
    def next_expected_at(self) -> datetime | None:
        if self.times_bought < 2:
            return None
        return self.last_purchase_at + (self.last_purchase_at - self.first_purchase_at) / (
            self.times_bought - 1
        )

    @property
    def order(self) -> tuple[bool, datetime, str]:
        """How habits are listed: by next expected purchase, then those bought once by their
        purchase time; ties by SKU."""
        return (self.next_expected_at is None, self.next_expected_at or self.last_purchase_at, self.sku)

    def to_dict(self) -> dict:
        return {
            "sku": self.sku,
            "name": self.name,
            "times_bought": self.times_bought,
            "quantity": self.quantity,
            "first_purchase_at": _iso(self.first_purchase_at),
            "last_purchase_at": _iso(self.last_purchase_at),
            "last_purchase_id": self.last_purchase_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> SkuHabit:
        return cls(
            sku=data["sku"],
            name=data["name"],
            times_bought=int(data["times_bought"]),
            quantity=int(data["quantity"]),
            first_purchase_at=_parse_iso(data["first_purchase_at"]),
            last_purchase_at=_parse_iso(data["last_purchase_at"]),
            last_purchase_id=data["last_purchase_id"],
        )


@dataclass(frozen=True)
class Aggregates:
    purchase_count: int = 0
    return_count: int = 0
    # Currency -> purchases minus returns; zero entries are dropped.
    net_spend: Mapping[str, Decimal] = field(default_factory=dict)
    first_purchase_at: datetime | None = None
    last_purchase_at: datetime | None = None
    # SKU -> habit: every habit (from_scratch), or only some of them (see `apply`).
    skus: Mapping[str, SkuHabit] = field(default_factory=dict)
    # How many SKUs have a habit, whether or not `skus` holds them all.
    sku_count: int = 0

    def to_dict(self) -> dict:
        return {
            "purchase_count": self.purchase_count,
            "return_count": self.return_count,
            "net_spend": {currency: str(amount) for currency, amount in sorted(self.net_spend.items())},
            "first_purchase_at": _iso(self.first_purchase_at) if self.first_purchase_at else None,
            "last_purchase_at": _iso(self.last_purchase_at) if self.last_purchase_at else None,
            "skus": {sku: habit.to_dict() for sku, habit in sorted(self.skus.items())},
            "sku_count": self.sku_count,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Aggregates:
        first, last = data.get("first_purchase_at"), data.get("last_purchase_at")
        skus = {sku: SkuHabit.from_dict(habit) for sku, habit in data.get("skus", {}).items()}
        return cls(
            purchase_count=int(data["purchase_count"]),
            return_count=int(data["return_count"]),
            net_spend={currency: Decimal(amount) for currency, amount in data["net_spend"].items()},
            first_purchase_at=_parse_iso(first) if first else None,
            last_purchase_at=_parse_iso(last) if last else None,
            skus=skus,
            # Written before habits had items of their own: every habit was in `skus`.
            sku_count=int(data.get("sku_count", len(skus))),
        )


@dataclass(frozen=True)
class _Bought:
    """One purchase's view of one SKU: duplicate lines of a SKU count as one purchase."""

    name: str
    quantity: int
    at: datetime
    interaction_id: str

    @property
    def key(self) -> tuple[datetime, str]:
        return (self.at, self.interaction_id)


def _bought(purchase: Contribution) -> dict[str, _Bought]:
    per_sku: dict[str, _Bought] = {}
    for line in purchase.lines:
        earlier = per_sku.get(line.sku)
        quantity = line.quantity + (earlier.quantity if earlier else 0)
        per_sku[line.sku] = _Bought(line.name, quantity, purchase.occurred_at, purchase.interaction_id)
    return per_sku


def _signed_amount(contribution: Contribution) -> Decimal:
    # copy_negate is exact; unary minus would round to the context's 28 digits.
    amount = contribution.amount
    return amount if contribution.kind == "purchase" else amount.copy_negate()


def from_scratch(contributions: Iterable[Contribution]) -> Aggregates:
    """The aggregates of a set of contributions, computed directly: the reference for `apply`.

    Contributions may be whole or in parts (`parts_of`); those sharing an interaction id and
    part are deduplicated, the last one winning.
    """
    latest = {c.key: c for c in contributions}
    purchases = [c for c in latest.values() if c.counted]
    returns = [c for c in latest.values() if c.kind == "return"]
    spend: dict[str, list[Decimal]] = {}
    for c in purchases + returns:
        spend.setdefault(c.currency, []).append(_signed_amount(c))
    net = {currency: money.sum_amounts(amounts) for currency, amounts in spend.items()}
    per_sku: dict[str, list[_Bought]] = {}
    for purchase in (c for c in latest.values() if c.kind == "purchase"):
        for sku, bought in _bought(purchase).items():
            per_sku.setdefault(sku, []).append(bought)
    return Aggregates(
        purchase_count=len(purchases),
        return_count=len(returns),
        net_spend={currency: amount for currency, amount in net.items() if amount != 0},
        first_purchase_at=min((p.occurred_at for p in purchases), default=None),
        last_purchase_at=max((p.occurred_at for p in purchases), default=None),
        skus={sku: _habit_of(sku, boughts) for sku, boughts in per_sku.items()},
        sku_count=len(per_sku),
    )


def _habit_of(sku: str, boughts: list[_Bought]) -> SkuHabit:
    newest = max(boughts, key=lambda b: b.key)
    return SkuHabit(
        sku=sku,
        name=newest.name,
        times_bought=len(boughts),
        quantity=sum(b.quantity for b in boughts),
        first_purchase_at=min(b.at for b in boughts),
        last_purchase_at=newest.at,
        last_purchase_id=newest.interaction_id,
    )


def touched_skus(added: Iterable[Contribution], removed: Iterable[Contribution]) -> set[str]:
    """The SKUs whose habits applying `added` and `removed` may change."""
    return {sku for c in (*added, *removed) for sku in c.skus}


def apply(
    aggregates: Aggregates,
    added: Iterable[Contribution],
    removed: Iterable[Contribution],
    remaining_purchases: Callable[[], Iterable[Contribution]] | None = None,
) -> Aggregates:
    """`aggregates` plus `added` minus `removed` (which must be applied ones).

    `aggregates.skus` must hold the habit of every SKU in `touched_skus(added, removed)` that
    has one; habits of other SKUs may be left out (they are carried over unchanged), so a
    caller can keep each habit apart and load only those a change touches. `sku_count` counts
    every habit.

    Counts, spend and quantities are exact sums. First/last purchase times are min/max, which
    removal cannot undo: when a removed purchase held a boundary that neither an added purchase
    nor the absence of other purchases settles, `remaining_purchases()` is called, once, for
    every purchase contribution (or part) still applied for the customer *after* this change;
    `RemainingMismatch` when those do not hold a purchase the aggregates still count.
    Identical contributions in `added` and `removed` cancel out first, so re-applying an
    unchanged interaction is a no-op that never needs it.
    """
    add_counts, remove_counts = Counter(added), Counter(removed)
    added_list = list((add_counts - remove_counts).elements())
    removed_list = list((remove_counts - add_counts).elements())
    if not added_list and not removed_list:
        return aggregates

    added_purchases = [c for c in added_list if c.counted]
    removed_purchases = [c for c in removed_list if c.counted]
    existing_purchases_left = aggregates.purchase_count - len(removed_purchases)
    purchase_count = existing_purchases_left + len(added_purchases)
    return_count = aggregates.return_count + sum(1 for c in added_list if c.kind == "return")
    return_count -= sum(1 for c in removed_list if c.kind == "return")

    net_spend = dict(aggregates.net_spend)
    deltas = [(c.currency, _signed_amount(c)) for c in added_list if c.part == 0]
    deltas += [(c.currency, _signed_amount(c).copy_negate()) for c in removed_list if c.part == 0]
    for currency, delta in deltas:
        net_spend[currency] = money.sum_amounts([net_spend.get(currency, Decimal(0)), delta])
    net_spend = {currency: amount for currency, amount in net_spend.items() if amount != 0}

    stale_customer = False
    added_times = [c.occurred_at for c in added_purchases]
    removed_times = {c.occurred_at for c in removed_purchases}
    first, last = aggregates.first_purchase_at, aggregates.last_purchase_at
    if purchase_count == 0:
        first = last = None
    elif existing_purchases_left == 0:
        first, last = min(added_times), max(added_times)
    else:
        # Other purchases may share a removed boundary's time: only an added purchase beyond it
        # settles the boundary without asking for the remaining purchases.
        if first in removed_times:
            first = min(added_times) if added_times and min(added_times) <= first else None
            stale_customer |= first is None
        if last in removed_times:
            last = max(added_times) if added_times and max(added_times) >= last else None
            stale_customer |= last is None
        if added_times:
            first = None if first is None else min(first, *added_times)
            last = None if last is None else max(last, *added_times)

    added_boughts: dict[str, list[_Bought]] = {}
    for c in added_list:
        for sku, bought in _bought(c).items():
            added_boughts.setdefault(sku, []).append(bought)
    removed_boughts: dict[str, list[_Bought]] = {}
    for c in removed_list:
        for sku, bought in _bought(c).items():
            removed_boughts.setdefault(sku, []).append(bought)

    skus = dict(aggregates.skus)
    sku_count = aggregates.sku_count
    stale_skus: dict[str, SkuHabit] = {}  # right counts, boundaries still to be recomputed
    for sku in added_boughts.keys() | removed_boughts.keys():
        had = skus.pop(sku, None)
        habit, stale = _next_habit(sku, had, added_boughts.get(sku, []), removed_boughts.get(sku, []))
        sku_count += (habit is not None) - (had is not None)
        if stale:
            stale_skus[sku] = habit
        elif habit is not None:
            skus[sku] = habit

    if stale_customer or stale_skus:
        if remaining_purchases is None:
            raise ValueError("a removed purchase held a first/last boundary: remaining_purchases is needed")
        remaining = from_scratch(c for c in remaining_purchases() if c.kind == "purchase")
        if stale_customer:
            if remaining.first_purchase_at is None:
                raise RemainingMismatch("remaining_purchases() returned no purchase, yet some remain")
            first, last = remaining.first_purchase_at, remaining.last_purchase_at
        for sku, habit in stale_skus.items():
            recomputed = remaining.skus.get(sku)
            if recomputed is None:
                raise RemainingMismatch(
                    f"remaining_purchases() returned no purchase of SKU {sku!r}, yet it has some"
                )
            skus[sku] = _with_counts(recomputed, habit.times_bought, habit.quantity)

    return Aggregates(
        purchase_count=purchase_count,
        return_count=return_count,
        net_spend=net_spend,
        first_purchase_at=first,
        last_purchase_at=last,
        skus=skus,
        sku_count=sku_count,
    )


def _next_habit(
    sku: str, habit: SkuHabit | None, plus: list[_Bought], minus: list[_Bought]
) -> tuple[SkuHabit | None, bool]:
    """The habit after adding `plus` and removing `minus`, and whether its boundaries are stale
    (a removed purchase held one, and the added ones do not settle it)."""
    existing_left = (habit.times_bought if habit else 0) - len(minus)
    times = existing_left + len(plus)
    if times <= 0:
        return None, False
    quantity = (
        (habit.quantity if habit else 0) + sum(b.quantity for b in plus) - sum(b.quantity for b in minus)
    )
    if habit is None or existing_left == 0:
        return _with_counts(_habit_of(sku, plus), times, quantity), False
    first_at: datetime | None = habit.first_purchase_at
    newest: tuple[datetime, str] | None = (habit.last_purchase_at, habit.last_purchase_id)
    name = habit.name
    plus_first = min((b.at for b in plus), default=None)
    plus_newest = max(plus, key=lambda b: b.key, default=None)
    if any(b.at == first_at for b in minus):
        first_at = plus_first if plus_first is not None and plus_first <= first_at else None
    elif plus_first is not None:
        first_at = min(first_at, plus_first)
    if any(b.key == newest for b in minus):
        covered = plus_newest is not None and plus_newest.key >= newest
        newest = plus_newest.key if covered else None
        name = plus_newest.name if covered else name
    elif plus_newest is not None and plus_newest.key > newest:
        newest, name = plus_newest.key, plus_newest.name
    if first_at is None or newest is None:
        return _with_counts(habit, times, quantity), True
    return SkuHabit(sku, name, times, quantity, first_at, newest[0], newest[1]), False


def _with_counts(habit: SkuHabit, times_bought: int, quantity: int) -> SkuHabit:
    return replace(habit, times_bought=times_bought, quantity=quantity)


# -- scoring ---------------------------------------------------------------------------


def _ascending(values: tuple, what: str) -> None:
    if len(values) != 4:
        raise ValueError(f"{what} needs exactly 4 thresholds, got {len(values)}")
    if any(v < 0 for v in values):
        raise ValueError(f"{what} thresholds must not be negative")
    if any(a >= b for a, b in pairwise(values)):
        raise ValueError(f"{what} thresholds must be strictly ascending")


@dataclass(frozen=True)
class LoyaltyConfig:
    """RFM bands and tier thresholds.

    recency_days: days since the last purchase at most these → scores 5, 4, 3, 2 (else 1).
    frequency: purchase counts at least these → scores 2, 3, 4, 5 (else 1).
    monetary: net spend in the base currency at least these → scores 2, 3, 4, 5 (else 1).
    tiers: (name, minimum score), kept highest threshold first.
    """

    recency_days: tuple[int, int, int, int] = (30, 90, 180, 365)
    frequency: tuple[int, int, int, int] = (2, 4, 8, 16)
    monetary: tuple[Decimal, Decimal, Decimal, Decimal] = (
        Decimal(100),
        Decimal(500),
        Decimal(1000),
        Decimal(5000),
    )
    tiers: tuple[tuple[str, int], ...] = (("platinum", 80), ("gold", 60), ("silver", 40), ("bronze", 0))

    def __post_init__(self) -> None:
        _ascending(tuple(self.recency_days), "recency_days")
        _ascending(tuple(self.frequency), "frequency")
        _ascending(tuple(self.monetary), "monetary")
        names = [name for name, _ in self.tiers]
        unknown = [name for name in names if name not in TIERS]
        if unknown:
            raise ValueError(f"unknown tier {unknown[0]!r}: tiers are {', '.join(TIERS)}")
        if len(set(names)) != len(names):
            raise ValueError("a tier is listed twice")
        thresholds = dict(self.tiers)
        if thresholds.get("bronze") != 0:
            raise ValueError("tier bronze must be present with threshold 0")
        ranked = [thresholds[name] for name in TIERS if name in thresholds]
        if any(not 0 <= t <= 100 for t in ranked):
            raise ValueError("tier thresholds must be between 0 and 100")
        if any(a >= b for a, b in pairwise(ranked)):
            raise ValueError("tier thresholds must strictly increase from bronze to platinum")
        ordered = tuple(sorted(self.tiers, key=lambda tier: tier[1], reverse=True))
        object.__setattr__(self, "tiers", ordered)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> LoyaltyConfig:
        """The defaults, overridden by CRM_LOYALTY_RECENCY_DAYS, _FREQUENCY, _MONETARY ("a,b,c,d")
        and CRM_LOYALTY_TIERS ("platinum:80,gold:60,silver:40,bronze:0")."""
        overrides: dict[str, object] = {}
        for name, attribute, parse in (
            ("CRM_LOYALTY_RECENCY_DAYS", "recency_days", _parse_int),
            ("CRM_LOYALTY_FREQUENCY", "frequency", _parse_int),
            ("CRM_LOYALTY_MONETARY", "monetary", _parse_decimal),
        ):
            text = env.get(name, "").strip()
            if text:
                try:
                    overrides[attribute] = tuple(parse(part) for part in text.split(","))
                    _ascending(overrides[attribute], attribute)
                except ValueError as error:
                    raise ValueError(f"{name}={text!r}: {error}") from None
        text = env.get("CRM_LOYALTY_TIERS", "").strip()
        if text:
            try:
                overrides["tiers"] = tuple(_parse_tier(part) for part in text.split(","))
                cls(tiers=overrides["tiers"])
            except ValueError as error:
                raise ValueError(f"CRM_LOYALTY_TIERS={text!r}: {error}") from None
        return cls(**overrides)


def _parse_int(text: str) -> int:
    text = text.strip()
    if not text.isascii() or not text.isdigit():
        raise ValueError(f"{text!r} is not a whole number")
    return int(text)


def _parse_decimal(text: str) -> Decimal:
    try:
        return money.to_decimal(text.strip())
    except money.MoneyError:
        raise ValueError(f"{text.strip()!r} is not a decimal number") from None


def _parse_tier(text: str) -> tuple[str, int]:
    name, colon, threshold = text.partition(":")
    if not colon:
        raise ValueError(f"{text.strip()!r} is not name:threshold")
    return name.strip(), _parse_int(threshold)


@dataclass(frozen=True)
class Score:
    recency_days: int | None
    recency_score: int
    frequency_score: int
    monetary_score: int
    score: int
    tier: str


def _band_at_most(value: int, thresholds: tuple) -> int:
    for points, threshold in zip((5, 4, 3, 2), thresholds, strict=True):
        if value <= threshold:
            return points
    return 1


def _band_at_least(value: int | Decimal, thresholds: tuple) -> int:
    for points, threshold in zip((5, 4, 3, 2), reversed(thresholds), strict=True):
        if value >= threshold:
            return points
    return 1


def score(aggregates: Aggregates, now: datetime, config: LoyaltyConfig, base_currency: str) -> Score:
    """RFM score of a customer at `now`: 0 (1/1/1) to 100 (5/5/5), and its tier.

    Monetary counts net spend in `base_currency` only: without exchange rates, spend in other
    currencies is not scored. A purchase a little in the future counts as 0 days ago.
    """
    _require_aware(now, "now")
    days: int | None = None
    recency = 1
    if aggregates.last_purchase_at is not None:
        days = max(0, (now - aggregates.last_purchase_at) // _DAY)
        recency = _band_at_most(days, config.recency_days)
    frequency = _band_at_least(aggregates.purchase_count, config.frequency)
    monetary = _band_at_least(aggregates.net_spend.get(base_currency, Decimal(0)), config.monetary)
    points = Decimal((recency + frequency + monetary - 3) * 100) / 12
    value = int(points.quantize(Decimal(1), rounding=ROUND_HALF_UP))
    tier = next(name for name, threshold in config.tiers if value >= threshold)
    return Score(days, recency, frequency, monetary, value, tier)


def tier_changes_at(
    aggregates: Aggregates, now: datetime, config: LoyaltyConfig, base_currency: str
) -> datetime | None:
    """The earliest moment after `now` at which the tier differs from the tier at `now`,
    assuming no new interactions; None if it never changes.

    Only recency moves with time, and it steps down when the floored day count exceeds a
    threshold, i.e. at last purchase + (threshold + 1) days.
    """
    last = aggregates.last_purchase_at
    if last is None:
        return None
    tier = score(aggregates, now, config, base_currency).tier
    for threshold in config.recency_days:
        moment = last + (threshold + 1) * _DAY
        if moment > now and score(aggregates, moment, config, base_currency).tier != tier:
            return moment
    return None
