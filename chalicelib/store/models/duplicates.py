"""The customers table's items of duplicate detection: the lookups that find a customer's
likely duplicates by key, and the candidates found when a customer was created."""

from __future__ import annotations

from pynamodb.attributes import ListAttribute, MapAttribute, NumberAttribute, UnicodeAttribute
from pynamodb.models import Model

from chalicelib.store.keys import POSSIBLE_DUPLICATES_SK
from chalicelib.store.models.base import TableMeta, settings


class MatchKeyModel(Model):
    """pk PHONE#<e164> | EMAILN#<canonical address> | NAMEKEY#<folded words, sorted>, sk the
    customer id: one per number, address and name of each profile, written and removed with
    it (store/customer_items.token_items). Many customers may share one pk."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    customer_id = UnicodeAttribute()


class CandidateAttribute(MapAttribute):
    customer_id = UnicodeAttribute()
    score = NumberAttribute()


class PossibleDuplicatesModel(Model):
    """pk CUSTOMER#<new customer>, sk POSSIBLE_DUPLICATES: the customers scoring at least the
    threshold when it was created, written in its creation's transaction (ids and scores only;
    at most one BatchGetItem's worth, so far below 400 KB)."""

    class Meta(TableMeta):
        table_name = settings.customers_table

    pk = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True, default=POSSIBLE_DUPLICATES_SK)
    candidates = ListAttribute(of=CandidateAttribute)
    found_at = UnicodeAttribute()
