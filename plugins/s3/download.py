"""Reading a job from S3: one streamed GET, or ranged GETs in parallel.

By default a job is one ``GetObject`` whose body is read as it arrives, so
memory stays at one read buffer whatever the payload size.  One TCP stream
is limited by its round trip; ``-o read_parallel=N`` keeps N ranged GETs of
``RANGE_SIZE`` bytes in flight instead, each held whole until it is read, so
throughput grows with N on a distant bucket at about 2 × 8 MiB of memory
per extra request (the same trade as delivery's parts in flight).  All
ranges are read with ``If-Match`` on the ETag of the first request, so a
job replaced meanwhile fails instead of mixing two objects.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

RANGE_SIZE = 8 * 1024 * 1024

#: ``get(**kwargs)`` calls GetObject on the job's key with extra arguments;
#: it raises :class:`EmptyObject` when S3 refuses a range (InvalidRange).
Get = Callable[..., dict[str, Any]]


class EmptyObject(Exception):
    """A range was asked of an object with no bytes."""


def open_object(get: Get, parallel: int) -> BinaryIO:
    """A readable stream of the object, from ``parallel`` requests in flight."""
    if parallel <= 1:
        return get()["Body"]  # type: ignore[no-any-return]
    try:
        first = get(Range=f"bytes=0-{RANGE_SIZE - 1}")
    except EmptyObject:  # no range to ask for
        return get()["Body"]  # type: ignore[no-any-return]
    size = int(first["ContentRange"].rsplit("/", 1)[1]) if "ContentRange" in first else 0
    return RangedReader(get, first, size, parallel)  # type: ignore[return-value]


class RangedReader(io.RawIOBase):
    """The object's bytes in order, with up to ``parallel`` ranges in flight."""

    def __init__(self, get: Get, first: dict[str, Any], size: int, parallel: int) -> None:
        super().__init__()
        self._get = get
        self._etag = first["ETag"]
        self._size = size
        self._parallel = parallel
        self._pool = ThreadPoolExecutor(parallel - 1 or 1, thread_name_prefix="fspl-s3-get")
        self._pending: deque[Future[bytes]] = deque()
        self._next = min(RANGE_SIZE, size)
        self._current = memoryview(first["Body"].read())
        self._fill()

    def readable(self) -> bool:
        return True

    def _fetch(self, start: int, end: int) -> bytes:
        reply = self._get(Range=f"bytes={start}-{end - 1}", IfMatch=self._etag)
        data: bytes = reply["Body"].read()
        if len(data) != end - start:
            raise OSError(f"S3 returned {len(data)} bytes for a range of {end - start}")
        return data

    def _fill(self) -> None:
        while len(self._pending) < self._parallel - 1 and self._next < self._size:
            end = min(self._next + RANGE_SIZE, self._size)
            self._pending.append(self._pool.submit(self._fetch, self._next, end))
            self._next = end

    def readinto(self, buffer: Any) -> int:
        while not self._current:
            if not self._pending:
                return 0
            self._current = memoryview(self._pending.popleft().result())
            self._fill()
        n = min(len(buffer), len(self._current))
        buffer[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._pending.clear()
        super().close()
