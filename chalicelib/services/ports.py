"""What the services need of storage, mail and queues: one Protocol per role a repository plays,
with only the methods the services call, implemented by the repositories in store/ and by the
in-memory fakes of tests/unit/fakes/. Every repository answers what it could not do with the
exceptions of domain/storage.py. `Transaction` is the store's transaction as a repository hands
it to a collaborator that adds to it: the services only pass it on."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chalicelib.domain.attempts import Seed
    from chalicelib.domain.audit import AuditEntry
    from chalicelib.domain.cases import Case, HistoryEntry
    from chalicelib.domain.clock import Deadline
    from chalicelib.domain.customers import Customer
    from chalicelib.domain.email_change import EmailChange
    from chalicelib.domain.identities import Identity
    from chalicelib.domain.interactions import Interaction
    from chalicelib.domain.jobs import Job
    from chalicelib.domain.loyalty.aggregates import Aggregates
    from chalicelib.domain.loyalty.contributions import Contribution
    from chalicelib.domain.loyalty.habits import SkuHabit
    from chalicelib.domain.loyalty.scoring import Score
    from chalicelib.domain.merges import Merge
    from chalicelib.domain.products import Product
    from chalicelib.domain.segments import Change, Member, Memberships, Progress, Segment
    from chalicelib.store.loyalty import Guard as LoyaltyGuard
    from chalicelib.store.loyalty import GuardKey, HabitKey, Loaded, StoredHabit, StoredLoyalty

Key = dict[str, Any]  # where a page starts: opaque to the services, signed into cursors
Transaction = Any


class ProfileReader(Protocol):
    """Whether a customer is there, for the services that only ask that."""

    def get(self, customer_id: str, *, consistent: bool = False) -> Customer | None: ...

    def was_deleted(self, customer_id: str, *, consistent: bool = False) -> bool: ...


class Customers(ProfileReader, Protocol):
    def get_many(self, customer_ids: list[str], *, consistent: bool = False) -> dict[str, Customer]: ...

    def add(
        self,
        customer: Customer,
        audit: AuditEntry | None = None,
        also: Callable[[Transaction], None] | None = None,
    ) -> Customer: ...

    def update(self, before: Customer, after: Customer, audit: AuditEntry | None = None) -> Customer: ...

    def update_setting_email(
        self, before: Customer, after: Customer, audit: AuditEntry | None, pending: EmailChange | None
    ) -> Customer: ...

    def email_change(self, customer_id: str, *, consistent: bool = False) -> EmailChange | None: ...

    def withdraw_email_change(
        self, before: Customer, pending: EmailChange, at: datetime, audit: AuditEntry
    ) -> None: ...

    def delete(self, customer: Customer, deleted_at: datetime, audit: AuditEntry | None = None) -> None: ...

    def running_merge(self, customer_id: str) -> str | None: ...

    def by_email(self, key: str) -> Customer | None: ...

    def list_newest(self, limit: int, start: Key | None) -> tuple[list[Customer], Key | None]: ...

    def search(
        self, query_words: list[str], limit: int, start: Key | None
    ) -> tuple[list[Customer], Key | None]: ...


class EmailChanges(Protocol):
    """A customer's own change of address, pending until its link is confirmed."""

    def get(self, customer_id: str, *, consistent: bool = False) -> Customer | None: ...

    def email_change(self, customer_id: str, *, consistent: bool = False) -> EmailChange | None: ...

    def request_email_change(
        self,
        before: Customer,
        after: Customer,
        change: EmailChange,
        audit: AuditEntry,
        replacing: EmailChange | None,
    ) -> Customer: ...

    def confirm_email_change(
        self, before: Customer, after: Customer, change: EmailChange, at: datetime, audit: AuditEntry
    ) -> Customer: ...

    def claim_confirmation_mail(self, change: EmailChange, at: datetime) -> bool: ...

    def give_back_confirmation_mail(self, change: EmailChange, claimed_at: datetime) -> None: ...


