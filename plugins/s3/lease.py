"""The S3 processing lease and ``nextseq``, with S3's own conditional writes.

S3 has real compare-and-swap: ``If-None-Match: *`` creates an object only if
absent, ``If-Match: ETAG`` replaces or deletes it only if unchanged.  So the
lease object ``nextseq.lease`` is a :class:`spooler.lease.LeaseStore` with
atomic operations, and ``nextseq`` is replaced with ``If-Match`` on the ETag
it was read with (every sequence write is fenced).  The lease's age is the
server's ``Date`` minus the object's ``Last-Modified``: one clock, the
server's, never ours.

These calls use the plain botocore client (thread-safe: the heartbeat
renews from its own thread while jobs run).
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from contextlib import AbstractContextManager
from email.utils import parsedate_to_datetime
from typing import Any

from spooler_plugins.s3.upload import client_errors

from spooler.errors import SpoolError
from spooler.lease import Conflict, LeaseStore, LockCopy
from spooler.seqfile import parse_seq


def _conditional(where: str, method: str) -> AbstractContextManager[None]:
    """S3 answers as the lease protocol's exceptions: 412 is :class:`Conflict`."""
    return client_errors(where, method, Conflict)


class S3Object:
    """One small object read and written whole, conditionally."""

    def __init__(self, client: Any, bucket: str, key: str, extras: Mapping[str, Any]) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.extras = dict(extras)
        self.where = f"s3://{bucket}/{key}"

    def get(self) -> tuple[bytes, str, float | None] | None:
        """(body, ETag, age by the server's clock) or None when absent."""
        try:
            with _conditional(self.where, "GetObject"):
                reply = self.client.get_object(Bucket=self.bucket, Key=self.key, **self.extras)
                body = reply["Body"].read()
        except FileNotFoundError:
            return None
        return body, reply["ETag"], _server_age(reply)

    def put(self, body: bytes, **condition: str) -> str:
        with _conditional(self.where, "PutObject"):
            reply = self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=body, **condition, **self.extras
            )
        return str(reply["ETag"])

    def delete(self, etag: str) -> None:
        with _conditional(self.where, "DeleteObject"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key, IfMatch=etag)


def _server_age(reply: Mapping[str, Any]) -> float | None:
    """The server's ``Date`` header minus the object's ``Last-Modified``."""
    modified = reply.get("LastModified")
    date = reply.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    if modified is None or not date:
        return None
    try:
        age: float = (parsedate_to_datetime(date) - modified).total_seconds()
        return age
    except (TypeError, ValueError):
        return None


class S3LeaseStore(LeaseStore):
    """``nextseq.lease`` (see the module docstring)."""

    def __init__(self, obj: S3Object) -> None:
        self.obj = obj

    def create(self, body: bytes) -> str:
        try:
            return self.obj.put(body, IfNoneMatch="*")
        except Conflict:
            raise FileExistsError(errno.EEXIST, "leased", self.obj.where) from None

    def read(self) -> LockCopy | None:
        got = self.obj.get()
        return None if got is None else LockCopy(got[0], got[1], got[2])

    def replace(self, body: bytes, version: str) -> str:
        return self.obj.put(body, IfMatch=version)

    def delete(self, version: str) -> None:
        try:
            self.obj.delete(version)
        except FileNotFoundError:
            pass


class SequenceObject:
    """``nextseq``, read with its ETag and replaced only if unchanged since."""

    def __init__(self, obj: S3Object, location: str) -> None:
        self.obj = obj
        self.location = location
        self.etag = ""

    def read(self) -> int:
        got = self.obj.get()
        if got is None:
            raise SpoolError(f"{self.location}: nextseq is missing")
        body, self.etag, _ = got
        return parse_seq(body.decode("ascii", "replace"), self.location)

    def write(self, value: int) -> None:
        if not self.etag:
            self.read()
        try:
            self.etag = self.obj.put(b"%d\n" % value, IfMatch=self.etag)
        except Conflict:
            raise SpoolError(
                f"{self.location}: nextseq was changed by someone else; stopping"
            ) from None
