"""The S3 backend: objects in a bucket of AWS S3 or of any S3-compatible store (MinIO, Ceph, R2, …), via boto3.

Configuration is the standard AWS one, never a Restyle setting, so the usual tools and docs apply:

- endpoint: ``AWS_ENDPOINT_URL`` (or ``AWS_ENDPOINT_URL_S3``, which wins), or the profile's ``endpoint_url``;
  unset, AWS itself;
- region: ``AWS_DEFAULT_REGION`` or the profile's ``region``;
- credentials: the default chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, the shared credentials and
  config files with ``AWS_PROFILE``, SSO, container and instance roles);
- addressing: path-style (``endpoint/bucket/key``) whenever an endpoint is set, virtual-hosted
  (``bucket.endpoint/key``) otherwise. botocore reads no environment variable for it (there is no
  ``AWS_S3_ADDRESSING_STYLE``): only the config file's ``s3 =`` section, ``addressing_style = virtual | path``
  (``AWS_CONFIG_FILE`` names the file).

Retries: every request goes through botocore's "standard" retry mode with 10 attempts (the first and up to
nine retries) and per-attempt timeouts of 2 s to connect and 10 s for each read. It retries connection
failures, timeouts, HTTP 500/502/503/504, RequestTimeout and throttling (SlowDown, HTTP 429 and the other
throttling codes); it does not retry other client errors, so a missing key, a missing bucket or refused
credentials fail at once. The waits between attempts grow exponentially with full jitter: random(0, 1) ×
50 ms × 2^i after the i-th failure (i = 0…8), at most 25.6 s in all and typically about 13 s, so a store
that refuses connections for 5 s is ridden out 97 % of the time (3 s: 99.7 %); after throttling
random(0, 1) × min(2^i s, 20 s), at most 111 s and typically about a minute. Hanging connections add their
timeouts to that (up to 10 × 2 s to connect, 10 × 10 s for a server that accepts but never answers). Each
process also keeps botocore's retry quota: 500 units, 14 per retry (5 per throttled retry), refilled by
successful requests, so in a long outage it soon stops retrying and fails fast until the store answers again.
Then, or when a failure is not retried, a call raises ``StorageUnavailable`` with one line naming the bucket,
the endpoint and the problem. These are botocore 1.44's numbers (earlier releases wait from 1 s for every
error), hence ``boto3>=1.44``; ``AWS_MAX_ATTEMPTS`` and ``AWS_RETRY_MODE`` do not change them.

Atomicity: a PUT and a completed multi-part upload replace an object whole, so readers see the old object or
the new one, never a part; a multi-part upload that fails is aborted by boto3's managed transfer, so no
parts are left behind to pay for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, BinaryIO

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from restyle.storage import InvalidStorageUrl, ObjectNotFound, StorageUnavailable, check_key

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

MAX_ATTEMPTS = 10
CONNECT_TIMEOUT_SECONDS = 2.0
READ_TIMEOUT_SECONDS = 10.0

PART_BYTES = 8 * 2**20
# Parts in flight and parts read ahead, per upload: an upload holds at most about this many parts in memory.
_PARTS_AT_ONCE = 4


class S3Storage:
    """Objects under ``prefix/`` in ``bucket`` (the whole bucket when ``prefix`` is empty).

    ``max_attempts`` and the timeouts exist so that tests can fail fast; deployments keep the defaults that the
    module docstring describes.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        max_attempts: int = MAX_ATTEMPTS,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        read_timeout: float = READ_TIMEOUT_SECONDS,
    ) -> None:
        if prefix:
            try:
                check_key(prefix)
            except ValueError:
                raise InvalidStorageUrl(
                    f"the prefix {prefix!r} of bucket {bucket} is not a valid storage key"
                ) from None
        self.bucket = bucket
        self.prefix = prefix
        config = Config(
            retries={"mode": "standard", "total_max_attempts": max_attempts},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # Without it boto3 presigns with the deprecated SigV2, which newer AWS regions refuse.
            signature_version="s3v4",
        )
        # A session of its own: boto3's default session is module state that caches credentials.
        self._client: S3Client = boto3.session.Session().client("s3", config=config)
        self.endpoint: str = self._client.meta.endpoint_url
        self._transfer = TransferConfig(
            multipart_threshold=PART_BYTES,
            multipart_chunksize=PART_BYTES,
            max_concurrency=_PARTS_AT_ONCE,
            # Not the CRT transfer that boto3 may pick when awscrt is installed: the memory bound below and the
            # abort of failed uploads are the classic transfer's (and what the tests check).
            preferred_transfer_client="classic",
        )
        # s3transfer's knob, which boto3's constructor does not take: its default (10 parts) would hold a whole
        # upload of the default size limit in memory.
        self._transfer.max_in_memory_upload_chunks = _PARTS_AT_ONCE

    def put(self, key: str, data: bytes) -> None:
        name = self._name(key)
        with self._translated(key):
            self._client.put_object(Bucket=self.bucket, Key=name, Body=data)

    def put_file(self, key: str, source: BinaryIO) -> None:
        """A single PUT up to 8 MiB, else a multi-part upload of 8 MiB parts."""
        name = self._name(key)
        with self._translated(key):
            self._client.upload_fileobj(source, self.bucket, name, Config=self._transfer)

    def get(self, key: str) -> bytes:
        name = self._name(key)
        with self._translated(key):
            return self._client.get_object(Bucket=self.bucket, Key=name)["Body"].read()

    def delete(self, key: str) -> None:
        name = self._name(key)
        with self._translated(key):
            self._client.delete_object(Bucket=self.bucket, Key=name)

    def exists(self, key: str) -> bool:
        name = self._name(key)
        with self._translated(key):
            try:
                self._client.head_object(Bucket=self.bucket, Key=name)
            except ClientError as error:
                if _status(error) != 404:
                    raise
                # A HEAD answer has no body, so its 404 cannot tell a missing key from a missing bucket.
                self._client.head_bucket(Bucket=self.bucket)
                return False
        return True

    def delete_folder(self, prefix: str) -> None:
        folder = self._name(prefix) + "/"
        with self._translated():
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder)
            for page in pages:
                # A page lists at most 1000 keys, which is also the most that one DeleteObjects takes.
                objects: list[ObjectIdentifierTypeDef] = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if objects:
                    self._delete_batch(folder, objects)

    def _delete_batch(self, folder: str, objects: list[ObjectIdentifierTypeDef]) -> None:
        """DeleteObjects answers 200 even when some keys were not deleted; those come back as errors."""
        errors = self._client.delete_objects(Bucket=self.bucket, Delete={"Objects": objects, "Quiet": True}).get(
            "Errors", []
        )
        if errors:
            raise StorageUnavailable(
                f"S3 at {self.endpoint} did not delete {len(errors)} objects under {folder} in bucket "
                f"{self.bucket}: {errors[0].get('Code', 'unknown error')}"
            )

    def download_url(self, key: str, *, media_type: str, filename: str, expires_seconds: int) -> str | None:
        """A presigned GET: whoever holds the URL may download the object until it expires, without credentials."""
        name = self._name(key)
        with self._translated(key):
            return self._client.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": self.bucket,
                    "Key": name,
                    "ResponseContentType": media_type,
                    "ResponseContentDisposition": _inline(filename),
                },
                ExpiresIn=expires_seconds,
            )

    def check(self) -> None:
        """HEAD the bucket: it must exist and accept the credentials (it proves no permission to write)."""
        with self._translated():
            self._client.head_bucket(Bucket=self.bucket)

    def describe(self) -> str:
        location = f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket
        return f"s3://{location} at {self.endpoint}"

    def _name(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextmanager
    def _translated(self, key: str | None = None) -> Iterator[None]:
        """The one place where boto3's errors become the storage errors (after botocore's retries)."""
        try:
            yield
        except ClientError as error:
            if key is not None and _code(error) == "NoSuchKey":
                raise ObjectNotFound(key) from None
            raise StorageUnavailable(self._refusal(error)) from error
        except (NoCredentialsError, PartialCredentialsError) as error:
            raise StorageUnavailable(
                f"no usable AWS credentials for S3 bucket {self.bucket} at {self.endpoint} (set AWS_ACCESS_KEY_ID "
                "and AWS_SECRET_ACCESS_KEY, a profile or a role)"
            ) from error
        except (ConnectionError, HTTPClientError) as error:
            raise StorageUnavailable(
                f"cannot reach S3 at {self.endpoint} for bucket {self.bucket}: {_one_line(error)}"
            ) from error
        except BotoCoreError as error:
            raise StorageUnavailable(
                f"S3 client failed for bucket {self.bucket} at {self.endpoint}: {_one_line(error)}"
            ) from error

    def _refusal(self, error: ClientError) -> str:
        """One line for an error answer: by its code and status, never its message (which may quote headers)."""
        status = _status(error)
        if _code(error) == "NoSuchBucket" or (error.operation_name == "HeadBucket" and status == 404):
            return f"S3 bucket {self.bucket} does not exist at {self.endpoint}"
        if status in (401, 403):
            return (
                f"S3 at {self.endpoint} refused access to bucket {self.bucket}: {_reason(error)}; check the "
                "credentials and the bucket's policy"
            )
        attempts = error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        return f"S3 at {self.endpoint} answered {_reason(error)} for bucket {self.bucket}{tried}"


def _code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def _reason(error: ClientError) -> str:
    """``SlowDown (HTTP 503)``; an answer to HEAD has no body, so botocore's code is just the status there."""
    code, status = _code(error), f"HTTP {_status(error)}"
    return status if code in ("", str(_status(error))) else f"{code} ({status})"


def _status(error: ClientError) -> int | None:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _inline(filename: str) -> str:
    """A Content-Disposition that shows the file in the browser and saves it under ``filename``."""
    quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
    return f'inline; filename="{quoted}"'


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
