"""Profiles with their unique email addresses, tombstones, pending changes of address and the
erasure's move of the loyalty aggregates, as store/customers.py keeps them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from chalicelib.domain import names, storage
from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import to_rfc3339
from chalicelib.domain.customers import Customer
from chalicelib.domain.email_change import EmailChange
from tests.unit.fakes.base import FakeTransaction, Key, Rivals, page


class FakeCustomers:
    def __init__(self, audit: list[AuditEntry]) -> None:
        self.profiles: dict[str, Customer] = {}
        self.emails: dict[str, str] = {}  # email key -> customer id
        self.tombstones: dict[str, dict[str, str | None]] = {}
        self.changes: dict[str, EmailChange] = {}
        self.merges_running: dict[str, str] = {}  # customer id -> merge id
        self.anonymous: dict[str, dict] = {}
        self.audit = audit
        self.rivals = Rivals()
        self.loyalty = None  # FakeLoyalty, whose aggregates an erasure moves

    # -- reads --------------------------------------------------------------------------------

    def get(self, customer_id: str, *, consistent: bool = False) -> Customer | None:
        return self.profiles.get(customer_id)

    def get_many(self, customer_ids: list[str], *, consistent: bool = False) -> dict[str, Customer]:
        return {cid: self.profiles[cid] for cid in customer_ids if cid in self.profiles}

    def was_deleted(self, customer_id: str, *, consistent: bool = False) -> bool:
        return customer_id in self.tombstones

    def running_merge(self, customer_id: str) -> str | None:
        return self.merges_running.get(customer_id)

    def erased_at(self, customer_id: str, *, consistent: bool = False) -> str | None:
        return self.tombstones.get(customer_id, {}).get("erased_at")

    def by_email(self, key: str) -> Customer | None:
        owner = self.emails.get(key)
        return self.profiles.get(owner) if owner else None

    def email_change(self, customer_id: str, *, consistent: bool = False) -> EmailChange | None:
        return self.changes.get(customer_id)

    def list_newest(self, limit: int, start: Key | None) -> tuple[list[Customer], Key | None]:
        newest = sorted(self.profiles.values(), key=lambda c: c.id, reverse=True)
        return page(newest, limit, start, lambda c: c.id)

    def search(
        self, query_words: list[str], limit: int, start: Key | None
    ) -> tuple[list[Customer], Key | None]:
        found = [
            c
            for c in sorted(self.profiles.values(), key=lambda c: c.id)
            if names.matches(query_words, c.search_words)
        ]
        return page(found, limit, start, lambda c: c.id)

    # -- profile writes -----------------------------------------------------------------------

    def add(
        self,
        customer: Customer,
        audit: AuditEntry | None = None,
        also: Callable[[FakeTransaction], None] | None = None,
    ) -> Customer:
        self.rivals.run()
        if customer.id in self.profiles:
            raise storage.AlreadyExists(customer.id)
        self._require_free(customer)
        t = FakeTransaction()
        if also is not None:
            also(t)
        t.commit(customer.id)
        stored = replace(customer, version=1)
        self._store(None, stored, audit)
        return stored

    def update(self, before: Customer, after: Customer, audit: AuditEntry | None = None) -> Customer:
        if before.email != after.email:
            return self.update_setting_email(before, after, audit, None)
        return self._update(before, after, audit)

    def update_setting_email(
        self, before: Customer, after: Customer, audit: AuditEntry | None, pending: EmailChange | None
    ) -> Customer:
        return self._update(before, after, audit, pending=(pending,), withdraw_at=after.updated_at)

    def _update(
        self,
        before: Customer,
        after: Customer,
        audit: AuditEntry | None,
        *,
        pending: tuple[EmailChange | None] | None = None,
        withdraw_at: datetime | None = None,
        also: Callable[[], bool] = lambda: True,
    ) -> Customer:
        """`pending`: the change of address the write relies on, as read (a 1-tuple)."""
        self.rivals.run()
        self._require_free(after)
        self._require_version(before)
        if pending is not None:
            self._require_pending(before.id, pending[0])
        if not also():
            raise storage.VersionConflict(before.id)
        if withdraw_at is not None and pending is not None:
            self._withdraw(before.id, pending[0], withdraw_at)
        stored = replace(after, version=before.version + 1)
        self._store(before, stored, audit)
        return stored

    def delete(self, customer: Customer, deleted_at: datetime, audit: AuditEntry | None = None) -> None:
        self.rivals.run()
        self._require_version(customer)
        self._remove(customer)
        self.tombstones[customer.id] = {"deleted_at": to_rfc3339(deleted_at), "erased_at": None}
        self._record(audit)

    def mark_erased(self, customer_id: str, erased_at: datetime, audit: AuditEntry) -> None:
        tombstone = self.tombstones.get(customer_id)
        if tombstone is not None and tombstone["erased_at"] is None:
            tombstone["erased_at"] = to_rfc3339(erased_at)
            self._record(audit)

    def erase(
        self,
        customer: Customer,
        erased_at: datetime,
        audit: AuditEntry,
        loyalty_version: int | None,
        anonymous: dict | None,
    ) -> None:
        self.rivals.run()
        self._require_version(customer)
        stored = self.loyalty.get(customer.id) if self.loyalty is not None else None
        if (stored.version if stored else None) != loyalty_version:
            raise storage.VersionConflict(customer.id)
        self._remove(customer)
        at = to_rfc3339(erased_at)
        self.tombstones[customer.id] = {"deleted_at": at, "erased_at": at}
        if self.loyalty is not None:
            self.loyalty.aggregates.pop(customer.id, None)
        if anonymous is not None:
            self.anonymous[anonymous["id"]] = dict(anonymous, erased_on=erased_at.date().isoformat())
        self._record(audit)

    # -- a change of address waiting for its confirmation ---------------------------------------

    def request_email_change(
        self,
        before: Customer,
        after: Customer,
        change: EmailChange,
        audit: AuditEntry,
        replacing: EmailChange | None,
    ) -> Customer:
        def put() -> bool:
            self.changes[before.id] = change
            return True

        if after != before:
            return self._update(before, after, audit, pending=(replacing,), also=put)
        self.rivals.run()
        self._require_version(before)
        self._require_pending(before.id, replacing)
        put()
        self._record(audit)
        return before

    def withdraw_email_change(
        self, before: Customer, pending: EmailChange, at: datetime, audit: AuditEntry
    ) -> None:
        self.rivals.run()
        self._require_version(before)
        self._require_pending(before.id, pending)
        self._withdraw(before.id, pending, at)
        self._record(audit)

    def confirm_email_change(
        self, before: Customer, after: Customer, change: EmailChange, at: datetime, audit: AuditEntry
    ) -> Customer:
        def mark_confirmed() -> bool:
            now = self.changes.get(change.customer_id)
            if now is None or now.nonce != change.nonce or now.confirmed_at or now.withdrawn_at:
                return False
            self.changes[change.customer_id] = replace(now, confirmed_at=at)
            return True

        return self._update(before, after, audit, also=mark_confirmed)

    def claim_confirmation_mail(self, change: EmailChange, at: datetime) -> bool:
        now = self.changes.get(change.customer_id)
        if (
            now is None
            or now.nonce != change.nonce
            or now.mail_claimed_at
            or now.confirmed_at
            or now.withdrawn_at
        ):
            return False
        self.changes[change.customer_id] = replace(now, mail_claimed_at=at)
        return True

    def give_back_confirmation_mail(self, change: EmailChange, claimed_at: datetime) -> None:
        now = self.changes.get(change.customer_id)
        if now is not None and now.nonce == change.nonce and now.mail_claimed_at == claimed_at:
            self.changes[change.customer_id] = replace(now, mail_claimed_at=None)

    # -- conditions and bookkeeping -------------------------------------------------------------

    def _require_free(self, customer: Customer) -> None:
        owner = self.emails.get(customer.email_key) if customer.email_key else None
        if owner not in (None, customer.id):
            raise storage.EmailTaken(customer.email)

    def _require_version(self, before: Customer) -> None:
        stored = self.profiles.get(before.id)
        if stored is None or stored.version != before.version:
            raise storage.VersionConflict(before.id)

    def _require_pending(self, customer_id: str, read: EmailChange | None) -> None:
        now = self.changes.get(customer_id)
        if (now and now.nonce) != (read and read.nonce):
            raise storage.VersionConflict(customer_id)

    def _withdraw(self, customer_id: str, read: EmailChange | None, at: datetime) -> None:
        if read is not None and read.withdrawn_at is None:
            self.changes[customer_id] = replace(self.changes[customer_id], withdrawn_at=at)

    def _store(self, before: Customer | None, after: Customer, audit: AuditEntry | None) -> None:
        if before is not None and before.email_key and before.email_key != after.email_key:
            self.emails.pop(before.email_key, None)
        if after.email_key:
            self.emails[after.email_key] = after.id
        self.profiles[after.id] = after
        self._record(audit)

    def _remove(self, customer: Customer) -> None:
        del self.profiles[customer.id]
        if customer.email_key:
            self.emails.pop(customer.email_key, None)

    def _record(self, audit: AuditEntry | None) -> None:
        if audit is not None:
            self.audit.append(audit)
