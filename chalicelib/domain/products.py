"""Catalogue products: what a customer can order, at an exact price. No storage."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal

SKU_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")
SKU_MAX_LENGTH = 64
EDITABLE_FIELDS = ("names", "price", "currency", "active")


@dataclass(frozen=True)
class Product:
    """A catalogue entry. `price` is exact, with the currency's minor-unit digits."""

    sku: str
    names: dict[str, str]
    price: Decimal
    currency: str
    created_at: datetime
    updated_at: datetime
    active: bool = True
    version: int = 0

    def with_changes(self, changes: dict, at: datetime) -> Product:
        unknown = set(changes) - set(EDITABLE_FIELDS)
        if unknown:
            raise ValueError(f"not editable: {sorted(unknown)}")
        return replace(self, **changes, updated_at=at)


def is_sku(value: str) -> bool:
    return len(value) <= SKU_MAX_LENGTH and bool(SKU_PATTERN.match(value))
