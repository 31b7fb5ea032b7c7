"""Response models of recommendations: products bought together, and a customer's ranked
recommendations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from chalicelib.api.schemas import MoneyOut, Out
from chalicelib.domain import money
from chalicelib.domain.clock import to_rfc3339

if TYPE_CHECKING:
    from chalicelib.domain.products import Product
    from chalicelib.services.recommendations import Recommended, RelatedProduct

# The rules, for the OpenAPI document of both routes that answer them.
RECOMMENDATIONS = (
    "Ranked: first `repurchase_due`, the customer's habits whose next purchase is expected within "
    "`CRM_REPURCHASE_WINDOW_DAYS` (default 7) or is overdue by at most twice their mean interval, "
    "soonest first; then `bought_together`, products other customers bought with theirs that they "
    "never bought, by confidence. A customer with no purchase gets the most-bought products "
    "(`popular`). Never an inactive product, nor one the customer returned every unit of."
)


def _product(p: Product) -> dict:
    return {
        "sku": p.sku,
        "names": dict(p.names),
        "price": money.format_money(p.price, p.currency),
        "currency": p.currency,
    }


class RelatedOut(Out):
    sku: str
    names: dict[str, str]
    price: MoneyOut = Field(description="with the currency's minor-unit digits")
    currency: str
    co_purchases: int = Field(ge=1, description="how many customers bought both products")
    confidence: float = Field(
        ge=0, le=1, description="co_purchases / the customers who bought the product asked about"
    )

    @classmethod
    def of(cls, related: RelatedProduct) -> dict:
        return _product(related.product) | {
            "co_purchases": related.co_purchases,
            "confidence": round(related.confidence, 4),
        }


class RelatedPage(Out):
    items: list[RelatedOut]
    next_cursor: str | None


class RecommendationOut(Out):
    sku: str
    names: dict[str, str]
    price: MoneyOut = Field(description="with the currency's minor-unit digits")
    currency: str
    reason: Literal["repurchase_due", "bought_together", "popular"]
    because_of: str | None = Field(description="bought_together: the customer's SKU it was bought with")
    due_at: str | None = Field(description="repurchase_due: when the customer's next purchase is expected")
    score: float = Field(
        ge=0,
        description="repurchase_due: 1–2 (2 when due now); bought_together: the confidence, 0–1; "
        "popular: buyers relative to the most-bought product's, 0–1",
    )

    @classmethod
    def of(cls, item: Recommended) -> dict:
        r = item.recommendation
        return _product(item.product) | {
            "reason": r.reason,
            "because_of": r.because_of,
            "due_at": to_rfc3339(r.due_at) if r.due_at else None,
            "score": round(r.score, 4),
        }


class RecommendationPage(Out):
    items: list[RecommendationOut]
    next_cursor: str | None
