"""Planning the writes of a batch of interaction changes: which guard each change writes (what
it read, what it becomes), which guards and habits to read first, and how the writes group
into transactions that DynamoDB accepts. Pure: services/loyalty.py reads and writes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from chalicelib.domain.loyalty.aggregates import touched_skus
from chalicelib.domain.loyalty.contributions import Contribution, parts_of
from chalicelib.store.loyalty_items import (
    MAX_BYTES_PER_WRITE,
    MAX_ITEMS_PER_WRITE,
    Guard,
    GuardKey,
    HabitKey,
    Loaded,
    guard_bytes,
    habit_bytes,
)

if TYPE_CHECKING:
    from chalicelib.services.loyalty import InteractionChange

# What a guard was when read (None: no guard yet), and what it becomes.
GuardWrite = tuple[Guard | None, Guard]


def latest_per_interaction(changes: list[InteractionChange]) -> dict[str, InteractionChange]:
    latest: dict[str, InteractionChange] = {}
    for change in changes:
        seen = latest.get(change.interaction_id)
        if seen is None or (change.version, change.removed) >= (seen.version, seen.removed):
            latest[change.interaction_id] = change
    return latest


def keys_to_read(changes: Iterable[InteractionChange]) -> tuple[list[GuardKey], list[HabitKey]]:
    """The guards and habits a batch needs, as far as its records tell: the guard of each part
    and the habit of each SKU of what the records carry."""
    guards: list[GuardKey] = []
    habits: list[HabitKey] = []
    for change in changes:
        assert change.contribution is not None
        parts = len(parts_of(change.contribution))
        guards += [(change.customer_id, change.interaction_id, part) for part in range(parts)]
        habits += [(change.customer_id, sku) for sku in sorted(change.contribution.skus)]
    return guards, habits


def touched(read: Guard | None, new: Guard) -> set[str]:
    return touched_skus(
        [new.contribution] if new.contribution else [],
        [read.contribution] if read and read.contribution else [],
    )


def guard_write(
    change: InteractionChange,
    part: int,
    count: int,
    new_parts: tuple[Contribution, ...],
    read: Guard | None,
) -> GuardWrite | None:
    if read is not None and (read.removed or (not change.removed and read.applied_version >= change.version)):
        return None
    contribution = None if change.removed or part >= len(new_parts) else new_parts[part]
    if read is None and contribution is None and not change.removed:
        return None  # a part this version does not have, and no earlier one applied
    new = Guard(
        change.interaction_id,
        change.version,
        contribution,
        change.removed,
        part=part,
        parts=count if part == 0 else 1,
    )
    unchanged = read is not None and read.contribution == new.contribution and not new.removed
    if unchanged and (part or (read.stored and read.parts >= count)):
        return None
    return read, new


def transactions(customer_id: str, writes: list[GuardWrite], loaded: Loaded) -> list[list[GuardWrite]]:
    """The guard writes in groups that fit one transaction each, with their habits: at most
    MAX_ITEMS_PER_WRITE guards and habits and MAX_BYTES_PER_WRITE bytes."""
    chunks: list[list[GuardWrite]] = [[]]
    skus: set[str] = set()
    items = size = 0

    def cost(read: Guard | None, new: Guard) -> tuple[set[str], int, int]:
        fresh = touched(read, new) - skus
        habits = sum(_habit_bytes(customer_id, sku, read, new, loaded) for sku in fresh)
        return fresh, 1 + len(fresh), guard_bytes(customer_id, new) + habits

    for read, new in writes:
        fresh, more_items, more_bytes = cost(read, new)
        full = items + more_items > MAX_ITEMS_PER_WRITE or size + more_bytes > MAX_BYTES_PER_WRITE
        if chunks[-1] and full:
            chunks.append([])
            skus, items, size = set(), 0, 0
            fresh, more_items, more_bytes = cost(read, new)
        chunks[-1].append((read, new))
        skus |= fresh
        items += more_items
        size += more_bytes
    return [chunk for chunk in chunks if chunk]


def _habit_bytes(customer_id: str, sku: str, read: Guard | None, new: Guard, loaded: Loaded) -> int:
    # The habit is named after one of these: the stored one or a line of a purchase.
    stored = loaded.habits.get((customer_id, sku))
    names = [stored.habit.name] if stored else []
    for guard in (read, new):
        if guard is not None and guard.contribution is not None:
            names += [line.name for line in guard.contribution.lines if line.sku == sku]
    return habit_bytes(customer_id, sku, max(names, key=lambda n: len(n.encode()), default=""))
