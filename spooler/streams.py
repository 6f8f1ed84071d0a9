"""Moving bytes between descriptors without holding them in memory.

Payloads can be terabytes, so every copy here is a loop over a bounded
buffer, and where Linux can move the data in the kernel (``copy_file_range``
between files, ``splice`` from a pipe, ``sendfile`` from a file) it does, so
the bytes never enter this process at all.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

BUFSIZE = 1024 * 1024
_KERNEL_CHUNK = 1 << 30
_FALLBACK_ERRNOS = {errno.EINVAL, errno.ENOSYS, errno.EXDEV, errno.EBADF, errno.EOPNOTSUPP}


def write_all(fd: int, data: bytes | memoryview) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _kernel_copy(src: int, dst: int) -> tuple[int, bool]:
    """Try the zero-copy primitives in turn; return (bytes moved, finished)."""
    moved = 0
    for name in ("copy_file_range", "splice", "sendfile"):
        call = getattr(os, name, None)
        if call is None:
            continue
        try:
            while True:
                if name == "sendfile":
                    n = call(dst, src, None, _KERNEL_CHUNK)
                else:
                    n = call(src, dst, _KERNEL_CHUNK)
                if n == 0:
                    return moved, True
                moved += n
        except OSError as exc:
            if exc.errno not in _FALLBACK_ERRNOS:
                raise
            if moved:
                # Some data went through; the primitive failed mid-way for a
                # reason a later one will not fix. Let the plain loop finish.
                return moved, False
    return moved, False


def copy_fd(src: int, dst: int) -> int:
    """Copy everything from ``src`` (at its current offset) to ``dst``."""
    moved, done = _kernel_copy(src, dst)
    if done:
        return moved
    while True:
        chunk = os.read(src, BUFSIZE)
        if not chunk:
            return moved
        write_all(dst, chunk)
        moved += len(chunk)


def copy_stream_to_fd(src: BinaryIO, dst: int) -> int:
    """Copy a Python stream to a descriptor, in the kernel when it is a raw file."""
    if isinstance(src, Prefixed):
        head, src.head = src.head, b""
        write_all(dst, head)
        return len(head) + copy_stream_to_fd(src.rest, dst)
    fd = raw_fd(src)
    if fd is not None:
        return copy_fd(fd, dst)
    moved = 0
    while True:
        chunk = src.read(BUFSIZE)
        if not chunk:
            return moved
        write_all(dst, chunk)
        moved += len(chunk)


class Prefixed(io.RawIOBase):
    """Bytes already read from a stream, then the rest of the stream.

    What is left of a stream whose first bytes were looked at (the header,
    to name a job): reads see the whole stream again, and
    :func:`copy_stream_to_fd` still copies the rest in the kernel."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self.head = head
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        size = len(buffer)
        if self.head:
            data, self.head = self.head[:size], self.head[size:]
        else:
            data = self.rest.read(size)
        buffer[: len(data)] = data
        return len(data)


class Pump:
    """Feed a stream into a pipe from a background thread.

    Gives any stream (an S3 object, an SFTP file) a readable descriptor, so
    that the rest of the engine, and the commands it runs, only deal in fds.
    Errors from the stream are kept and re-raised by :meth:`join`.
    """

    def __init__(self, src: BinaryIO) -> None:
        self.read_fd, self._write_fd = os.pipe()
        self._src = src
        self.error: BaseException | None = None
        import threading  # remote payloads and decoders only: local commands never pump

        self._thread = threading.Thread(target=self._run, daemon=True, name="fspl-pump")
        self._thread.start()

    def _run(self) -> None:
        try:
            copy_stream_to_fd(self._src, self._write_fd)
        except BrokenPipeError:
            pass  # the reader stopped early (a command that ignores stdin)
        except BaseException as exc:
            self.error = exc
        finally:
            os.close(self._write_fd)

    def join(self) -> None:
        self._thread.join()
        if self.error is not None:
            raise self.error


def raw_fd(stream: object) -> int | None:
    """The descriptor behind ``stream`` if reading it yields exactly the stream's bytes.

    True of unbuffered files (``io.FileIO``, e.g. ``open(path, "rb",
    buffering=0)``) and of streams that say so with ``fspl_raw_fd = True``
    (a pipe from a child process).  Not of buffered readers, which may hold
    bytes already read, nor of an HTTP response, whose descriptor is the
    socket carrying protocol framing: those are read through ``read()``.
    """
    if not (isinstance(stream, io.FileIO) or getattr(stream, "fspl_raw_fd", False)):
        return None
    fileno: Callable[[], int] | None = getattr(stream, "fileno", None)
    if fileno is None:
        return None
    try:
        return fileno()
    except (OSError, ValueError):
        return None


@contextmanager
def spooled_upload(upload: Callable[[BinaryIO], None]) -> Iterator[BinaryIO]:
    """An ``open_output`` for remote transports: a local temporary file (a
    real descriptor for the command) handed to ``upload`` when it is closed."""
    import tempfile

    with tempfile.TemporaryFile() as spool:
        yield spool
        spool.flush()
        spool.seek(0)
        upload(spool)
