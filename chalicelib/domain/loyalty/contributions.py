"""What one purchase or return adds to its customer's aggregates, read from the interaction.

`contribution_of` takes an interaction as plain values (str, Decimal, list, dict, None): the
stream adapter reads DynamoDB's wire format (store/attribute_values.py) before this sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

from chalicelib.domain import money
from chalicelib.domain.clock import parse_rfc3339, require_aware, to_rfc3339

KINDS = ("purchase", "return")
# SKUs per part of a purchase: a part's change touches at most twice this many habits (those
# it had and those it has), which with its guard stays within one transaction (100 items).
SKUS_PER_PART = 48
# A SKU names a stored habit (in a sort key of at most 1,024 bytes); the API allows 64 characters.
MAX_SKU_BYTES = 512


class PoisonRecord(ValueError):
    """A purchase or return image that can never be turned into a contribution."""


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
        require_aware(self.occurred_at, "occurred_at")
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
            # Microseconds (responses show milliseconds): to_dict/from_dict round-trip exactly.
            "occurred_at": to_rfc3339(self.occurred_at, timespec="microseconds"),
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
            occurred_at=parse_rfc3339(data["occurred_at"]),
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


def _required(
    attributes: Mapping, name: str, expected: type | tuple[type, ...], described: str, where: str = ""
) -> object:
    """The value of an attribute; PoisonRecord when absent (or null) or not of the type expected."""
    value = attributes.get(name)
    if value is None:
        raise PoisonRecord(f"{where}{name} is missing")
    if isinstance(value, bool) or not isinstance(value, expected):
        raise PoisonRecord(f"{where}{name} is not of type {described}")
    return value


def _required_text(attributes: Mapping, name: str, where: str = "") -> str:
    value = _required(attributes, name, str, "String", where)
    if not value:
        raise PoisonRecord(f"{where}{name} is empty")
    return value


def _line(entry: object, where: str) -> Line:
    if not isinstance(entry, Mapping):
        raise PoisonRecord(f"{where} is not a map")
    sku = _required_text(entry, "sku", f"{where}.")
    if len(sku.encode()) > MAX_SKU_BYTES:
        raise PoisonRecord(f"{where}.sku is longer than {MAX_SKU_BYTES} bytes")
    name = _required_text(entry, "name", f"{where}.")
    quantity = _required(entry, "quantity", Decimal, "Number", f"{where}.")
    if not quantity.is_finite() or quantity != quantity.to_integral_value() or quantity < 1:
        raise PoisonRecord(f"{where}.quantity is not a positive whole number")
    return Line(sku, name, int(quantity))


def contribution_of(interaction: Mapping | None) -> Contribution | None:
    """The contribution of an interaction as stored (plain values: text, Decimal numbers, lists
    and maps; None for a null).

    None for no interaction and for interactions that are neither purchases nor returns.
    Raises `PoisonRecord` when a purchase or return cannot be read, or when the interaction
    has no type at all (e.g. a KEYS_ONLY stream): silently skipping those would lose spend.
    """
    if interaction is None:
        return None
    kind = _required_text(interaction, "type")
    if kind not in KINDS:
        return None
    interaction_id = _required_text(interaction, "id")
    currency = _required_text(interaction, "currency")
    if not money.is_currency(currency):
        raise PoisonRecord(f"currency {currency!r} is not an ISO 4217 code")
    occurred_text = _required_text(interaction, "occurred_at")
    try:
        occurred_at = parse_rfc3339(occurred_text)
    except ValueError as error:
        raise PoisonRecord(f"occurred_at is not an RFC 3339 timestamp: {error}") from None
    # Stored as a string (PynamoDB would read a number back as a float); a number is fine too.
    raw_amount = _required(interaction, "amount", (str, Decimal), "String or Number")
    try:
        amount = money.parse_price(raw_amount, currency, at_most=None)
    except money.MoneyError as error:
        raise PoisonRecord(f"amount {error}") from None
    entries = _required(interaction, "items", list, "List")
    if not entries:
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
