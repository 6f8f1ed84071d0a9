"""Queues in S3 buckets (s3://BUCKET/PREFIX): s3fs to list and read, botocore to deliver.

S3 has no rename and no directories, but it has what a spool needs:

* **create-only writes**: ``PutObject`` and ``CompleteMultipartUpload`` with
  ``If-None-Match: *`` never replace an object, and a multipart upload
  becomes visible only when completed, so a job appears under its
  ``fspl-*.fspl`` key only when whole;
* **compare-and-swap**: ``If-Match: ETAG`` on ``PutObject`` and
  ``DeleteObject``, which carries the sequence number and the lease.

Processing in place takes the lease of :mod:`.lease` (the protocol of
:mod:`spooler.lease` on those conditional writes, judged by the server's
clock only), and ``queue-write`` refuses a prefix that holds no queue, so a
typo cannot create one.  See docs/transports/s3.md.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from functools import cached_property
from typing import TYPE_CHECKING, Any, BinaryIO

from spooler_plugins.fsspec.transport import FsspecTransport
from spooler_plugins.s3.download import EmptyObject, open_object
from spooler_plugins.s3.lease import S3LeaseStore, S3Object, SequenceObject
from spooler_plugins.s3.upload import (
    Uploader,
    client_errors,
    explain_denied,
    make_client,
    request_extras,
)

from spooler import log, transport_options
from spooler.errors import SpoolError, UsageError, append_only, missing, no_queue
from spooler.failures import describe, reason
from spooler.ids import new_job_name
from spooler.layout import PLACEHOLDER, SEQ_NAME
from spooler.lease import DEFAULT_TTL, hold, holder
from spooler.plugin import Capability, SequencePeek, SequenceState
from spooler.progress import Progress
from spooler.transport_options import Option

if TYPE_CHECKING:
    import s3fs

_log = log.Logger("spooler.s3")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
#: The ``-o`` options: ours, then those of s3fs.S3FileSystem that make sense here.
OPTIONS = (
    Option("lease_ttl", "seconds", DEFAULT_TTL, minimum=1),
    Option("read_parallel", "int", 1, minimum=1, maximum=64),
    Option("endpoint_url"),
    Option("region"),
    Option("profile"),
    Option("anon", "bool"),
    Option("key"),
    Option("secret"),
    Option("token"),
    Option("use_ssl", "bool"),
    Option("requester_pays", "bool"),
    Option("default_block_size", "int", minimum=5 * 1024 * 1024),
    Option("default_fill_cache", "bool"),
    Option("default_cache_type"),
    Option("version_aware", "bool"),
    Option("cache_regions", "bool"),
    Option("max_concurrency", "int", minimum=1),
    Option("fixed_upload_size", "bool"),
    Option("s3_additional_kwargs", "json"),
    Option("client_kwargs", "json"),
    Option("config_kwargs", "json"),
)
LEASE_NAME = "nextseq.lease"


def _error_code(exc: BaseException) -> str:
    """The S3 error code behind an exception translated by s3fs."""
    cause = exc.__cause__ or exc
    response = getattr(cause, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _precondition_failed(exc: BaseException) -> bool:
    return _error_code(exc) in ("PreconditionFailed", "412") or isinstance(exc, FileExistsError)


class S3Transport(FsspecTransport):
    """A queue under ``s3://BUCKET/PREFIX``."""

    capabilities = frozenset(
        {
            Capability.PROCESS,
            Capability.CREATE_ONLY,
            Capability.CONCURRENT_HEADERS,
            Capability.LEASE,
        }
    )

    def __init__(
        self, location: str, opts: dict[str, Any], root: str, lease_ttl: float = DEFAULT_TTL
    ) -> None:
        super().__init__(location, None, root)
        self.opts = opts
        self.bucket, _, self.prefix = self.root.partition("/")
        if not self.bucket:
            raise UsageError(f"{location}: no bucket in the URL (s3://BUCKET/PREFIX)")
        self.lease_ttl = lease_ttl
        self.read_parallel = 1  # GetObject requests in flight per job (-o read_parallel)

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, str]) -> S3Transport:
        opts = transport_options.parse("s3", options, OPTIONS)
        ttl = opts.pop("lease_ttl")
        read_parallel = opts.pop("read_parallel")
        opts.setdefault("client_kwargs", {})
        # Fail fast on a dead endpoint: botocore's default retries take ~9 s.
        opts.setdefault("config_kwargs", {}).setdefault("retries", {"total_max_attempts": 2})
        opts["config_kwargs"].setdefault("connect_timeout", 10)
        endpoint = opts.pop("endpoint_url", None) or os.environ.get(
            "AWS_ENDPOINT_URL_S3", os.environ.get("AWS_ENDPOINT_URL")
        )
        if endpoint:
            opts["endpoint_url"] = endpoint
        region = opts.pop("region", None)
        if region:
            opts["client_kwargs"]["region_name"] = region
        profile = opts.pop("profile", None) or os.environ.get("AWS_PROFILE")
        if profile:
            opts["profile"] = profile
        if not url.lower().startswith(("s3://", "s3a://")):
            raise UsageError(f"{url}: expected s3://BUCKET/PREFIX")
        root = url.split("://", 1)[1]
        bucket = root.partition("/")[0]
        if bucket and not _BUCKET.fullmatch(bucket):
            raise UsageError(
                f"{url}: {bucket!r} is not a valid bucket name (3 to 63 characters: "
                "lowercase letters, digits, dots and hyphens)"
            )
        transport = cls(url, opts, root, ttl)
        transport.read_parallel = read_parallel
        return transport

    @cached_property
    def fs(self) -> s3fs.S3FileSystem:
        """s3fs, for listing and reading (created on first use: delivery
        does without it)."""
        import s3fs

        try:
            return s3fs.S3FileSystem(**self.opts)
        except (TypeError, ValueError) as exc:
            raise SpoolError(f"{self.location}: bad S3 options: {exc}") from None

    @cached_property
    def uploader(self) -> Uploader:
        """Delivery, the lease and ``nextseq`` share the one botocore client of reads."""
        return Uploader(self.client, self.bucket, request_extras(self.opts), self.location)

    # -- reading ----------------------------------------------------------
    @cached_property
    def client(self) -> Any:
        """botocore (thread-safe): reads, delivery, the lease and ``nextseq``."""
        return make_client(self.opts)

    def open_job(self, name: str) -> BinaryIO:
        """One streamed GetObject, or ``read_parallel`` ranged ones (see
        :mod:`.download`); s3fs's read-ahead held several 50 MiB blocks."""
        from botocore.exceptions import ClientError

        shape = self.client.meta.service_model.operation_model("GetObject").input_shape
        extras = {k: v for k, v in request_extras(self.opts).items() if k in shape.members}
        key = self.key(f"jobs/{name}")

        def get(**kwargs: Any) -> dict[str, Any]:
            with client_errors(self.location, "get_object"):
                try:
                    reply: dict[str, Any] = self.client.get_object(
                        Bucket=self.bucket, Key=key, **extras, **kwargs
                    )
                    return reply
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if code in ("NoSuchKey", "404"):
                        raise missing(f"{self.location}/jobs/{name}") from None
                    if code == "InvalidRange":
                        raise EmptyObject from None
                    raise

        return open_object(get, self.read_parallel)

    # -- helpers ----------------------------------------------------------
    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """Call the S3 API; turn transport failures into one-line errors."""
        with self._errors(method):
            reply: dict[str, Any] = self.fs.call_s3(method, Bucket=self.bucket, **kwargs)
            return reply

    @contextmanager
    def _errors(self, method: str) -> Iterator[None]:
        try:
            yield
        except (FileNotFoundError, FileExistsError):
            raise
        except PermissionError as exc:  # s3fs's translation of a 403: explain its cause
            why = describe(exc.__cause__) if exc.__cause__ else None
            raise SpoolError(
                f"{self.location}: S3 {method} failed: {why or explain_denied(reason(exc))}"
            ) from None
        except OSError as exc:
            if _precondition_failed(exc):
                raise
            raise SpoolError(f"{self.location}: S3 {method} failed: {reason(exc)}") from None
        except Exception as exc:  # botocore/aiohttp errors: endpoint, credentials
            why = describe(exc) or reason(exc)
            raise SpoolError(f"{self.location}: S3 {method} failed: {why}") from None

    # -- delivery ---------------------------------------------------------
    def deliver(self, source: BinaryIO, name: str | None = None) -> str:
        """Streamed, create-only upload: visible only when complete."""
        name = name or new_job_name()
        self._require_queue()  # a typo must not create a queue
        progress = Progress(name)
        try:
            self.uploader.upload(self.key(f"jobs/{name}"), source, progress.add)
        except FileExistsError:
            raise FileExistsError(f"{self.location}/jobs/{name} exists") from None
        finally:
            progress.done()
        return name

    # -- queue structure ------------------------------------------------------
    def init(self, append_only: bool = False) -> None:
        try:
            self.fs.invalidate_cache()
            existing = self.call("list_objects_v2", Prefix=self.key(""), MaxKeys=1)
        except FileNotFoundError:
            raise SpoolError(f"{self.location}: no such bucket {self.bucket!r}") from None
        if existing.get("KeyCount"):
            raise SpoolError(f'Queue "{self.location}" already exists')
        self.call("put_object", Key=self.key(f"jobs/{PLACEHOLDER}"), Body=b"", IfNoneMatch="*")
        if not append_only:
            self.call("put_object", Key=self.key(SEQ_NAME), Body=b"1\n", IfNoneMatch="*")

    def is_append_only(self) -> bool:
        try:
            self.uploader.call("head_object", Key=self.key(SEQ_NAME))
        except FileNotFoundError:
            self._require_queue()
            return True
        return False

    def _require_queue(self) -> None:
        """A queue has objects under ``jobs/`` (at least its placeholder)."""
        listed = self.uploader.call("list_objects_v2", Prefix=self.key("jobs/"), MaxKeys=1)
        if not listed.get("KeyCount"):
            raise no_queue(self.location)

    # -- the lease and the sequence ----------------------------------------------
    def _object(self, relative: str) -> S3Object:
        uploader = self.uploader
        return S3Object(uploader.client, self.bucket, self.key(relative), uploader.extras)

    @cached_property
    def lock_store(self) -> S3LeaseStore:
        return S3LeaseStore(self._object(LEASE_NAME))

    def lock_sequence(self) -> AbstractContextManager[SequenceState]:
        if self.is_append_only():
            raise append_only(self.location)
        sequence = SequenceObject(self._object(SEQ_NAME), self.location)
        return hold(self.lock_store, self.location, self.lease_ttl, sequence.read, sequence.write)

    def peek_sequence(self) -> SequencePeek:
        doc = holder(self.lock_store)
        who = None if doc is None else f"{doc.get('host', '?')} (pid {doc.get('pid', '?')})"
        return SequencePeek(SequenceObject(self._object(SEQ_NAME), self.location).read(), who)
