"""The customers table's models of customers: profiles and what is kept in step with them
(email lookups, name-search entries, tombstones, pending changes of address, sign-in links),
audit entries, idempotency pointers and case history entries. The loyalty items of the same
table are in loyalty.py."""

from __future__ import annotations

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.store.keys import EMAIL_CHANGE_SK
from chalicelib.store.models.base import TableMeta, settings


class ByCreatedIndex(GlobalSecondaryIndex["CustomerModel"]):
    class Meta:
        index_name = "by_created"
        projection = AllProjection()

    list_pk = UnicodeAttribute(hash_key=True)
    list_sk = UnicodeAttribute(range_key=True)


class CustomerModel(Model):
    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    list_pk = UnicodeAttribute(null=True)
    list_sk = UnicodeAttribute(null=True)
    id = UnicodeAttribute()
    name = UnicodeAttribute()
    preferred_name = UnicodeAttribute(null=True)
    email = UnicodeAttribute(null=True)
    phone = UnicodeAttribute(null=True)
    locale = UnicodeAttribute()
    marketing_consent = BooleanAttribute(default=False)
    tags = ListAttribute(of=UnicodeAttribute, default=list)
    attributes = MapAttribute(default=dict)
    search_words = ListAttribute(of=UnicodeAttribute, default=list)
    secondary_emails = ListAttribute(of=UnicodeAttribute, null=True)
    secondary_phones = ListAttribute(of=UnicodeAttribute, null=True)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    version = VersionAttribute()

    by_created = ByCreatedIndex()


class EmailLookupModel(Model):
    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="EMAIL")
    customer_id = UnicodeAttribute()


class NameTokenModel(Model):
    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    customer_id = UnicodeAttribute()
    # All search words of the profile, so a query can rank and de-duplicate without a read.
    words = ListAttribute(of=UnicodeAttribute)


class AuditModel(Model):
    """One audit entry, under the customer it concerns (or the product): pk CUSTOMER#<id> or
    PRODUCT#<sku>, sk AUDIT#<entry id, time-ordered>."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    entity = UnicodeAttribute()
    entity_id = UnicodeAttribute()
    action = UnicodeAttribute()
    actor_subject = UnicodeAttribute()
    actor_role = UnicodeAttribute()
    route = UnicodeAttribute()
    at = UnicodeAttribute()
    changes = UnicodeAttribute()  # JSON list of {field, before, after}


class TombstoneModel(Model):
    """Left by a deleted customer (no personal data): lets late stream records of the
    customer be told apart from records of a customer that never existed."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="DELETED")
    deleted_at = UnicodeAttribute()
    # Set when the customer was erased (GDPR), not merely deleted: self-service answers 410.
    erased_at = UnicodeAttribute(null=True)


class IdempotencyPointerModel(Model):
    """Names one idempotency record (Powertools table, keyed by a hash) that holds data of the
    customer it sits under: pk CUSTOMER#<id>, sk IDEMPOTENCY#<record id>. Erasure and the purge
    of a deleted customer query these instead of scanning the idempotency table."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    created_at = UnicodeAttribute()


class EmailChangeModel(Model):
    """A customer's pending change of email address: pk CUSTOMER#<id>, sk EMAIL_CHANGE. A new
    request replaces it (a new nonce: the earlier link stops working), conditional on the
    nonce it replaces, and carries forward the times of the recent requests (the limits); the
    customers stream consumer mails the link for each new nonce; the confirmation marks it
    confirmed; a write that sets the profile's address otherwise marks it withdrawn."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=EMAIL_CHANGE_SK)
    customer_id = UnicodeAttribute()
    email = UnicodeAttribute()
    nonce = UnicodeAttribute()
    requested_at = UnicodeAttribute()
    expires_at = UnicodeAttribute()
    mail_claimed_at = UnicodeAttribute(null=True)
    confirmed_at = UnicodeAttribute(null=True)
    withdrawn_at = UnicodeAttribute(null=True)
    recent_requests = ListAttribute(of=UnicodeAttribute, null=True)


class IdentityModel(Model):
    """Which customer a sign-in identity is: pk IDENTITY#<issuer>#<subject>, sk IDENTITY. Its
    twin, IdentityPointerModel under the customer, lets the customer's identities be listed
    and removed with the customer (one Query, no Scan); both are written in one transaction."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default="IDENTITY")
    customer_id = UnicodeAttribute()
    issuer = UnicodeAttribute()
    subject = UnicodeAttribute()
    linked_at = UnicodeAttribute()
    linked_by = UnicodeAttribute()  # "sign-up" (the Cognito trigger) or the staff member


class IdentityPointerModel(Model):
    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    issuer = UnicodeAttribute()
    subject = UnicodeAttribute()
    linked_at = UnicodeAttribute()
    linked_by = UnicodeAttribute()


class CaseHistoryModel(Model):
    """One entry of a case's history: pk CASE#<case id>, sk HISTORY#<seq> (1, 2, ... in the
    order written; the case's version guards the numbering). Written in the same transaction
    as the case change it records."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    at = UnicodeAttribute()
    by = UnicodeAttribute()
    from_status = UnicodeAttribute(null=True)
    to_status = UnicodeAttribute(null=True)
    note = UnicodeAttribute(null=True)
