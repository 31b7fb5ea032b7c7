"""What the interactions stream's records mean for co-purchase counts
(services/recommendations.py). No consumer of its own: events/loyalty.py applies these in the
same batch as loyalty, as a stream shard should have at most two readers. Only a purchase's new
image counts: a removed interaction or a return takes no pair back (a customer who bought both
did buy them together once)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chalicelib.domain.loyalty.contributions import PoisonRecord, contribution_of
from chalicelib.store.attribute_values import UnreadableImage, plain_image

if TYPE_CHECKING:
    from chalicelib.services.recommendations import PurchaseSeen


def purchase_of(record: dict) -> PurchaseSeen | None:
    """The purchase a Lambda stream record of the interactions table carries, if any;
    PoisonRecord for one that can never be read."""
    from chalicelib.services.recommendations import PurchaseSeen

    if record.get("eventName") not in ("INSERT", "MODIFY"):
        return None
    data = record.get("dynamodb") or {}
    try:
        image = plain_image(data.get("NewImage"))
    except UnreadableImage as error:
        raise PoisonRecord(str(error)) from None
    contribution = contribution_of(image)
    if contribution is None or contribution.kind != "purchase":
        return None
    customer_id = image.get("customer_id")
    if not isinstance(customer_id, str) or not customer_id:
        raise PoisonRecord("customer_id is missing")
    return PurchaseSeen(data.get("SequenceNumber", ""), customer_id, frozenset(contribution.skus))
