"""The rclone processing lock: a best-effort :mod:`spooler.lease` store."""

from __future__ import annotations

import errno
import time

from spooler.errors import SpoolError
from spooler.lease import Conflict, LeaseStore, LockCopy, content_version

from .command import Rclone

#: The lock object, beside ``nextseq``.
LOCK_NAME = "nextseq.rclone-lock"


class RcloneLockStore(LeaseStore):
    """``nextseq.rclone-lock``: a best-effort lock object.

    rclone has no create-if-absent on most backends, so ``create`` writes,
    waits ``lock_settle`` seconds for a racing writer's object to land, and
    reads back; replace and delete are read-compare-act.  rclone's
    modification times are the uploading client's, so the lock's age is not
    known: a lock is broken only when its holder is provably dead or when
    this host has seen it unchanged for a full TTL.
    """

    def __init__(self, rclone: Rclone, settle: float, name: str = LOCK_NAME) -> None:
        self.rclone = rclone
        self.settle = settle
        self.name = name

    def create(self, body: bytes) -> str:
        if self.read() is not None:
            raise FileExistsError(errno.EEXIST, "locked", self.name)
        try:
            self.rclone.run("rcat", self.rclone.path(self.name), data=body)
        except SpoolError as exc:
            if "hash differ" in str(exc) or "corrupted on transfer" in str(exc):
                # Another processor wrote the same object at the same moment.
                raise FileExistsError(errno.EEXIST, "locked", self.name) from None
            raise
        time.sleep(self.settle)  # let a racing writer's object land, then check
        current = self.read()
        if current is None or current.body != body:
            raise FileExistsError(errno.EEXIST, "locked", self.name)
        return current.version

    def read(self) -> LockCopy | None:
        try:
            body = self.rclone.run("cat", self.rclone.path(self.name))
        except FileNotFoundError:
            return None
        if not body and not self.rclone.exists(self.name):
            return None  # object stores "cat" a missing key as nothing
        return LockCopy(body, content_version(body))

    def _expect(self, version: str) -> None:
        current = self.read()
        if current is None:
            raise FileNotFoundError(self.name)
        if current.version != version:
            raise Conflict(self.name)

    def replace(self, body: bytes, version: str) -> str:
        self._expect(version)
        self.rclone.run("rcat", self.rclone.path(self.name), data=body)
        return content_version(body)

    def delete(self, version: str) -> None:
        try:
            self._expect(version)
        except FileNotFoundError:
            return
        self.rclone.run("deletefile", self.rclone.path(self.name))