class ErasableCustomers(ProfileReader, Protocol):
    def erased_at(self, customer_id: str, *, consistent: bool = False) -> str | None: ...

    def running_merge(self, customer_id: str) -> str | None: ...

    def mark_erased(self, customer_id: str, erased_at: datetime, audit: AuditEntry) -> None: ...

    def erase(
        self,
        customer: Customer,
        erased_at: datetime,
        audit: AuditEntry,
        loyalty_version: int | None,
        anonymous: dict | None,
    ) -> None: ...


class Interactions(Protocol):
    def get(
        self, customer_id: str, interaction_id: str, *, consistent: bool = False
    ) -> Interaction | None: ...

    def add(
        self, interaction: Interaction, purchase_after_return: Interaction | None = None
    ) -> Interaction: ...

    def timeline(
        self, customer_id: str, type_: str | None, limit: int, start: Key | None
    ) -> tuple[list[Interaction], Key | None]: ...


class Cases(Protocol):
    def create(self, case: Case, audit: AuditEntry | None = None) -> str: ...

    def get(self, case_id: str, *, consistent: bool = False) -> Case | None: ...

    def update(
        self,
        before: Case,
        after: Case,
        timeline_entry: Interaction | None = None,
        audit: AuditEntry | None = None,
    ) -> Case: ...

    def history(
        self, case_id: str, limit: int, start: Key | None
    ) -> tuple[list[HistoryEntry], Key | None]: ...

    def whole_history(self, case_id: str) -> tuple[HistoryEntry, ...]: ...

    def list(
        self,
        *,
        status: str | None,
        severity: str | None,
        assignee: str | None,
        due_before: datetime | None,
        limit: int,
        start: Key | None,
    ) -> tuple[list[Case], Key | None]: ...

    def of_customer(
        self, customer_id: str, limit: int, start: Key | None
    ) -> tuple[list[Case], Key | None]: ...

    def overdue(self, now: datetime) -> Iterable[str]: ...


class Products(Protocol):
    def get(self, sku: str, consistent: bool = False) -> Product | None: ...

    def get_many(self, skus: Iterable[str]) -> dict[str, Product]: ...

    def add(self, product: Product, audit: AuditEntry) -> Product: ...

    def update(self, before: Product, after: Product, audit: AuditEntry) -> Product: ...

    def list(
        self, limit: int, start: Key | None, active: bool | None
    ) -> tuple[list[Product], Key | None]: ...


class Loyalty(Protocol):
    def load(
        self, customer_ids: Iterable[str], guards: Iterable[GuardKey] = (), habits: Iterable[HabitKey] = ()
    ) -> Loaded: ...

    def save(
        self,
        customer_id: str,
        before: StoredLoyalty | None,
        aggregates: Aggregates,
        scored: Score,
        review_at: datetime | None,
        now: datetime,
        guards: list[tuple[LoyaltyGuard | None, LoyaltyGuard]],
        habits: list[tuple[StoredHabit | None, SkuHabit | None]] = (),
    ) -> None: ...

    def applied_purchases(self, customer_id: str) -> list[Contribution]: ...

    def get(self, customer_id: str, *, consistent: bool = False) -> StoredLoyalty | None: ...

    def get_with_profile(self, customer_id: str) -> tuple[Customer | None, StoredLoyalty | None]: ...

    def first_habits(self, customer_id: str, limit: int) -> list[SkuHabit]: ...

    def habits_due_by(self, customer_id: str, moment: datetime, limit: int) -> list[SkuHabit]: ...

    def habits_expected_after(self, customer_id: str, moment: datetime, limit: int) -> list[SkuHabit]: ...

    def latest_single_habits(self, customer_id: str, limit: int) -> list[SkuHabit]: ...

    def habits_page(
        self, customer_id: str, limit: int, start: Key | None, kept: Mapping[str, SkuHabit]
    ) -> tuple[list[SkuHabit], Key | None]: ...

    def with_all_habits(self, customer_id: str) -> StoredLoyalty | None: ...

    def due_for_review(self, now: datetime) -> Iterable[str]: ...

    def refresh_tier(
        self, before: StoredLoyalty, scored: Score, review_at: datetime | None, now: datetime
    ) -> bool: ...

    def by_tier(self, tier: str, limit: int, start: Key | None) -> tuple[list[StoredLoyalty], Key | None]: ...


