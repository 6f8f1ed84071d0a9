"""Delivery to S3: a synchronous botocore client, parts sent from threads.

Why not s3fs here: s3fs runs every request on one asyncio loop, so the
hashing and checksumming of 8 MiB parts is serialised on that loop, and
s3fs + aiobotocore cost ~15 MiB more than botocore alone.  ``queue-write``
only needs five calls (PutObject, CreateMultipartUpload, UploadPart,
CompleteMultipartUpload, AbortMultipartUpload), which a plain botocore client
makes from worker threads: hashlib and zlib release the GIL, so parts really
go in parallel, and the command never imports s3fs or fsspec.

Memory is bounded by the parts held at once: PARALLEL parts (the next part
is read only when a slot is free).  Part sizes grow with the part number so
that S3's 10,000-part limit allows ~290 GiB from a pipe of unknown size.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, BinaryIO

from spooler import log
from spooler.errors import SpoolError
from spooler.failures import explains, reason

_log = log.Logger("spooler.s3")
_CREDENTIALS = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or ~/.aws/credentials"
_SECRET = "AWS_SECRET_ACCESS_KEY (or aws_secret_access_key in ~/.aws/credentials)"
_KEY_ID = "AWS_ACCESS_KEY_ID (or aws_access_key_id in ~/.aws/credentials)"


@explains("botocore.exceptions.NoCredentialsError")
def _no_credentials(exc: BaseException) -> str:
    return f"no AWS credentials found ({_CREDENTIALS})"


@explains("botocore.exceptions.ProfileNotFound")
def _no_profile(exc: BaseException) -> str:
    return f"{reason(exc)} (see ~/.aws/config, or unset AWS_PROFILE)"


@explains("botocore.exceptions.EndpointConnectionError", "botocore.exceptions.ConnectionError")
def _endpoint(exc: BaseException) -> str:
    return f"{reason(exc)} (is the endpoint right and up? -o endpoint_url or AWS_ENDPOINT_URL)"


@explains("botocore.exceptions.ClientError")
def _client_error(exc: BaseException) -> str:
    error = getattr(exc, "response", {}).get("Error", {})
    code = str(error.get("Code", ""))
    text = f"{error.get('Message') or code} ({code})" if code else reason(exc)
    if code == "SignatureDoesNotMatch":
        return f"{text}: the secret key does not match the access key ID; check {_SECRET}"
    if code == "InvalidAccessKeyId":
        return f"{text}: the endpoint knows no such access key ID; check {_KEY_ID} and the endpoint"
    if code in ("403", "Forbidden", "AccessDenied"):
        return explain_denied(text)
    return text


def explain_denied(text: str) -> str:
    """A 403 without its reason (HEAD replies have no body): all the suspects."""
    return (
        f"{text}: access denied; check the credentials ({_CREDENTIALS}), "
        "the region and the bucket's policy"
    )


@explains("botocore.exceptions.BotoCoreError")
def _botocore(exc: BaseException) -> str:
    return reason(exc)


def explain(exc: BaseException) -> str:
    from spooler.failures import describe

    return describe(exc) or reason(exc)


PART_SIZE = 8 * 1024 * 1024  # S3's minimum is 5 MiB; 8 keeps requests low at the same speed
PARTS_PER_SIZE = 2500  # the part size doubles after this many parts
PARALLEL = 2  # parts in flight: most of the throughput gain, memory bounded


def make_client(opts: Mapping[str, Any]) -> Any:
    """A botocore S3 client configured like the s3fs filesystem from the same ``-o`` options."""
    import botocore.session
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError

    config = dict(opts.get("config_kwargs") or {})
    if opts.get("anon"):
        config["signature_version"] = UNSIGNED
    try:
        session = botocore.session.Session(profile=opts.get("profile"))
        return session.create_client(
            "s3",
            endpoint_url=opts.get("endpoint_url"),
            aws_access_key_id=opts.get("key"),
            aws_secret_access_key=opts.get("secret"),
            aws_session_token=opts.get("token"),
            config=Config(**config),
            **(opts.get("client_kwargs") or {}),
        )
    except (BotoCoreError, TypeError, ValueError) as exc:
        raise SpoolError(f"S3 client: {exc}") from None


def request_extras(opts: Mapping[str, Any]) -> dict[str, Any]:
    """Per-request parameters from s3fs options (encryption, requester pays)."""
    extras = dict(opts.get("s3_additional_kwargs") or {})
    if opts.get("requester_pays"):
        extras["RequestPayer"] = "requester"
    return extras


def part_size(number: int) -> int:
    return PART_SIZE << ((number - 1) // PARTS_PER_SIZE)


def read_part(source: BinaryIO, size: int) -> bytearray:
    """Up to ``size`` bytes (short only at the end of the stream), read in
    place: a pipe gives 64 KiB per read, and joining those would hold the
    part twice."""
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    with view:
        while got < size:
            n = source.readinto(view[got:])  # type: ignore[attr-defined]
            if not n:
                break
            got += n
    del buf[got:]
    return buf


class Uploader:
    """Create-only uploads of one key: a single PutObject or a multipart upload."""

    def __init__(self, client: Any, bucket: str, extras: Mapping[str, Any], where: str) -> None:
        self.client = client
        self.bucket = bucket
        self.extras = dict(extras)
        self.where = where
        # CRC32 per part and for the whole object, unless the user turned
        # optional checksums off (AWS_REQUEST_CHECKSUM_CALCULATION=when_required)
        # for a store that does not support them.
        self.checksum = client.meta.config.request_checksum_calculation != "when_required"

    def call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        with client_errors(self.where, method):
            reply: dict[str, Any] = getattr(self.client, method)(
                Bucket=self.bucket, **self.extras, **kwargs
            )
            return reply

    def upload(self, key: str, source: BinaryIO, sent: Callable[[int], None]) -> None:
        """Store ``source`` under ``key`` unless the key exists (FileExistsError)."""
        first = read_part(source, part_size(1))
        if len(first) < part_size(1):
            self.call("put_object", Key=key, Body=first, IfNoneMatch="*")
            sent(len(first))
        else:
            pending = [first]
            del first  # _multipart must hold the only reference, to let it go
            self._multipart(key, pending, source, sent)

    def _multipart(
        self, key: str, pending: list[bytearray], source: BinaryIO, sent: Callable[[int], None]
    ) -> None:
        checksum = {"ChecksumAlgorithm": "CRC32"} if self.checksum else {}
        upload = self.call("create_multipart_upload", Key=key, **checksum)["UploadId"]

        def send(number: int, data: bytearray) -> dict[str, Any]:
            # botocore adds the part's CRC32 by itself (when_supported); asking
            # for it explicitly makes it copy the body.
            reply = self.call("upload_part", Key=key, UploadId=upload, PartNumber=number, Body=data)
            sent(len(data))
            part = {"ETag": reply["ETag"], "PartNumber": number}
            if reply.get("ChecksumCRC32"):
                part["ChecksumCRC32"] = reply["ChecksumCRC32"]
            return part

        try:
            parts: list[dict[str, Any]] = []
            with ThreadPoolExecutor(PARALLEL, thread_name_prefix="fspl-s3") as pool:
                in_flight: deque[Future[dict[str, Any]]] = deque()
                number, data = 1, pending.pop()
                while data:
                    in_flight.append(pool.submit(send, number, data))
                    del data  # the future holds the only reference
                    if len(in_flight) >= PARALLEL:  # wait for a slot before reading on
                        parts.append(in_flight.popleft().result())
                    number += 1
                    data = read_part(source, part_size(number))
                parts.extend(future.result() for future in in_flight)
            self.call(
                "complete_multipart_upload",
                Key=key,
                UploadId=upload,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException:
            # S3 keeps a failed or refused upload's parts (and bills them)
            # until it is aborted, even after a 412 on completion.
            try:
                self.call("abort_multipart_upload", Key=key, UploadId=upload)
            except Exception as exc:
                _log.warn("Could not abort multipart upload %s: %s", upload, exc)
            raise


@contextmanager
def client_errors(
    where: str, method: str, precondition: Callable[[str], Exception] | None = None
) -> Iterator[None]:
    """botocore's exceptions as the engine's: a refused conditional write
    (412) is ``FileExistsError`` (or ``precondition(where)``), a missing key
    ``FileNotFoundError``, anything else one line naming the location and call."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
            if precondition is not None:
                raise precondition(where) from None
            raise FileExistsError(errno.EEXIST, "the object exists", where) from None
        if code in ("NoSuchKey", "404", "NotFound"):
            raise FileNotFoundError(errno.ENOENT, "no such object", where) from None
        if code == "NoSuchBucket":
            raise SpoolError(f"{where}: no such bucket") from None
        raise SpoolError(f"{where}: S3 {method} failed: {explain(exc)}") from None
    except BotoCoreError as exc:
        raise SpoolError(f"{where}: S3 {method} failed: {explain(exc)}") from None
