"""Sequence files (``NAME`` + ``NAME.lock``) with flock(2) locking.

The lock is an exclusive, non-blocking ``flock`` on ``NAME.lock``, the same
primitive the reference uses, so the two programs exclude each other.  The
value is replaced atomically: write ``NAME.temp``, fsync, rename over
``NAME``.  On the sender side the directory is fsynced too (the reference
stops before that step): a sequence advance lost in a power failure would
hand out the same number twice, which the receiver rightly refuses as a
duplicate.  On the receiver side a lost advance only means a job runs again,
the window that exists anyway between a command's exit and the write, so
the per-job directory fsync is not worth its cost there.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager

from . import log
from .errors import LockError, SpoolError, describe_os_error

_log = log.Logger("spooler.seqfile")


def fsync_dir(path: str) -> None:
    """fsync a directory so renames and creations inside it are durable."""
    fd = os.open(path or ".", os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: Sequence numbers are u64 and wrap around, as in the reference.
SEQ_MODULUS = 2**64
#: The first line of a sequence file is read whole (leading zeros and all,
#: as the reference does) up to this many characters.
MAX_SEQ_LINE = 1024 * 1024


def parse_u64(text: str, origin: str) -> int:
    """A u64 as the reference parses one: an optional ``+``, then ASCII digits."""
    digits = text[1:] if text.startswith("+") else text
    if not (digits.isascii() and digits.isdigit()) or int(digits) >= SEQ_MODULUS:
        raise SpoolError(f"Invalid sequence number {text!r} in {origin}")
    return int(digits)


def parse_seq(text: str, origin: str) -> int:
    """Parse the content of a sequence file: its first line, trimmed, as a u64.

    Callers read at most ``MAX_SEQ_LINE + 1`` characters."""
    line = text.split("\n", 1)[0]
    if len(line) > MAX_SEQ_LINE:
        raise SpoolError(f"Invalid sequence file in {origin}: first line exceeds 1 MiB")
    return parse_u64(line.strip(" \t\r\x0b\x0c"), origin)


class SeqFile:
    """An open, locked sequence file: read and replace the next number."""

    def __init__(self, path: str, lock_fd: int, sync_dir: bool = False) -> None:
        self.path = path
        self._lock_fd = lock_fd
        self._sync_dir = sync_dir

    def read(self) -> int:
        _log.debug('Attempting to open file "%s"', self.path)
        try:
            with open(self.path, encoding="ascii", errors="replace") as fh:
                text = fh.readline(MAX_SEQ_LINE + 1)  # the whole line, as the reference
        except OSError as exc:
            raise SpoolError(f'Reading "{self.path}": {describe_os_error(exc)}') from None
        value = parse_seq(text, f'"{self.path}"')
        _log.debug('Read next ID %d from seqfile "%s"', value, self.path)
        return value

    def write(self, value: int) -> None:
        temp = self.path + ".temp"
        _log.trace('Writing %d to "%s"', value, temp)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                os.write(fd, b"%d\n" % value)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temp, self.path)
            if self._sync_dir:
                fsync_dir(os.path.dirname(self.path))
        except OSError as exc:
            raise SpoolError(f'Writing "{self.path}": {describe_os_error(exc)}') from None
        _log.debug('Sequence %d written to "%s"', value, self.path)

    def release(self) -> None:
        if self._lock_fd >= 0:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = -1


def _open_lock(lock_path: str, create: bool) -> int:
    flags = os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        return os.open(lock_path, flags, 0o666)
    except OSError as exc:
        hint = "" if create else "; if missing, this may be an append-only queue"
        raise SpoolError(
            f'Opening lock file at "{lock_path}"{hint}: {describe_os_error(exc)}'
        ) from None


@contextmanager
def locked(path: str, create: bool = False) -> Iterator[SeqFile]:
    """Hold the exclusive lock on ``path`` for the duration of the block.

    With ``create`` (the sender side) a missing lock file is created.  A
    missing sequence file is initialised to 1 on both sides, as the reference
    does.  Failing to get the lock is an immediate :class:`LockError`, never a
    wait.
    """
    lock_path = path + ".lock"
    _log.debug('Attempting to prepare lock at "%s"', lock_path)
    fd = _open_lock(lock_path, create)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise LockError(
                f'Could not lock "{lock_path}": {describe_os_error(exc)}; '
                "another process is using it"
            ) from None
        raise SpoolError(f'Locking "{lock_path}": {describe_os_error(exc)}') from None
    seq = SeqFile(path, fd, sync_dir=create)
    try:
        if not os.path.exists(path):
            seq.write(1)
        yield seq
    finally:
        seq.release()


def peek(path: str) -> tuple[int, bool]:
    """``(next number, locked by someone)`` read without writing anything:
    for diagnostics, which must never change a queue.  A missing sequence
    file reads as 1, the value processing would create it with."""
    lock_path = path + ".lock"
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SpoolError(f'Opening lock file at "{lock_path}": {describe_os_error(exc)}') from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        locked = False
    except OSError:
        locked = True
    finally:
        os.close(fd)  # drops the probe's flock at once
    if not os.path.exists(path):
        return 1, locked
    return SeqFile(path, -1).read(), locked


def take_next(path: str) -> int:
    """Sender side: return the current number and advance the file by one."""
    if path == "-":
        return 1
    with locked(path, create=True) as seq:
        value = seq.read()
        seq.write((value + 1) % SEQ_MODULUS)
    return value
