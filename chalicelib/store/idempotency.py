"""Pointers from a customer to the idempotency records that hold their data, and the seeds
of keyed requests' attempts.

Powertools keys a record by a hash of the scoped `Idempotency-Key` (table
`crm-<stage>-idempotency`, pk `id`), so nothing there can be found by customer. After a
response is stored, the API writes a pointer under the customer concerned (pk CUSTOMER#<id>,
sk IDEMPOTENCY#<record id>); erasing or purging a customer queries those pointers (one Query
on the customer's partition, no Scan) and deletes the records they name, then the pointers.
"""

from __future__ import annotations

import os
from datetime import datetime
from functools import lru_cache

from pynamodb.exceptions import PutError

from chalicelib.config import get_settings
from chalicelib.domain.attempts import Seed
from chalicelib.domain.clock import parse_rfc3339, to_rfc3339
from chalicelib.domain.storage import KeyReused
from chalicelib.store.keys import IDEMPOTENCY_PREFIX, customer_pk
from chalicelib.store.models import ATTEMPT_LIFETIME_S, SEED_PREFIX, AttemptModel, IdempotencyPointerModel
from chalicelib.store.transactions import error_code


@lru_cache(maxsize=4)
def _client(region: str):
    import boto3

    return boto3.client("dynamodb", region_name=region)


class IdempotencyPointers:
    def __init__(self, region: str, table: str | None = None) -> None:
        self._region = region
        self._table = table or get_settings().idempotency_table

    def add(self, customer_id: str, record_id: str, at: datetime) -> None:
        IdempotencyPointerModel(
            customer_pk(customer_id), f"{IDEMPOTENCY_PREFIX}{record_id}", created_at=to_rfc3339(at)
        ).save()

    def record_ids(self, customer_id: str) -> list[str]:
        return [
            item.sk.removeprefix(IDEMPOTENCY_PREFIX)
            for item in IdempotencyPointerModel.query(
                customer_pk(customer_id),
                IdempotencyPointerModel.sk.startswith(IDEMPOTENCY_PREFIX),
                attributes_to_get=["pk", "sk"],
            )
        ]

    def forget(self, customer_id: str) -> int:
        """Delete the customer's idempotency records, then the pointers to them (a record
        first: a pointer without a record is harmless, a record without a pointer is lost)."""
        record_ids = self.record_ids(customer_id)
        client = _client(self._region)
        for record_id in record_ids:
            client.delete_item(TableName=self._table, Key={"id": {"S": record_id}})
            client.delete_item(TableName=self._table, Key={"id": {"S": f"{SEED_PREFIX}{record_id}"}})
        with IdempotencyPointerModel.batch_write() as batch:
            for record_id in record_ids:
                batch.delete(
                    IdempotencyPointerModel(customer_pk(customer_id), f"{IDEMPOTENCY_PREFIX}{record_id}")
                )
        return len(record_ids)


class AttemptSeeds:
    """One seed per keyed request (the Powertools record id names it), kept for 24 hours after
    its last attempt (see domain/attempts.py)."""

    def seed_for(self, record_id: str, now: datetime, body_sha256: str) -> Seed:
        """The seed this attempt runs under. An earlier attempt that committed something
        hands on its seed (`repeat`), or raises `KeyReused` if its body was another; one that
        committed nothing leaves no trace: this attempt starts afresh with its own time."""
        if not record_id:
            raise ValueError("an idempotency record id is needed")
        key = f"{SEED_PREFIX}{record_id}"
        epoch = int(now.timestamp())
        for _ in range(3):
            stored = self._stored(key, epoch)
            fresh = AttemptModel(
                key,
                expiration=epoch + ATTEMPT_LIFETIME_S,
                at=to_rfc3339(now, timespec="microseconds"),
                nonce=os.urandom(16).hex(),
                body_sha256=body_sha256,
            )
            if stored is not None and stored.claims:
                if stored.body_sha256 != body_sha256:
                    raise KeyReused(record_id)
                # A chain of retries keeps the seed for 24 hours after the last of them.
                stored.update(actions=[AttemptModel.expiration.set(epoch + ATTEMPT_LIFETIME_S)])
                first_at = parse_rfc3339(stored.at or "")
                return Seed(key, bytes.fromhex(stored.nonce or ""), first_at, True)
            # Replaced only as it was read, so two attempts never take one another's seed.
            unchanged = (
                AttemptModel.id.does_not_exist() | (AttemptModel.expiration < epoch)
                if stored is None
                else (AttemptModel.nonce == stored.nonce) & AttemptModel.claims.does_not_exist()
            )
            try:
                fresh.save(condition=unchanged)
            except PutError as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise
                continue
            return Seed(key, bytes.fromhex(fresh.nonce or ""), now, False)
        raise RuntimeError(f"no seed could be stored or read for {record_id}")

    @staticmethod
    def _stored(key: str, epoch: int) -> AttemptModel | None:
        try:
            stored = AttemptModel.get(key, consistent_read=True)
        except AttemptModel.DoesNotExist:
            return None
        # Expired (DynamoDB's TTL deletes within days, not on the second): the key is new again.
        return None if stored.expiration < epoch else stored
