"""The SFTP processing lock: ``nextseq.sftp-lock``, on an SFTP session of its own.

The lock's renewals run in a heartbeat thread while a job's payload streams
over the data session; paramiko multiplexes channels safely but not two
threads on one SFTP session (answers get mixed up: "Garbage packet
received", or a hang in ``close``), so the lock has its own session on the
same SSH connection.

SFTP has one atomic primitive that helps, ``open(CREATE|EXCL)``; replace and
delete are read-compare-act, so :class:`spooler.lease.Lease` re-checks our
token before every sequence write.  A delete first
renames the lock aside, which only one client can do, and puts it back if
what it took turns out not to be the version it meant to delete.  The lock's
age comes from the server's clock alone: its mtime against the mtime of a
probe file the server has just created.
"""

from __future__ import annotations

import contextlib
import errno

import paramiko

from spooler.ids import uuid4_text
from spooler.lease import Conflict, LeaseStore, LockCopy, content_version


class SFTPLockStore(LeaseStore):
    def __init__(self, sftp: paramiko.SFTPClient, path: str) -> None:
        self.sftp = sftp
        self.path = path

    def create(self, body: bytes) -> str:
        try:
            with self.sftp.open(self.path, "wx") as out:
                out.write(body)
        except OSError as exc:
            if self._exists():
                raise FileExistsError(errno.EEXIST, "locked", self.path) from None
            raise exc
        return content_version(body)

    def _exists(self) -> bool:
        try:
            self.sftp.stat(self.path)
        except FileNotFoundError:
            return False
        return True

    def read(self) -> LockCopy | None:
        try:
            with self.sftp.open(self.path, "rb") as handle:
                body = handle.read(65536)
        except FileNotFoundError:
            return None
        return LockCopy(body, content_version(body))

    def replace(self, body: bytes, version: str) -> str:
        current = self.read()
        if current is None:
            raise FileNotFoundError(self.path)
        if current.version != version:
            raise Conflict(self.path)
        temp = f"{self.path}.{uuid4_text()}.tmp"
        with self.sftp.open(temp, "wx") as out:
            out.write(body)
        try:
            self.sftp.posix_rename(temp, self.path)
        except OSError:
            with contextlib.suppress(OSError):
                self.sftp.remove(temp)
            raise
        return content_version(body)

    def delete(self, version: str) -> None:
        aside = f"{self.path}.gone-{uuid4_text()}"
        try:
            self.sftp.rename(self.path, aside)  # atomic: one client takes it
        except FileNotFoundError:
            return
        try:
            with self.sftp.open(aside, "rb") as handle:
                taken = content_version(handle.read(65536))
        except OSError:
            taken = ""
        if taken == version:
            self.sftp.remove(aside)
            return
        # Not the version we meant: put it back (plain SFTP rename never replaces).
        with contextlib.suppress(OSError):
            self.sftp.rename(aside, self.path)
        raise Conflict(self.path)

    def measure_age(self, copy: LockCopy) -> float | None:
        """Seconds since the lock was last written, both ends by the server's clock."""
        try:
            written = self.sftp.stat(self.path).st_mtime
        except OSError:
            return None
        now = server_now(self.sftp, self.path.rsplit("/", 1)[0] or "/")
        return None if written is None or now is None else now - written

    def close(self) -> None:
        self.sftp.close()


def server_now(sftp: paramiko.SFTPClient, directory: str) -> float | None:
    """The server's clock, read off a probe file it has just created in ``directory``."""
    probe = f"{directory.rstrip('/')}/.fspl-clock-{uuid4_text()}"
    try:
        with sftp.open(probe, "wx"):
            pass
        mtime = sftp.stat(probe).st_mtime
    except OSError:
        return None
    finally:
        with contextlib.suppress(OSError):
            sftp.remove(probe)
    return None if mtime is None else float(mtime)
