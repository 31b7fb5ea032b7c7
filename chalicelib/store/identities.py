"""Sign-in identities linked to customers: which customer a Cognito user (issuer + `sub`) is.

Two items per link, written and removed in one transaction: the lookup `IDENTITY#<iss>#<sub>`
/ `IDENTITY` (one GetItem per self-service request with such a token) and the pointer
`CUSTOMER#<id>` / `IDENTITY#<iss>#<sub>`, by which a customer's identities are listed, and
removed with the customer (one Query on the customer's partition, never a Scan).
"""

from __future__ import annotations

from pynamodb.exceptions import DeleteError, DoesNotExist, TransactWriteError
from pynamodb.transactions import TransactWrite

from chalicelib.domain.audit import AuditEntry
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.identities import Identity
from chalicelib.domain.storage import IdentityTaken, NotFound
from chalicelib.store.audit import audit_item
from chalicelib.store.customer_items import check_profile_exists
from chalicelib.store.keys import IDENTITY_PREFIX, customer_pk, identity_key, storable
from chalicelib.store.models import IdentityModel, IdentityPointerModel
from chalicelib.store.transactions import failed_conditions, transaction

LOOKUP_SK = "IDENTITY"


class IdentityRepository:
    def __init__(self, region: str) -> None:
        self._region = region

    def customer_for(self, issuer: str, subject: str, *, consistent: bool = False) -> str | None:
        if not storable(issuer, subject):
            return None
        try:
            return IdentityModel.get(
                identity_key(issuer, subject), LOOKUP_SK, consistent_read=consistent
            ).customer_id
        except DoesNotExist:
            return None

    @staticmethod
    def add_link(t: TransactWrite, identity: Identity, audit: AuditEntry | None = None) -> None:
        """In `t`: the link's two items, the lookup conditional on its absence (a user has one
        customer). For a customer created in `t` itself; `link` for one that exists."""
        key = identity_key(identity.issuer, identity.subject)
        fields = {
            "issuer": identity.issuer,
            "subject": identity.subject,
            "linked_at": to_rfc3339(identity.linked_at),
            "linked_by": identity.linked_by,
        }
        t.save(
            IdentityModel(key, LOOKUP_SK, customer_id=identity.customer_id, **fields),
            condition=IdentityModel.pk.does_not_exist(),
        )
        t.save(IdentityPointerModel(customer_pk(identity.customer_id), key, **fields))
        if audit is not None:
            t.save(audit_item(audit))

    def link(self, identity: Identity, audit: AuditEntry | None = None) -> bool:
        """Link the identity to its customer (who must exist): True if it is now, False if it
        already was (nothing written); IdentityTaken if another customer has it.

        The check that the profile exists is part of the transaction, and DynamoDB serializes
        it with the delete or erasure of that profile (also a transaction on it): a link
        either commits before the profile goes, and its pointer is there for the purge that
        follows (`forget`), or fails as NotFound."""
        try:
            with transaction(self._region) as t:
                check_profile_exists(t, identity.customer_id)
                self.add_link(t, identity, audit)
        except TransactWriteError as error:
            failed = failed_conditions(error)
            if failed and failed[0]:
                raise NotFound(identity.customer_id) from error
            owner = self.customer_for(identity.issuer, identity.subject, consistent=True)
            if owner == identity.customer_id:
                return False
            if owner is not None:
                raise IdentityTaken(owner) from error
            raise
        return True

    def unlink(self, customer_id: str, issuer: str, subject: str, audit: AuditEntry | None = None) -> bool:
        """Remove the link if it is this customer's: False if there was none."""
        key = identity_key(issuer, subject)
        try:
            with transaction(self._region) as t:
                t.delete(IdentityModel(key, LOOKUP_SK), condition=IdentityModel.customer_id == customer_id)
                t.delete(IdentityPointerModel(customer_pk(customer_id), key))
                if audit is not None:
                    t.save(audit_item(audit))
        except TransactWriteError as error:
            if any(failed_conditions(error)):
                return False
            raise
        return True

    def of_customer(self, customer_id: str, *, consistent: bool = False) -> list[Identity]:
        return [
            Identity(customer_id, p.issuer, p.subject, parse_rfc3339(p.linked_at), p.linked_by)
            for p in IdentityPointerModel.query(
                customer_pk(customer_id),
                IdentityPointerModel.sk.startswith(IDENTITY_PREFIX),
                consistent_read=consistent,
            )
        ]

    def forget(self, customer_id: str) -> int:
        """Remove every link of a deleted or erased customer (idempotent): each lookup first,
        then its pointer, so no lookup is ever left without the pointer that finds it. The
        pointers are read strongly consistent: a link committed just before the profile went
        must be seen here, or the loyalty purge that follows (which sees it) would remove its
        pointer and leave the lookup, naming a gone customer, with nothing to find it by."""
        identities = self.of_customer(customer_id, consistent=True)
        for identity in identities:
            key = identity_key(identity.issuer, identity.subject)
            try:
                IdentityModel(key, LOOKUP_SK).delete(condition=IdentityModel.customer_id == customer_id)
            except DeleteError as error:
                if error.cause_response_code != "ConditionalCheckFailedException":
                    raise  # else the lookup was re-linked to someone else meanwhile: it stays
            IdentityPointerModel(customer_pk(customer_id), key).delete()
        return len(identities)
