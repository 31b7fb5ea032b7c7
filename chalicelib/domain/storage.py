"""What a repository can answer besides a result: one exception per condition, shared by every
repository, so that a service tells them apart without knowing which table it asked."""

from __future__ import annotations


class StorageError(Exception):
    """A write or read that could not be done as asked; nothing was written."""


class NotFound(StorageError):
    """No such record, and none was ever deleted under that id."""


class Gone(StorageError):
    """The record was deleted (a tombstone says so)."""


class AlreadyExists(StorageError):
    """A record with that key (or unique value) exists already."""


class EmailTaken(AlreadyExists):
    """Another customer has the email address."""

    def __init__(self, email: str | None) -> None:
        super().__init__(email)
        self.email = email


class IdentityTaken(AlreadyExists):
    """The sign-in identity is linked to another customer, `owner`."""

    def __init__(self, owner: str) -> None:
        super().__init__(owner)
        self.owner = owner


class JobRunning(AlreadyExists):
    """Another job of the kind runs for the customer (it started since it was looked for)."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(customer_id)
        self.customer_id = customer_id


class KeyReused(AlreadyExists):
    """An earlier attempt with this Idempotency-Key and another body committed (its response
    was never stored, so the idempotency record cannot tell): this one must not run."""


class LimitReached(StorageError):
    """A bounded collection is full: the write would pass its bound."""


class VersionConflict(StorageError):
    """The record changed since it was read: a lost race, worth reading again. Where a write
    relied on several records, `record` may name the one that changed, so that a caller reads
    again only that one."""

    def __init__(self, *args: object, record: str | None = None) -> None:
        super().__init__(*args)
        self.record = record


class MailRefused(StorageError):
    """The mail service refused the message or could not be reached: it was not taken, so
    sending it again is safe. (An ambiguous failure, such as a read timeout after sending, is
    not this: the message may have been taken.)"""


class ConditionFailed(StorageError):
    """A condition of the write does not hold, and will not by retrying the same write."""
