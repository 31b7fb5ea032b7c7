"""Uploaded import files in the imports bucket (infra/resources.json: encrypted, no public
access, deleted by a lifecycle rule after 7 days), under `imports/<import id>`.

A client uploads through a presigned PUT; the import reads the file in byte ranges (GetObject
with Range), as streams, never whole into memory.
"""

from __future__ import annotations

from functools import cached_property
from typing import BinaryIO


class ImportFiles:
    def __init__(self, bucket: str, region: str) -> None:
        self._bucket = bucket
        self._region = region

    @cached_property
    def _client(self):
        import boto3
        from botocore.config import Config

        # Virtual-hosted, regional URLs (https://<bucket>.s3.<region>.amazonaws.com/...), as for
        # the exports; against a local endpoint (an IP and port) botocore uses path style.
        config = Config(signature_version="s3v4", s3={"addressing_style": "virtual"})
        return boto3.client("s3", region_name=self._region, config=config)

    def upload_url(self, key: str, expires_in: int) -> str:
        """A presigned PUT of the object, valid `expires_in` seconds. It signs no headers but
        the host, so `curl -T file "<url>"` works as it is."""
        return self._client.generate_presigned_url(
            "put_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in, HttpMethod="PUT"
        )

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            return int(self._client.head_object(Bucket=self._bucket, Key=key)["ContentLength"])
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    def read(self, key: str, start: int, end: int) -> bytes:
        """The bytes [start, end) of the object (fewer if it is shorter)."""
        if end <= start:
            return b""
        reply = self._client.get_object(Bucket=self._bucket, Key=key, Range=f"bytes={start}-{end - 1}")
        return reply["Body"].read()

    def stream(self, key: str, start: int) -> BinaryIO:
        """The object from byte `start` to its end, as a stream read on demand."""
        reply = self._client.get_object(Bucket=self._bucket, Key=key, Range=f"bytes={start}-")
        return reply["Body"]
