"""Duplicate detection's storage: the candidates of a profile found by key (Queries with a
Limit each, so the cost is the same whatever the table's size), the pairs staff recorded as
different people, and the candidates noted when a customer is created."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING

from pynamodb.exceptions import TransactWriteError

from chalicelib.domain import duplicates, names
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.customers import Customer
from chalicelib.domain.storage import NotFound
from chalicelib.store.audit import audit_item
from chalicelib.store.customer_items import check_profile_exists, match_keys
from chalicelib.store.keys import NOT_DUPLICATE_PREFIX, POSSIBLE_DUPLICATES_SK, customer_pk, not_duplicate_sk
from chalicelib.store.models import (
    CandidateAttribute,
    MatchKeyModel,
    NameTokenModel,
    NotDuplicateModel,
    PossibleDuplicatesModel,
)
from chalicelib.store.transactions import failed_conditions, transaction

if TYPE_CHECKING:
    from pynamodb.transactions import TransactWrite

# Each key's Query reads at most this many entries: a number or a name that thousands share
# costs what a rare one does (and the ones read first are the oldest customers of the key).
PER_KEY = 10
# The name-search partitions read for similar names: the longest words of the name (the most
# telling; "de", "la" and initials come last).
NAME_WORDS = 4


class DuplicateRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    def candidate_ids(self, customer: Customer, *, consistent: bool = False) -> list[str]:
        """Who may be `customer` (not itself): those sharing a number, a mailbox or a name's
        words (`match_keys`), then those sharing a whole word of the name, the most alike
        first; at most MAX_CANDIDATES (domain.duplicates), in that order. `consistent`: the
        Queries read strongly consistent (a decision that must see the writes just before)."""
        return self.candidate_ids_of([customer], consistent=consistent)[customer.id]

    def candidate_ids_of(
        self, customers: list[Customer], *, consistent: bool = False
    ) -> dict[str, list[str]]:
        """`candidate_ids` of each of `customers` (by id), each key read once for all of them."""
        by_key: dict[str, list[str]] = {}
        by_word: dict[str, list[NameTokenModel]] = {}
        result: dict[str, list[str]] = {}
        for customer in customers:
            found: dict[str, None] = {}
            for pk in match_keys(customer):
                if pk not in by_key:
                    rows = MatchKeyModel.query(
                        pk, limit=PER_KEY, attributes_to_get=["customer_id"], consistent_read=consistent
                    )
                    by_key[pk] = [item.customer_id for item in rows]
                found.update(dict.fromkeys(by_key[pk]))
            found.update(dict.fromkeys(self._sharing_a_word(customer, by_word, consistent)))
            found.pop(customer.id, None)
            result[customer.id] = list(found)[: duplicates.MAX_CANDIDATES]
        return result

    @staticmethod
    def _words(customer: Customer) -> list[str]:
        return sorted(names.search_words(customer.name), key=lambda w: (-len(w), w))[:NAME_WORDS]

    def _sharing_a_word(
        self, customer: Customer, by_word: dict[str, list[NameTokenModel]], consistent: bool
    ) -> list[str]:
        alike: dict[str, float] = {}
        name = " ".join(names.words(customer.name))
        for word in self._words(customer):
            if word not in by_word:
                by_word[word] = list(
                    NameTokenModel.query(
                        f"NAME#{word[:2]}",
                        NameTokenModel.sk.startswith(f"{word}#"),
                        limit=PER_KEY,
                        consistent_read=consistent,
                    )
                )
            for token in by_word[word]:
                if token.customer_id not in alike:
                    # The entry holds all the profile's words: ranked without reading it.
                    alike[token.customer_id] = duplicates.name_similarity(name, " ".join(token.words))
        return sorted(alike, key=lambda cid: (-alike[cid], cid))

    def keys_read(self, customer: Customer) -> frozenset[str]:
        """Where `candidate_ids(customer)` looks: its match keys and the words of its name it
        looks up (as `word:<word>`)."""
        return frozenset(match_keys(customer)) | {f"word:{w}" for w in self._words(customer)}

    @staticmethod
    def keys_written(customer: Customer) -> frozenset[str]:
        """Where a stored profile is found (as keys_read names them): a profile written after
        the keys were read is a candidate if the two share one."""
        return frozenset(match_keys(customer)) | {f"word:{w}" for w in customer.search_words}

    def not_duplicates(self, customer_id: str) -> set[str]:
        """The customers staff recorded as other people than this one."""
        rows = NotDuplicateModel.query(
            customer_pk(customer_id),
            NotDuplicateModel.sk.startswith(NOT_DUPLICATE_PREFIX),
            attributes_to_get=["other_id"],
        )
        return {row.other_id for row in rows}

    def note_candidates(
        self, t: TransactWrite, customer_id: str, candidates: Iterable[tuple[str, float]], at: datetime
    ) -> None:
        """In `t` (the customer's creation): the candidates found, as ids and scores."""
        t.save(
            PossibleDuplicatesModel(
                customer_pk(customer_id),
                candidates=[CandidateAttribute(customer_id=cid, score=score) for cid, score in candidates],
                found_at=to_rfc3339(at),
            )
        )

    def noted_candidates(self, customer_id: str) -> list[tuple[str, float]]:
        try:
            item = PossibleDuplicatesModel.get(
                customer_pk(customer_id), POSSIBLE_DUPLICATES_SK, consistent_read=True
            )
        except PossibleDuplicatesModel.DoesNotExist:
            return []
        return [(c.customer_id, float(c.score)) for c in item.candidates]

    def record_not_duplicate(
        self, customer_id: str, other_id: str, at: datetime, recorded_by: str, audit: AuditEntry
    ) -> bool:
        """Both customers' NOT_DUPLICATE# items, with the audit entry, in one transaction that
        needs both profiles (NotFound naming the one gone). False if it was recorded already."""
        recorded_at = to_rfc3339(at)

        def item(owner: str, other: str) -> NotDuplicateModel:
            return NotDuplicateModel(
                customer_pk(owner),
                not_duplicate_sk(other),
                other_id=other,
                recorded_at=recorded_at,
                recorded_by=recorded_by,
            )

        try:
            with transaction(self._region) as t:
                check_profile_exists(t, customer_id)
                check_profile_exists(t, other_id)
                t.save(item(customer_id, other_id), condition=NotDuplicateModel.pk.does_not_exist())
                t.save(item(other_id, customer_id))
                t.save(audit_item(audit))
        except TransactWriteError as error:
            # Condition checks first, then the puts (store/transactions.failed_conditions).
            failed = failed_conditions(error)[:3]
            if failed[:1] == [True]:
                raise NotFound(customer_id) from error
            if failed[1:2] == [True]:
                raise NotFound(other_id) from error
            if failed[2:3] == [True]:
                return False
            raise
        return True
