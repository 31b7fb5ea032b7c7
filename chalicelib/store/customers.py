"""Customer repository: profiles, their email lookup entries and name-search entries, kept in
step by DynamoDB transactions so no entry ever exists without its profile."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from chalicelib.domain import names
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.customers import Customer
from chalicelib.domain.email_change import EmailChange
from chalicelib.store.audit import audit_item
from chalicelib.store.models import (
    ANONYMOUS_PREFIX,
    CUSTOMERS_LIST_PK,
    EMAIL_CHANGE_SK,
    ITEM_LIMIT,
    LOYALTY_SK,
    PROFILE_SK,
    TOMBSTONE_SK,
    AnonymousAggregatesModel,
    CustomerModel,
    EmailChangeModel,
    EmailLookupModel,
    LoyaltyModel,
    NameTokenModel,
    TombstoneModel,
    customer_pk,
    email_pk,
    failed_conditions,
    name_token_keys,
    transaction,
)
from chalicelib.store.pagination import Key, collect


class EmailTaken(Exception):
    pass


class VersionConflict(Exception):
    """The profile changed (or went away) since it was read, or another item the write was
    conditional on did."""


class PendingChanged(Exception):
    """The pending change of email address is not the one read (a concurrent request of the
    same customer replaced or made it): read it again; the profile may be unchanged."""


@dataclass(frozen=True)
class _AsRead:
    """The pending change of email address a write relies on, as read (None: there was none)."""

    change: EmailChange | None


def _to_domain(item: CustomerModel) -> Customer:
    return Customer(
        id=item.id,
        name=item.name,
        preferred_name=item.preferred_name,
        email=item.email,
        phone=item.phone,
        locale=item.locale,
        marketing_consent=bool(item.marketing_consent),
        tags=tuple(item.tags or ()),
        attributes=dict(item.attributes.as_dict() if item.attributes else {}),
        created_at=parse_rfc3339(item.created_at),
        updated_at=parse_rfc3339(item.updated_at),
        version=int(item.version or 0),
    )


customer_from_item = _to_domain


def _to_model(customer: Customer) -> CustomerModel:
    item = CustomerModel(
        pk=customer_pk(customer.id),
        sk=PROFILE_SK,
        list_pk=CUSTOMERS_LIST_PK,
        list_sk=customer.id,
        id=customer.id,
        name=customer.name,
        preferred_name=customer.preferred_name,
        email=customer.email,
        phone=customer.phone,
        locale=customer.locale,
        marketing_consent=customer.marketing_consent,
        tags=list(customer.tags),
        search_words=customer.search_words,
        created_at=to_rfc3339(customer.created_at),
        updated_at=to_rfc3339(customer.updated_at),
    )
    item.attributes = dict(customer.attributes)
    if customer.version:
        item.version = customer.version
    return item


def _change_model(change: EmailChange) -> EmailChangeModel:
    return EmailChangeModel(
        customer_pk(change.customer_id),
        EMAIL_CHANGE_SK,
        customer_id=change.customer_id,
        email=change.email,
        nonce=change.nonce,
        requested_at=to_rfc3339(change.requested_at),
        expires_at=to_rfc3339(change.expires_at),
        recent_requests=[to_rfc3339(at) for at in change.recent_requests],
    )


def _change_key(customer_id: str) -> EmailChangeModel:
    return EmailChangeModel(customer_pk(customer_id), EMAIL_CHANGE_SK)


def _still(change: EmailChange | None):
    """The condition that the pending change is still the one read (None: still none)."""
    if change is None:
        return EmailChangeModel.pk.does_not_exist()
    return EmailChangeModel.nonce == change.nonce


def _withdraw(t: TransactWrite, customer_id: str, read: EmailChange | None, at: datetime) -> None:
    """In `t`: withdraw the pending change `read` (its link stops working; the request times
    stay, so withdrawing never resets the limits), or check that there still is none, or that
    a withdrawn or confirmed one is still the same, so a request committed meanwhile fails
    the transaction instead of surviving it."""
    if read is not None and read.withdrawn_at is None:
        t.update(
            _change_key(customer_id),
            actions=[EmailChangeModel.withdrawn_at.set(to_rfc3339(at))],
            condition=_still(read),
        )
    else:
        t.condition_check(EmailChangeModel, customer_pk(customer_id), EMAIL_CHANGE_SK, condition=_still(read))


def _change_from(item: EmailChangeModel) -> EmailChange:
    return EmailChange(
        customer_id=item.customer_id,
        email=item.email,
        nonce=item.nonce,
        requested_at=parse_rfc3339(item.requested_at),
        expires_at=parse_rfc3339(item.expires_at),
        mail_claimed_at=parse_rfc3339(item.mail_claimed_at) if item.mail_claimed_at else None,
        confirmed_at=parse_rfc3339(item.confirmed_at) if item.confirmed_at else None,
        withdrawn_at=parse_rfc3339(item.withdrawn_at) if item.withdrawn_at else None,
        # Items written before the limits existed count as one request, at requested_at.
        recent_requests=tuple(parse_rfc3339(at) for at in item.recent_requests or [item.requested_at]),
    )


def _token_models(customer: Customer) -> list[NameTokenModel]:
    words = customer.search_words
    return [
        NameTokenModel(*name_token_keys(word, customer.id), customer_id=customer.id, words=words)
        for word in words
    ]


def _customer_key(customer_id: str) -> dict:
    return {"pk": {"S": customer_pk(customer_id)}, "sk": {"S": PROFILE_SK}}


class CustomerRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    def get(self, customer_id: str, *, consistent: bool = False) -> Customer | None:
        """`consistent`: a strongly consistent read, for a read a conditional write relies on."""
        try:
            return _to_domain(
                CustomerModel.get(customer_pk(customer_id), PROFILE_SK, consistent_read=consistent)
            )
        except DoesNotExist:
            return None

    def get_many(self, customer_ids: list[str]) -> dict[str, Customer]:
        keys = [(customer_pk(cid), PROFILE_SK) for cid in dict.fromkeys(customer_ids)]
        return {item.id: _to_domain(item) for item in CustomerModel.batch_get(keys)}

    def add(
        self,
        customer: Customer,
        audit: AuditEntry | None = None,
        also: Callable[[TransactWrite], None] | None = None,
    ) -> Customer:
        """Create the profile with its lookup entries; `also` adds to the same transaction
        (a sign-in link, say). EmailTaken if the address is another customer's;
        VersionConflict if a condition of `also` failed."""
        item = _to_model(customer)
        try:
            with transaction(self._region) as t:
                t.save(item, condition=CustomerModel.pk.does_not_exist())
                if customer.email_key:
                    t.save(
                        EmailLookupModel(email_pk(customer.email_key), customer_id=customer.id),
                        condition=EmailLookupModel.pk.does_not_exist(),
                    )
                for token in _token_models(customer):
                    t.save(token)
                if audit is not None:
                    t.save(audit_item(audit))
                if also is not None:
                    also(t)
        except TransactWriteError as error:
            if customer.email_key and self._email_owner(customer.email_key) not in (None, customer.id):
                raise EmailTaken(customer.email) from error
            if also is None or not any(failed_conditions(error)):
                raise
            raise VersionConflict(customer.id) from error
        return _to_domain(item)

    def update(self, before: Customer, after: Customer, audit: AuditEntry | None = None) -> Customer:
        """Write `after` if the stored profile is still `before` (same version). A change of
        the address goes through `update_setting_email` (with no pending change read)."""
        if before.email != after.email:
            return self.update_setting_email(before, after, audit, None)
        return self._update(before, after, audit)

    def update_setting_email(
        self, before: Customer, after: Customer, audit: AuditEntry | None, pending: EmailChange | None
    ) -> Customer:
        """`update` for a write that sets the address: the pending change of address
        `pending` (as the caller read it, None if there was none) is withdrawn in the same
        transaction, conditional on being still the one read (else PendingChanged), so its
        link can never override this address."""
        return self._update(
            before,
            after,
            audit,
            lambda t: _withdraw(t, before.id, pending, after.updated_at),
            _AsRead(pending),
        )

    def _update(
        self,
        before: Customer,
        after: Customer,
        audit: AuditEntry | None,
        also: Callable[[TransactWrite], None] | None = None,
        relied_on: _AsRead | None = None,
    ) -> Customer:
        """`update`, with what `also` adds to the same transaction; `relied_on`: the pending
        change of address `also` is conditional on (a failure then is PendingChanged if it
        moved on)."""
        item = _to_model(after)
        item.version = before.version
        old_tokens = {(t.pk, t.sk) for t in _token_models(before)}
        new_tokens = _token_models(after)
        # Validation keeps a profile near half the limit; the audit entry holds each changed
        # field twice (before and after), so it is the item that can pass the limit.
        too_large = (
            f"The change to customer {after.id} is too large to record: its audit entry, which "
            f"holds every changed field before and after, would be over {ITEM_LIMIT}."
        )
        try:
            with transaction(self._region, too_large) as t:
                t.save(item)
                if before.email_key != after.email_key:
                    if before.email_key:
                        t.delete(
                            EmailLookupModel(email_pk(before.email_key)),
                            condition=EmailLookupModel.customer_id == before.id,
                        )
                    if after.email_key:
                        t.save(
                            EmailLookupModel(email_pk(after.email_key), customer_id=after.id),
                            condition=EmailLookupModel.pk.does_not_exist(),
                        )
                if before.search_words != after.search_words:
                    new_keys = {(t_.pk, t_.sk) for t_ in new_tokens}
                    for pk, sk in old_tokens - new_keys:
                        t.delete(NameTokenModel(pk, sk))
                    for token in new_tokens:
                        t.save(token)
                if audit is not None:
                    t.save(audit_item(audit))
                if also is not None:
                    also(t)
        except TransactWriteError as error:
            if after.email_key and self._email_owner(after.email_key) not in (None, after.id):
                raise EmailTaken(after.email) from error
            if not any(failed_conditions(error)):
                raise  # not a lost race: no condition failed
            raise self._lost_race(after.id, relied_on) from error
        return _to_domain(item)

    def _lost_race(self, customer_id: str, relied_on: _AsRead | None) -> Exception:
        if relied_on is not None:
            now = self.email_change(customer_id, consistent=True)
            if (now and now.nonce) != (relied_on.change and relied_on.change.nonce):
                return PendingChanged(customer_id)
        return VersionConflict(customer_id)

    # -- a change of email address that waits for its confirmation -----------------------------

    def request_email_change(
        self,
        before: Customer,
        after: Customer,
        change: EmailChange,
        audit: AuditEntry,
        replacing: EmailChange | None,
    ) -> Customer:
        """Record `change` in place of `replacing` (the pending change the limits were checked
        on, None if there was none; its link then stops working), with the profile's other
        changes (`after`), if the profile is still `before` (else VersionConflict) and the
        pending change still `replacing` (else PendingChanged). The address is not checked
        here: whether someone else has it is told only to its confirmer."""

        def put(t: TransactWrite) -> None:
            t.save(_change_model(change), condition=_still(replacing))

        if after != before:
            return self._update(before, after, audit, put, _AsRead(replacing))
        self._check_version_and(before, audit, put, _AsRead(replacing))
        return before

    def withdraw_email_change(
        self, before: Customer, pending: EmailChange, at: datetime, audit: AuditEntry
    ) -> None:
        """Withdraw `pending` while the profile stays `before` (the customer sent the address
        they have): VersionConflict or PendingChanged as for `update`."""
        self._check_version_and(
            before, audit, lambda t: _withdraw(t, before.id, pending, at), _AsRead(pending)
        )

    def _check_version_and(
        self, before: Customer, audit: AuditEntry, also: Callable[[TransactWrite], None], relied_on: _AsRead
    ) -> None:
        try:
            with transaction(self._region) as t:
                t.condition_check(
                    CustomerModel,
                    customer_pk(before.id),
                    PROFILE_SK,
                    condition=CustomerModel.version == before.version,
                )
                also(t)
                t.save(audit_item(audit))
        except TransactWriteError as error:
            if not any(failed_conditions(error)):
                raise
            raise self._lost_race(before.id, relied_on) from error

    def confirm_email_change(
        self, before: Customer, after: Customer, change: EmailChange, at: datetime, audit: AuditEntry
    ) -> Customer:
        """Apply the confirmed address (`after`) and mark `change` confirmed, once: the write
        fails (VersionConflict) if the change was confirmed, replaced or withdrawn meanwhile,
        and is EmailTaken if another customer has the address by now."""

        def mark_confirmed(t: TransactWrite) -> None:
            t.update(
                _change_key(change.customer_id),
                actions=[EmailChangeModel.confirmed_at.set(to_rfc3339(at))],
                condition=(EmailChangeModel.nonce == change.nonce)
                & EmailChangeModel.confirmed_at.does_not_exist()
                & EmailChangeModel.withdrawn_at.does_not_exist(),
            )

        return self._update(before, after, audit, mark_confirmed)

    def email_change(self, customer_id: str, *, consistent: bool = False) -> EmailChange | None:
        try:
            item = EmailChangeModel.get(customer_pk(customer_id), EMAIL_CHANGE_SK, consistent_read=consistent)
        except DoesNotExist:
            return None
        return _change_from(item)

    def claim_confirmation_mail(self, change: EmailChange, at: datetime) -> bool:
        """Claim the sending of `change`'s link: True for the one caller that may send it."""
        try:
            _change_key(change.customer_id).update(
                actions=[EmailChangeModel.mail_claimed_at.set(to_rfc3339(at))],
                condition=(EmailChangeModel.nonce == change.nonce)
                & EmailChangeModel.mail_claimed_at.does_not_exist()
                & EmailChangeModel.confirmed_at.does_not_exist()
                & EmailChangeModel.withdrawn_at.does_not_exist(),
            )
        except UpdateError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def give_back_confirmation_mail(self, change: EmailChange, claimed_at: datetime) -> None:
        """Undo our claim (SES refused the message), unless the change moved on meanwhile."""
        try:
            _change_key(change.customer_id).update(
                actions=[EmailChangeModel.mail_claimed_at.remove()],
                condition=(EmailChangeModel.nonce == change.nonce)
                & (EmailChangeModel.mail_claimed_at == to_rfc3339(claimed_at)),
            )
        except UpdateError as error:
            if error.cause_response_code != "ConditionalCheckFailedException":
                raise

    def delete(self, customer: Customer, deleted_at: datetime, audit: AuditEntry | None = None) -> None:
        item = _to_model(customer)
        try:
            with transaction(self._region) as t:
                t.delete(item)
                t.save(
                    TombstoneModel(customer_pk(customer.id), TOMBSTONE_SK, deleted_at=to_rfc3339(deleted_at))
                )
                if customer.email_key:
                    t.delete(EmailLookupModel(email_pk(customer.email_key)))
                for token in _token_models(customer):
                    t.delete(token)
                if audit is not None:
                    t.save(audit_item(audit))
        except TransactWriteError as error:
            if not any(failed_conditions(error)):
                raise  # not a lost race: no condition failed
            raise VersionConflict(customer.id) from error

    def mark_erased(self, customer_id: str, erased_at: datetime, audit: AuditEntry) -> None:
        """The erasure of a deleted customer: its tombstone is marked erased, with the audit
        entry, in one transaction; nothing if it is marked already."""
        try:
            with transaction(self._region) as t:
                t.update(
                    TombstoneModel(customer_pk(customer_id), TOMBSTONE_SK),
                    actions=[TombstoneModel.erased_at.set(to_rfc3339(erased_at))],
                    condition=TombstoneModel.pk.exists() & TombstoneModel.erased_at.does_not_exist(),
                )
                t.save(audit_item(audit))
        except TransactWriteError as error:
            if not any(failed_conditions(error)):
                raise

    def erase(
        self,
        customer: Customer,
        erased_at: datetime,
        audit: AuditEntry,
        loyalty_version: int | None,
        anonymous: dict | None,
    ) -> None:
        """One transaction: the profile and its lookup entries go, a tombstone marked erased
        stays, and the loyalty aggregates (still at `loyalty_version`, or still absent) move to
        `ANONYMOUS#<anonymous["id"]>` without anything that names the customer."""
        item = _to_model(customer)
        try:
            with transaction(self._region) as t:
                t.delete(item)
                at = to_rfc3339(erased_at)
                t.save(TombstoneModel(customer_pk(customer.id), TOMBSTONE_SK, deleted_at=at, erased_at=at))
                if customer.email_key:
                    t.delete(EmailLookupModel(email_pk(customer.email_key)))
                for token in _token_models(customer):
                    t.delete(token)
                t.save(audit_item(audit))
                if loyalty_version is None:
                    t.condition_check(
                        LoyaltyModel,
                        customer_pk(customer.id),
                        LOYALTY_SK,
                        condition=LoyaltyModel.pk.does_not_exist(),
                    )
                else:
                    loyalty = LoyaltyModel(customer_pk(customer.id), LOYALTY_SK)
                    loyalty.version = loyalty_version  # PynamoDB: delete only at this version
                    t.delete(loyalty)
                if anonymous is not None:
                    t.save(
                        AnonymousAggregatesModel(
                            f"{ANONYMOUS_PREFIX}{anonymous['id']}",
                            LOYALTY_SK,
                            aggregates=anonymous["aggregates"],
                            score=anonymous.get("score"),
                            last_tier=anonymous.get("tier"),
                            erased_on=erased_at.date().isoformat(),
                        ),
                        condition=AnonymousAggregatesModel.pk.does_not_exist(),
                    )
        except TransactWriteError as error:
            if not any(failed_conditions(error)):
                raise  # not a lost race: no condition failed
            raise VersionConflict(customer.id) from error

    def erased_at(self, customer_id: str, *, consistent: bool = False) -> str | None:
        """When the customer was erased (GDPR), or None (exists, deleted only, or unknown)."""
        try:
            return TombstoneModel.get(
                customer_pk(customer_id), TOMBSTONE_SK, consistent_read=consistent
            ).erased_at
        except DoesNotExist:
            return None

    def was_deleted(self, customer_id: str, *, consistent: bool = False) -> bool:
        try:
            TombstoneModel.get(customer_pk(customer_id), TOMBSTONE_SK, consistent_read=consistent)
        except DoesNotExist:
            return False
        return True

    def _email_owner(self, key: str) -> str | None:
        try:
            return EmailLookupModel.get(email_pk(key), "EMAIL", consistent_read=True).customer_id
        except DoesNotExist:
            return None

    def by_email(self, key: str) -> Customer | None:
        owner = self._email_owner(key)
        return self.get(owner) if owner else None

    def list_newest(self, limit: int, start: Key | None) -> tuple[list[Customer], Key | None]:
        rows = CustomerModel.by_created.query(
            CUSTOMERS_LIST_PK,
            scan_index_forward=False,
            limit=limit + 1,
            last_evaluated_key=start,
        )
        items, next_key = collect(rows, limit, _list_key)
        return [_to_domain(i) for i in items], next_key

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
        tokens, next_key = collect(rows, limit, _token_key, accept=first_match_for_customer)
        found = self.get_many([t.customer_id for t in tokens]) if tokens else {}
        return [found[t.customer_id] for t in tokens if t.customer_id in found], next_key


def _list_key(item: CustomerModel) -> Key:
    return {
        "pk": {"S": item.pk},
        "sk": {"S": item.sk},
        "list_pk": {"S": item.list_pk},
        "list_sk": {"S": item.list_sk},
    }


def _token_key(item: NameTokenModel) -> Key:
    return {"pk": {"S": item.pk}, "sk": {"S": item.sk}}
