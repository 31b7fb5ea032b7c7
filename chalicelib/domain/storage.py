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


class VersionConflict(StorageError):
    """The record changed since it was read: a lost race, worth reading again."""


class ConditionFailed(StorageError):
    """A condition of the write does not hold, and will not by retrying the same write."""


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
    """A job of that kind runs for the customer already."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(customer_id)
        self.customer_id = customer_id
