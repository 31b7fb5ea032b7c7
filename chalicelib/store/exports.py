"""Export documents in the exports bucket (infra/resources.json: encrypted, no public access,
deleted by a lifecycle rule after 7 days), under `exports/<customer id>/<job id>.json`.

A document is written as it is produced, in parts of PART_BYTES (S3 multipart upload), so an
export of any size holds at most one part in memory; one smaller than a part is one PutObject.
It is read through presigned GET URLs, made when a job is read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from functools import cached_property

PREFIX = "exports/"
PART_BYTES = 8 * 1024 * 1024  # S3 takes parts of 5 MiB and more (the last one may be smaller)
CONTENT_TYPE = "application/json; charset=utf-8"
DELETE_BATCH = 1000  # DeleteObjects' maximum


class ExportDocuments:
    def __init__(self, bucket: str, region: str, part_bytes: int = PART_BYTES) -> None:
        self._bucket = bucket
        self._region = region
        self._part_bytes = part_bytes

    @cached_property
    def _client(self):
        import boto3
        from botocore.config import Config

        # Virtual-hosted, regional URLs (https://<bucket>.s3.<region>.amazonaws.com/...): a
        # presigned URL on the global endpoint is redirected for new buckets and then refused.
        # Against a local endpoint (an IP and port) botocore falls back to path style.
        config = Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
        return boto3.client("s3", region_name=self._region, config=config)

    @staticmethod
    def key(customer_id: str, job_id: str) -> str:
        return f"{PREFIX}{customer_id}/{job_id}.json"

    def write(self, key: str, chunks: Iterable[str], filename: str) -> int:
        """Store the concatenation of `chunks` (UTF-8) at `key`; returns its size in bytes."""
        client = self._client
        attributes = {"ContentType": CONTENT_TYPE, "ContentDisposition": f'attachment; filename="{filename}"'}
        buffer = bytearray()
        size = 0
        upload_id: str | None = None
        parts: list[dict] = []
        try:
            for chunk in chunks:
                data = chunk.encode("utf-8")
                size += len(data)
                buffer += data
                if len(buffer) >= self._part_bytes:
                    if upload_id is None:
                        upload_id = client.create_multipart_upload(
                            Bucket=self._bucket, Key=key, **attributes
                        )["UploadId"]
                    parts.append(self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
                    buffer.clear()
            if upload_id is None:
                client.put_object(Bucket=self._bucket, Key=key, Body=bytes(buffer), **attributes)
                return size
            if buffer:
                parts.append(self._upload_part(key, upload_id, len(parts) + 1, bytes(buffer)))
            client.complete_multipart_upload(
                Bucket=self._bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
            )
            return size
        except BaseException:
            if upload_id is not None:
                # The bucket's lifecycle rule aborts what this cannot (after a day).
                with contextlib.suppress(Exception):
                    client.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=upload_id)
            raise

    def _upload_part(self, key: str, upload_id: str, number: int, body: bytes) -> dict:
        reply = self._client.upload_part(
            Bucket=self._bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=body
        )
        return {"PartNumber": number, "ETag": reply["ETag"]}

    def download_url(self, key: str, expires_in: int) -> str:
        """A presigned GET of the document, valid `expires_in` seconds (and no longer than the
        credentials that sign it: a Lambda role's last for hours)."""
        return self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
        )

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self._bucket, Key=key)

    def delete_all_of(self, customer_id: str) -> int:
        """Delete every document of the customer (a listing of their prefix, not of the bucket)."""
        client = self._client
        removed = 0
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=f"{PREFIX}{customer_id}/"
        )
        for page in pages:
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            for start in range(0, len(keys), DELETE_BATCH):
                batch = keys[start : start + DELETE_BATCH]
                reply = client.delete_objects(Bucket=self._bucket, Delete={"Objects": batch, "Quiet": True})
                if reply.get("Errors"):
                    first = reply["Errors"][0]
                    raise RuntimeError(
                        f"S3 did not delete {len(reply['Errors'])} export(s): {first.get('Code')}"
                    )
                removed += len(batch)
        return removed
