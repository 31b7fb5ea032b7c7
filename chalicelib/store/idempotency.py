"""Pointers from a customer to the idempotency records that hold their data.

Powertools keys a record by a hash of the scoped `Idempotency-Key` (table
`crm-<stage>-idempotency`, pk `id`), so nothing there can be found by customer. After a
response is stored, the API writes a pointer under the customer concerned (pk CUSTOMER#<id>,
sk IDEMPOTENCY#<record id>); erasing or purging a customer queries those pointers (one Query
on the customer's partition, no Scan) and deletes the records they name, then the pointers.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

from chalicelib.config import get_settings
from chalicelib.domain.clock import to_rfc3339
from chalicelib.store.models import IDEMPOTENCY_PREFIX, IdempotencyPointerModel, customer_pk


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
        with IdempotencyPointerModel.batch_write() as batch:
            for record_id in record_ids:
                batch.delete(
                    IdempotencyPointerModel(customer_pk(customer_id), f"{IDEMPOTENCY_PREFIX}{record_id}")
                )
        return len(record_ids)