class ErasableLoyalty(Protocol):
    def get(self, customer_id: str, *, consistent: bool = False) -> StoredLoyalty | None: ...

    def copy_habits_anonymously(
        self,
        customer_id: str,
        anonymous_id: str,
        scrub: Callable[[dict], dict],
        previously: set[str] = frozenset(),
    ) -> set[str]: ...

    def forget_anonymous_habits(self, anonymous_id: str, skus: Iterable[str]) -> None: ...

    def delete_all_of(self, customer_id: str, deadline: Deadline | None = None) -> int: ...


class SegmentStore(Protocol):
    def add(self, segment: Segment) -> Segment: ...

    def get(self, segment_id: str, *, consistent: bool = False, counted: bool = True) -> Segment | None: ...

    def update(self, before: Segment, after: Segment) -> Segment: ...

    def delete(self, segment: Segment) -> None: ...

    def list(self, limit: int, start: Key | None) -> tuple[list[Segment], Key | None]: ...

    def all(self) -> list[Segment]: ...

    def customers_page(self, limit: int, start: Key | None) -> tuple[list[str], Key | None]: ...

    def page_done(self, segment_id: str, build: int, page: int) -> bool: ...

    def walk_ended(self, segment_id: str, build: int, pages: int) -> None: ...

    def mark_page_done(self, segment_id: str, build: int, page: int, now: datetime) -> None: ...

    def progress(self, segment_id: str) -> Progress | None: ...

    def mark_ready(self, segment_id: str, build: int) -> bool: ...

    def remove_segment_items(self, segment_id: str) -> int: ...


class MembershipStore(Protocol):
    def memberships(self, customer_id: str) -> Memberships: ...

    def write_memberships(
        self, customer_id: str, read: Memberships, changes: list[Change], review_at: datetime | None
    ) -> None: ...

    def members(self, segment_id: str, limit: int, start: Key | None) -> tuple[list[Member], Key | None]: ...

    def members_of_shard(self, segment_id: str, shard: int) -> Iterable[str]: ...

    def due_for_review(self, now: datetime) -> Iterable[str]: ...


class Identities(Protocol):
    def customer_for(self, issuer: str, subject: str, *, consistent: bool = False) -> str | None: ...

    def add_link(self, t: Transaction, identity: Identity, audit: AuditEntry | None = None) -> None: ...

    def link(self, identity: Identity, audit: AuditEntry | None = None) -> bool: ...

    def unlink(
        self, customer_id: str, issuer: str, subject: str, audit: AuditEntry | None = None
    ) -> bool: ...

    def of_customer(self, customer_id: str, *, consistent: bool = False) -> list[Identity]: ...


class Jobs(Protocol):
    def add(self, job: Job, replacing: str | None = None) -> None: ...

    def get(self, job_id: str, *, consistent: bool = False) -> Job | None: ...

    def marked_running(self, customer_id: str, kind: str) -> Job | None: ...

    def complete(
        self, job_id: str, at: datetime, document_key: str | None = None, size_bytes: int | None = None
    ) -> bool: ...

    def fail(self, job_id: str, at: datetime, reason: str) -> bool: ...

    def handed_on(self, job_id: str) -> bool: ...


class Documents(Protocol):
    """Export documents (an S3 bucket)."""

    def key(self, customer_id: str, job_id: str) -> str: ...

    def write(self, key: str, chunks: Iterable[str], filename: str) -> int: ...

    def download_url(self, key: str, expires_in: int) -> str: ...

    def delete(self, key: str) -> None: ...

    def delete_all_of(self, customer_id: str) -> int: ...


class CustomerRemains(Protocol):
    """What an erasure deletes or scrubs per customer, from any store that keeps some."""

    def delete_all_of(self, customer_id: str, deadline: Deadline | None = None) -> int: ...


class CaseRemains(Protocol):
    def delete_all_of(self, customer_id: str) -> int: ...


class JobRemains(Protocol):
    def delete_all_of(self, customer_id: str, kind: str) -> int: ...


