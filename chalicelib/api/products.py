"""Product catalogue routes: staff manage the catalogue, customers read its active products."""

from __future__ import annotations

from urllib.parse import quote, unquote

from chalice import Blueprint

from chalicelib import wiring
from chalicelib.api.http import Call, api_route
from chalicelib.api.preconditions import etag, if_match
from chalicelib.api.product_schemas import (
    ProductCreate,
    ProductListQuery,
    ProductOut,
    ProductPage,
    ProductPatch,
)
from chalicelib.api.recommendation_schemas import RelatedOut, RelatedPage
from chalicelib.api.responses import json_response, page_response
from chalicelib.api.schemas import PageQuery
from chalicelib.errors import FieldError, ValidationFailed

bp = Blueprint(__name__)

READERS = ("staff", "customer")


def _sku(path_param: str) -> str:
    # A sku may hold "/" and ":", so its path segment is percent-encoded (see Location). Some
    # gateways hand the parameter over still encoded; a sku has no "%", so decoding is safe.
    return unquote(path_param)


def _is_staff(call: Call) -> bool:
    return call.principal.role == "staff"


def _product_response(product, status: int = 200, extra: dict | None = None):
    return json_response(ProductOut.of(product), status, {"ETag": etag(product.version), **(extra or {})})


@api_route(
    bp,
    "/products",
    "GET",
    summary="List the catalogue sorted by sku (customers: active products only)",
    roles=READERS,
    query=ProductListQuery,
    response=ProductPage,
)
def list_products(call: Call):
    active = call.query.active_filter
    if not _is_staff(call):
        if active is False:
            raise ValidationFailed([FieldError("active", "customers see active products only")])
        active = True
    page = wiring.product_service().list(call.query.limit, call.query.cursor, active)
    return page_response(page, ProductOut.of)


@api_route(
    bp,
    "/products/{sku}",
    "GET",
    summary="Read a product (customers: active products only)",
    roles=READERS,
    response=ProductOut,
    errors=(404,),
    headers=("ETag",),
)
def get_product(call: Call, sku: str):
    return _product_response(wiring.product_service().get(_sku(sku), active_only=not _is_staff(call)))


@api_route(
    bp,
    "/products",
    "POST",
    summary="Add a product to the catalogue",
    body=ProductCreate,
    response=ProductOut,
    status=201,
    errors=(409,),
    headers=("Location", "ETag"),
)
def create_product(call: Call):
    product = wiring.product_service().create(call.body.fields(), call.actor)
    return _product_response(product, 201, {"Location": f"/products/{quote(product.sku, safe='')}"})


@api_route(
    bp,
    "/products/{sku}",
    "PATCH",
    summary="Change a product's names, price, currency or active flag",
    body=ProductPatch,
    response=ProductOut,
    errors=(404, 409, 412),
    headers=("ETag",),
)
def update_product(call: Call, sku: str):
    product = wiring.product_service().update(
        _sku(sku), call.body.changes(), if_match(call.headers), call.actor
    )
    return _product_response(product)


@api_route(
    bp,
    "/products/{sku}/related",
    "GET",
    summary="Products bought together with this one, most often first (customers: active products only)",
    roles=READERS,
    query=PageQuery,
    response=RelatedPage,
    errors=(404,),
    description=(
        "Products that at least `CRM_RELATED_MIN_SUPPORT` customers (default 2) bought as well as "
        "this one, in any purchases; `confidence` is the share of this product's buyers who did. "
        "A customer's page leaves out inactive products, so it may hold fewer than `limit` items."
    ),
)
def related_products(call: Call, sku: str):
    page = wiring.recommendation_service().related(
        _sku(sku), call.query.limit, call.query.cursor, active_only=not _is_staff(call)
    )
    return page_response(page, RelatedOut.of)
