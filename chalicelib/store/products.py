"""The product catalogue, stored in the customers table.

One item per product, all in one partition:

    pk          sk      item
    CATALOGUE   <sku>   the product (names, price as a decimal string, currency, active, version)
    PRODUCT#<sku>  AUDIT#<entry>  its audit trail (chalicelib/store/audit.py)

A read by sku is a GetItem (CATALOGUE, sku), a list is a Query on pk CATALOGUE, which DynamoDB
returns sorted by sku; "active only" is a FilterExpression over that partition, so a page of
active products may read a few inactive ones too. A single partition holds the whole catalogue:
about 1,000 writes and 3,000 reads per second, plenty for a catalogue that staff edit by hand.
No GSI key attribute (list_pk, tier, review_pk, ...) is ever set on a product, so products stay
out of the customers' indexes.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from pynamodb.attributes import BooleanAttribute, MapAttribute, UnicodeAttribute, VersionAttribute
from pynamodb.exceptions import DoesNotExist, TransactWriteError
from pynamodb.models import Model

from chalicelib.config import get_settings
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.products import Product, is_sku
from chalicelib.domain.storage import AlreadyExists
from chalicelib.store.audit import audit_item
from chalicelib.store.pagination import Key, keys_of, query_page
from chalicelib.store.transactions import failed_conditions, transaction, versioned_transaction

_settings = get_settings()

CATALOGUE_PK = "CATALOGUE"


class ProductModel(Model):
    class Meta:
        region = _settings.region
        table_name = _settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)  # the sku
    names = MapAttribute(default=dict)  # BCP 47 locale -> name
    # Money is stored as a decimal string: PynamoDB reads numbers back as floats.
    price = UnicodeAttribute()
    currency = UnicodeAttribute()
    active = BooleanAttribute()
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    version = VersionAttribute()


def _to_domain(item: ProductModel) -> Product:
    return Product(
        sku=item.sk,
        names=dict(item.names.as_dict() if item.names else {}),
        price=Decimal(item.price),
        currency=item.currency,
        active=bool(item.active),
        created_at=parse_rfc3339(item.created_at),
        updated_at=parse_rfc3339(item.updated_at),
        version=int(item.version or 0),
    )


def _to_model(product: Product) -> ProductModel:
    item = ProductModel(
        pk=CATALOGUE_PK,
        sk=product.sku,
        price=f"{product.price:f}",
        currency=product.currency,
        active=product.active,
        created_at=to_rfc3339(product.created_at),
        updated_at=to_rfc3339(product.updated_at),
    )
    item.names = dict(product.names)
    if product.version:
        item.version = product.version
    return item


class ProductRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    def get(self, sku: str, consistent: bool = False) -> Product | None:
        if not is_sku(sku):
            return None
        try:
            return _to_domain(ProductModel.get(CATALOGUE_PK, sku, consistent_read=consistent))
        except DoesNotExist:
            return None

    def get_many(self, skus: Iterable[str]) -> dict[str, Product]:
        keys = [(CATALOGUE_PK, sku) for sku in dict.fromkeys(skus) if is_sku(sku)]
        if not keys:
            return {}
        return {item.sk: _to_domain(item) for item in ProductModel.batch_get(keys)}

    def add(self, product: Product, audit: AuditEntry) -> Product:
        item = _to_model(product)
        try:
            with transaction(self._region) as t:
                t.save(item, condition=ProductModel.sk.does_not_exist())
                t.save(audit_item(audit))
        except TransactWriteError as error:
            if any(failed_conditions(error)):
                raise AlreadyExists(product.sku) from error
            raise
        return _to_domain(item)

    def update(self, before: Product, after: Product, audit: AuditEntry) -> Product:
        """Write `after` if the stored product is still `before` (same version)."""
        item = _to_model(after)
        item.version = before.version
        with versioned_transaction(self._region, after.sku) as t:
            t.save(item)
            t.save(audit_item(audit))
        return _to_domain(item)

    def list(self, limit: int, start: Key | None, active: bool | None) -> tuple[list[Product], Key | None]:
        """Products sorted by sku; `active` filters the catalogue partition (a FilterExpression,
        not an index: the catalogue is small)."""
        return query_page(
            ProductModel.query,
            CATALOGUE_PK,
            limit=limit,
            start=start,
            key_of=keys_of("pk", "sk"),
            to_domain=_to_domain,
            filter_condition=(ProductModel.active == active) if active is not None else None,
        )
