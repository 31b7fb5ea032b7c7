"""The customer repository's reads by email address and by name, and its newest-first list."""

from __future__ import annotations

from pynamodb.exceptions import DoesNotExist

from chalicelib.domain import names
from chalicelib.domain.customers import Customer
from chalicelib.store.customer_items import customer_from_item
from chalicelib.store.keys import CUSTOMERS_LIST_PK, email_pk
from chalicelib.store.models import CustomerModel, EmailLookupModel, NameTokenModel
from chalicelib.store.pagination import Key, collect, keys_of, query_page


class CustomerLookups:
    """CustomerRepository's methods that find customers (by its `get` and `get_many`)."""

    def _email_owner(self, key: str) -> str | None:
        try:
            return EmailLookupModel.get(email_pk(key), "EMAIL", consistent_read=True).customer_id
        except DoesNotExist:
            return None

    def by_email(self, key: str) -> Customer | None:
        owner = self._email_owner(key)
        return self.get(owner) if owner else None

    def by_emails(self, keys: list[str]) -> dict[str, Customer | None]:
        """`by_email` of many addresses (a bulk import's chunk), in batches: each key's customer,
        None for an address no customer has. Both reads are strongly consistent: a row naming a
        customer created a moment ago (by the file imported just before) must find it, not fail."""
        lookups = EmailLookupModel.batch_get(
            [(email_pk(key), "EMAIL") for key in dict.fromkeys(keys)], consistent_read=True
        )
        owners = {item.pk: item.customer_id for item in lookups}
        profiles = self.get_many(list(owners.values()), consistent=True) if owners else {}
        return {key: profiles.get(owners.get(email_pk(key), "")) for key in keys}

    def list_newest(self, limit: int, start: Key | None) -> tuple[list[Customer], Key | None]:
        return query_page(
            CustomerModel.by_created.query,
            CUSTOMERS_LIST_PK,
            limit=limit,
            start=start,
            key_of=keys_of("pk", "sk", "list_pk", "list_sk"),
            to_domain=customer_from_item,
            scan_index_forward=False,
        )

    def search(
        self, query_words: list[str], limit: int, start: Key | None
    ) -> tuple[list[Customer], Key | None]:
        """Customers whose names have a word starting with each query word.

        The index is read for the longest query word. Entries sort by word, and `#` sorts
        before every letter and digit, so whole-word matches come before prefix matches. A
        customer with several matching words is kept only at the first of them.
        """
        lead = max(query_words, key=len)
        others = [w for w in query_words if w != lead]

        def first_match_for_customer(token: NameTokenModel) -> bool:
            word = token.sk.rsplit("#", 1)[0]
            earlier = [w for w in token.words if w.startswith(lead) and (w + "#") < (word + "#")]
            return not earlier and names.matches(others, token.words)

        rows = NameTokenModel.query(
            f"NAME#{lead[:2]}",
            NameTokenModel.sk.startswith(lead),
            page_size=min(limit + 1, 100) if not others else 100,
            last_evaluated_key=start,
        )
        tokens, next_key = collect(rows, limit, keys_of("pk", "sk"), accept=first_match_for_customer)
        found = self.get_many([t.customer_id for t in tokens]) if tokens else {}
        return [found[t.customer_id] for t in tokens if t.customer_id in found], next_key