class AuditTrail(Protocol):
    """A customer's audit trail: read a page at a time, and scrubbed of personal data at erasure."""

    def of_customer(
        self, customer_id: str, limit: int, start: Key | None
    ) -> tuple[list[AuditEntry], Key | None]: ...

    def scrub(self, customer_id: str, fields: Iterable[str], deadline: Deadline | None = None) -> int: ...


class KnownCustomers(Protocol):
    """Raises NotFound for a customer who never was (a deleted one's trail is still theirs)."""

    def require_known(self, customer_id: str) -> None: ...


class Forgetting(Protocol):
    """Records kept per customer that go with them (idempotency records, sign-in links)."""

    def forget(self, customer_id: str) -> int: ...


class Mailer(Protocol):
    def send(self, to: str, subject: str, text: str) -> str: ...


class WorkQueue(Protocol):
    def send(self, body: dict, delay_s: int = 0) -> None: ...

    def send_many(self, bodies: Iterable[dict]) -> None: ...


class AttemptSeeds(Protocol):
    def seed_for(self, record_id: str, now: datetime, body_sha256: str) -> Seed: ...


class ResponsePointers(Protocol):
    def add(self, customer_id: str, record_id: str, at: datetime) -> None: ...


class CoPurchases(Protocol):
    def bought(self, customer_id: str) -> set[str]: ...

    def paired(self, customer_id: str, sku: str) -> dict[int, set[str]]: ...

    def count_pairs(self, customer_id: str, sku: str, chunk: int, partners: Iterable[str]) -> None: ...

    def count_buyer(self, customer_id: str, sku: str, partners: Iterable[str] = ()) -> None: ...

    def buyers(self, skus: Iterable[str]) -> dict[str, int]: ...

    def pairs(
        self, sku: str, at_least: int, limit: int, start: Key | None
    ) -> tuple[list[tuple[str, int]], Key | None]: ...

    def popular(self, limit: int) -> list[tuple[str, int]]: ...

    def guards_of(self, customer_id: str) -> tuple[set[str], dict[str, dict[int, set[str]]]]: ...

    def withdrawn_chunks(self, customer_id: str, sku: str) -> set[int]: ...

    def withdraw_paired(self, customer_id: str, sku: str, chunk: int, partners: Iterable[str]) -> None: ...

    def withdraw_pairs(self, customer_id: str, sku: str, chunk: int, partners: Iterable[str]) -> None: ...

    def withdraw_buyer(self, customer_id: str, sku: str, partners: Iterable[str]) -> None: ...


class MergingCustomers(ProfileReader, Protocol):
    def erased_at(self, customer_id: str, *, consistent: bool = False) -> str | None: ...


class Merges(Protocol):
    def get(self, merge_id: str, *, consistent: bool = False) -> Merge | None: ...

    def resolve(self, customer_id: str, *, consistent: bool = False) -> str | None: ...

    def running(self, customer_id: str) -> str | None: ...

    def not_duplicates(self, customer_id: str, other_id: str) -> bool: ...

    def counts(self, customer_id: str) -> dict[str, int]: ...

    def start(
        self, merge: Merge, before: Customer, after: Customer, merged: Customer, audit: AuditEntry
    ) -> None: ...


class Duplicates(Protocol):
    """Duplicate detection's lookups and records (store/duplicates.py)."""

    def candidate_ids(self, customer: Customer, *, consistent: bool = False) -> list[str]: ...

    def candidate_ids_of(
        self, customers: list[Customer], *, consistent: bool = False
    ) -> dict[str, list[str]]: ...

    def keys_read(self, customer: Customer) -> frozenset[str]: ...

    def keys_written(self, customer: Customer) -> frozenset[str]: ...

    def not_duplicates(self, customer_id: str) -> set[str]: ...

    def note_candidates(
        self, t: Transaction, customer_id: str, candidates: Iterable[tuple[str, float]], at: datetime
    ) -> None: ...

    def record_not_duplicate(
        self, customer_id: str, other_id: str, at: datetime, recorded_by: str, audit: AuditEntry
    ) -> bool: ...
