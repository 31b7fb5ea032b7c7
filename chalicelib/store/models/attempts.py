"""The idempotency table's seeds of keyed requests' attempts (Powertools owns the rest)."""

from __future__ import annotations

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UnicodeSetAttribute
from pynamodb.models import Model

from chalicelib.store.models.base import TableMeta, settings


class AttemptModel(Model):
    """The seed of a keyed request's attempts (domain/attempts.py), in the idempotency table
    beside Powertools' records (ids never collide: Powertools' start with "crm-http#"):
    `crm-seed#<record id>` with the time, nonce and body hash of the attempts, and the claims
    of the transactions they committed. It expires with the key, after 24 hours."""

    class Meta(TableMeta):
        table_name = settings.idempotency_table

    id = UnicodeAttribute(hash_key=True)
    expiration = NumberAttribute()
    at = UnicodeAttribute(null=True)
    nonce = UnicodeAttribute(null=True)
    body_sha256 = UnicodeAttribute(null=True)
    claims = UnicodeSetAttribute(null=True)


SEED_PREFIX = "crm-seed#"
ATTEMPT_LIFETIME_S = 24 * 60 * 60
