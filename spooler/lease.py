"""Locks for storage without flock: acquired once, refreshed, released.

Remote transports (S3, SFTP, rclone, WebDAV…) implement the sequence lock as
an object or file that carries its owner and an expiry, created with the
strongest exclusive primitive the storage has.  What they share lives here:
the owner document, the heartbeat thread that keeps the lock fresh while a
long job runs, the "lost lock" check before every sequence write, and the
release.  A subclass supplies three storage operations.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from . import log
from .errors import SpoolError
from .ids import uuid4_text

_log = log.get("spooler.lease")


class HeartbeatLock(ABC):
    """Base of the remote locks; see the module docstring."""

    def __init__(self, location: str, ttl: float) -> None:
        self.location = location
        self.ttl = ttl
        self.token = uuid4_text()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def document(self) -> dict[str, Any]:
        """What the lock says about its holder (shown to those refused)."""
        now = time.time()
        return {
            "owner": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "acquired": now,
            "expires": now + self.ttl,
        }

    @abstractmethod
    def create(self) -> None:
        """Take the lock (breaking a stale one if the rules allow) or raise LockError."""

    @abstractmethod
    def refresh(self) -> None:
        """Renew it; raise if it is no longer ours."""

    @abstractmethod
    def remove(self) -> None:
        """Delete it."""

    def acquire(self) -> None:
        self.create()
        self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="fspl-lock")
        self._beat.start()

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                self.refresh()
            except Exception as exc:
                _log.error("Lock refresh failed: %s", exc)
                self.lost.set()
                return

    def check(self) -> None:
        """Refuse to go on once the lock may belong to someone else."""
        if self.lost.is_set():
            raise SpoolError(f"{self.location}: the processing lock was lost; stopping")

    def release(self) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if self.lost.is_set():
            return
        try:
            self.remove()
        except Exception as exc:
            _log.warn("Could not release the lock of %s: %s", self.location, exc)

    def describe_holder(self, doc: dict[str, Any], what: str) -> str:
        left = float(doc.get("expires", 0)) - time.time()
        return (
            f"{self.location} is being processed by {doc.get('host', '?')} "
            f"(pid {doc.get('pid', '?')}); {what} expires in {max(left, 0):.0f} s"
        )


class LockedSequence:
    """``nextseq`` behind a HeartbeatLock: every write first checks the lock."""

    def __init__(
        self, lock: HeartbeatLock, read: Callable[[], int], write: Callable[[int], None]
    ) -> None:
        self.lock = lock
        self._read = read
        self._write = write

    def read(self) -> int:
        return self._read()

    def write(self, value: int) -> None:
        self.lock.check()
        self._write(value)


@contextmanager
def hold(
    lock: HeartbeatLock, read: Callable[[], int], write: Callable[[int], None]
) -> Iterator[LockedSequence]:
    """``Transport.lock_sequence`` for a remote lock: acquire, yield, release."""
    lock.acquire()
    try:
        yield LockedSequence(lock, read, write)
    finally:
        lock.release()
