"""Product catalogue use cases: staff create and change products; everyone reads them, and
orders look their lines up with `get_many`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from chalicelib.domain import audit, money
from chalicelib.domain.audit import Actor
from chalicelib.domain.clock import Clock
from chalicelib.domain.products import EDITABLE_FIELDS, Product
from chalicelib.domain.storage import AlreadyExists
from chalicelib.errors import Conflict, FieldError, NotFound, ValidationFailed
from chalicelib.services.ports import Products
from chalicelib.services.versions import update_at_version
from chalicelib.store.pagination import CursorCodec, Page, page_of


def _audited(product: Product) -> dict:
    # The price as it is shown ("12.90"), so the trail reads like the API.
    return {
        "names": dict(product.names),
        "price": money.format_money(product.price, product.currency),
        "currency": product.currency,
        "active": product.active,
    }


def _priced(product: Product, changed: set[str]) -> Product:
    """The product with its price in the currency's minor units; a price that does not fit
    (a new currency with fewer digits) names the field the caller changed."""
    # The upper bound applies to a price being set; one stored before the bound existed may stay.
    at_most = money.MAX_PRICE if "price" in changed else None
    try:
        return replace(product, price=money.parse_price(product.price, product.currency, at_most=at_most))
    except money.MoneyError as error:
        field = "price" if "price" in changed or "currency" not in changed else "currency"
        message = str(error) if field == "price" else f"does not fit the price {product.price:f}: {error}"
        raise ValidationFailed([FieldError(field, message)]) from None


class ProductService:
    def __init__(self, products: Products, cursors: CursorCodec, clock: Clock) -> None:
        self._products = products
        self._cursors = cursors
        self._clock = clock

    def create(self, fields: dict, actor: Actor) -> Product:
        """Add a product (`sku`, `names`, `price`, `currency`, `active`); 409 if the sku exists.
        The audit entry is written in the same transaction."""
        now = self._clock.now()
        product = _priced(Product(created_at=now, updated_at=now, **fields), set(fields))
        record = audit.entry(
            "product", product.sku, "create", actor, now, audit.diff(None, _audited(product), EDITABLE_FIELDS)
        )
        try:
            return self._products.add(product, record)
        except AlreadyExists:
            raise Conflict(
                f"A product with the sku {product.sku!r} already exists.",
                errors=[FieldError("sku", "is already used by another product")],
            ) from None

    def get(self, sku: str, *, active_only: bool = False, consistent: bool = False) -> Product:
        """One product; NotFound if there is none (or, with `active_only`, it is inactive)."""
        product = self._products.get(sku, consistent=consistent)
        if product is None or (active_only and not product.active):
            raise NotFound(f"No product has the sku {sku!r}.")
        return product

    def get_many(self, skus: Iterable[str]) -> dict[str, Product]:
        """The products of these skus, by sku, in one batched read. Unknown skus are absent;
        inactive products are included (check `product.active`), so a caller can tell
        "no longer sold" from "no such product"."""
        return self._products.get_many(skus)

    def update(self, sku: str, changes: dict, if_match: int | None, actor: Actor) -> Product:
        """Apply a partial update of names, price, currency and active. With `if_match`, only to
        that version (else 412); without, a concurrent change is re-read and the update applied
        on top of it. A change that changes nothing writes nothing."""

        def write(before: Product) -> Product:
            now = self._clock.now()
            after = _priced(before.with_changes(changes, now), set(changes))
            changed = audit.diff(_audited(before), _audited(after), EDITABLE_FIELDS)
            if not changed:
                return before
            return self._products.update(
                before, after, audit.entry("product", sku, "update", actor, now, changed)
            )

        return update_at_version("product", lambda: self.get(sku, consistent=True), write, if_match)

    def list(self, limit: int, cursor: str | None, active: bool | None = None) -> Page[Product]:
        """The catalogue sorted by sku; `active` keeps only active (True) or inactive (False)
        products."""
        scope = "products" if active is None else f"products?active={str(active).lower()}"
        return page_of(self._cursors, scope, cursor, lambda start: self._products.list(limit, start, active))
