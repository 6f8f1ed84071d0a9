"""Queues on SSH servers over SFTP (paramiko), configured the way ``ssh`` is.

``sftp://[USER@]HOST[:PORT]/PATH``: PATH is absolute; ``/~/PATH`` is relative
to the login directory.  HOST may be an alias of the ssh config file
(``~/.ssh/config``, or ``-o ssh_config=FILE`` / ``$FSPL_SSH_CONFIG``), read as
ssh reads it, ProxyJump, ProxyCommand and Include included (see
``connection.py``); the ssh-agent is used when it runs.

Host keys are always verified.  An unknown host is refused unless
``StrictHostKeyChecking accept-new`` (config, or ``-o
strict_host_key_checking=accept-new``) records it; a *changed* key is always
refused.

Delivery writes ``jobs/tmp-NAME.tmp``, flushes it with ``fsync@openssh.com``
when the server offers it, then renames it: ``posix-rename@openssh.com`` for
a fresh UUID name, the plain SFTP rename (which refuses to replace a file on
OpenSSH) when a name is kept by ``queue-move``.  Processing takes an
exclusive lock file created with SFTP's CREATE|EXCL; see docs/transports/sftp.md
for the stale-lock rules.
"""

from __future__ import annotations

import errno
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import paramiko
from paramiko.sftp import CMD_EXTENDED, SFTPError

from spooler import log
from spooler.errors import LockError, SpoolError, append_only
from spooler.ids import new_job_name
from spooler.lease import HeartbeatLock, hold
from spooler.progress import Progress
from spooler.seqfile import parse_seq
from spooler.streams import BUFSIZE
from spooler.transport import Capability, SequenceState, Transport, spooled_upload

from .connection import connect, describe

_log = log.get("spooler.sftp")
LOCK_NAME = "nextseq.sftp-lock"
SEQ_NAME = "nextseq"
DEFAULT_LOCK_TTL = 120.0
WINDOW = 64 * 1024 * 1024
STALE_TEMP_AGE = 3600.0  # leftover tmp-*.tmp files older than this are removed
OPTIONS = ("ssh_config", "strict_host_key_checking", "identity_file", "known_hosts", "lock_ttl")


class SFTPTransport(Transport):
    """A queue directory on an SFTP server."""

    capabilities = frozenset({Capability.PROCESS, Capability.CREATE_ONLY})

    def __init__(self, location: str, client: paramiko.SSHClient, root: str, lock_ttl: float):
        super().__init__(location)
        self.client = client
        transport = client.get_transport()
        assert transport is not None
        # A large window keeps writes pipelined over the whole round trip.
        self.sftp = paramiko.SFTPClient.from_transport(transport, window_size=WINDOW)
        assert self.sftp is not None
        self.root = root.rstrip("/") or "/"
        self.jobs = f"{self.root}/jobs" if self.root != "/" else "/jobs"
        self.lock_ttl = lock_ttl

    # -- connecting ---------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, options: Mapping[str, str]) -> SFTPTransport:
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise SpoolError(f"Unknown sftp options: {', '.join(sorted(unknown))}")
        parts = urlsplit(url)
        if not parts.hostname:
            raise SpoolError(f"{url}: no host (sftp://[USER@]HOST[:PORT]/PATH)")
        path = unquote(parts.path)
        if path.startswith("/~/"):
            path = path[3:]
        elif not path or path == "/":
            raise SpoolError(f"{url}: no queue path")
        client = connect(url, parts.hostname, parts.port, parts.username, options)
        return cls(url, client, path, float(options.get("lock_ttl", DEFAULT_LOCK_TTL)))

    def close(self) -> None:
        self.sftp.close()
        self.client.close()

    def path(self, name: str) -> str:
        return f"{self.jobs}/{name}"

    def _meta(self, name: str) -> str:
        return f"{self.root}/{name}"

    # -- jobs ----------------------------------------------------------------
    def list_names(self) -> list[str]:
        try:
            return self.sftp.listdir(self.jobs)
        except OSError as exc:
            raise SpoolError(f'Reading queue directory "{self.location}/jobs": {exc}') from None

    def open_job(self, name: str) -> BinaryIO:
        handle = self.sftp.open(self.path(name), "rb")
        handle.prefetch()  # pipelined reads: the payload streams at link speed
        return handle  # type: ignore[return-value]

    def read_prefixes(
        self, names: Iterable[str], size: int
    ) -> Iterator[tuple[str, bytes | OSError]]:
        for name in names:
            try:
                with self.sftp.open(self.path(name), "rb") as handle:
                    yield name, handle.read(size)
            except OSError as exc:
                yield name, exc

    def deliver(self, source: BinaryIO, name: str | None = None) -> str:
        kept = name is not None
        name = name or new_job_name()
        temp, final = self.path(f"tmp-{name}.tmp"), self.path(name)
        progress = Progress(name)
        try:
            with self.sftp.open(temp, "wx") as out:
                out.set_pipelined(True)
                while chunk := source.read(BUFSIZE):
                    out.write(chunk)
                    progress.add(len(chunk))
                out.flush()
                self._fsync(out)
            self._publish(temp, final, kept)
        except BaseException:
            self._remove_quietly(temp)
            raise
        finally:
            progress.done()
        return name

    def _fsync(self, handle: paramiko.SFTPFile) -> None:
        """fsync@openssh.com: the data is on the server's disk before the rename."""
        try:
            self.sftp._request(CMD_EXTENDED, "fsync@openssh.com", handle.handle)
        except (SFTPError, OSError) as exc:
            _log.debug("Server has no fsync@openssh.com: %s", exc)

    def _publish(self, temp: str, final: str, kept: bool) -> None:
        if kept:
            # Plain SFTP rename refuses to replace (OpenSSH links, then unlinks).
            try:
                self.sftp.stat(final)
            except FileNotFoundError:
                self.sftp.rename(temp, final)
                return
            raise FileExistsError(errno.EEXIST, "Job exists", final)
        try:
            self.sftp.posix_rename(temp, final)
        except OSError as exc:
            _log.debug("posix-rename failed (%s); using plain rename", exc)
            self.sftp.rename(temp, final)

    def _remove_quietly(self, path: str) -> None:
        try:
            self.sftp.remove(path)
        except Exception:  # the connection may be the thing that failed
            pass

    def delete(self, name: str) -> None:
        self.sftp.remove(self.path(name))

    def open_output(self, name: str) -> AbstractContextManager[BinaryIO]:
        target = self.path(name)
        return spooled_upload(lambda spool: self.sftp.putfo(spool, target, confirm=False))

    # -- structure and sequence -------------------------------------------------
    def init(self, append_only: bool = False) -> None:
        try:
            self.sftp.mkdir(self.root)
        except OSError as exc:
            raise SpoolError(
                f'Creating "{self.location}": {describe(exc)} (does it exist?)'
            ) from None
        self.sftp.mkdir(self.jobs)
        if not append_only:
            self._write_seq(1)
            # The flock file of the reference layout, so that fspl running on
            # the server itself can process this queue too.
            self.sftp.open(self._meta(f"{SEQ_NAME}.lock"), "w").close()

    def is_append_only(self) -> bool:
        try:
            self.sftp.stat(self._meta(SEQ_NAME))
        except FileNotFoundError:
            return True
        return False

    def _read_seq(self) -> int:
        with self.sftp.open(self._meta(SEQ_NAME), "rb") as handle:
            text = handle.read(64).decode("ascii", "replace")
        return parse_seq(text, self.location)

    def _write_seq(self, value: int) -> None:
        temp = self._meta(f"{SEQ_NAME}.temp")
        with self.sftp.open(temp, "w") as out:
            out.write(b"%d\n" % value)
            out.flush()
            self._fsync(out)
        try:
            self.sftp.posix_rename(temp, self._meta(SEQ_NAME))
        except OSError:
            self.sftp.remove(self._meta(SEQ_NAME))
            self.sftp.rename(temp, self._meta(SEQ_NAME))

    @contextmanager
    def lock_sequence(self) -> Iterator[SequenceState]:  # type: ignore[override]
        if self.is_append_only():
            raise append_only(self.location)
        with hold(_LockFile(self), self._read_seq, self._write_seq) as state:
            self._clean_stale_temps()
            yield state

    def _clean_stale_temps(self) -> None:
        """Remove temporary files of deliveries that died long ago."""
        cutoff = time.time() - STALE_TEMP_AGE
        for entry in self.sftp.listdir_attr(self.jobs):
            name = entry.filename
            if name.startswith("tmp-") and name.endswith(".tmp") and (entry.st_mtime or 0) < cutoff:
                _log.info('Removing stale temporary file "%s"', name)
                self._remove_quietly(self.path(name))


class _LockFile(HeartbeatLock):
    """``nextseq.sftp-lock``: created with CREATE|EXCL, touched while held."""

    def __init__(self, t: SFTPTransport) -> None:
        super().__init__(t.location, t.lock_ttl)
        self.t = t
        self.path = t._meta(LOCK_NAME)

    def create(self) -> None:
        for _ in range(2):
            try:
                with self.t.sftp.open(self.path, "wx") as out:
                    out.write(json.dumps(self.document()).encode())
                return
            except OSError:
                if not self._break_if_stale():
                    doc = (self._holder() or ({}, 0.0))[0]
                    raise LockError(
                        f"{self.location} is being processed by {doc.get('host', '?')} "
                        f"(pid {doc.get('pid', '?')}); lock file {LOCK_NAME}"
                    ) from None
        raise LockError(f"{self.location}: lost the race for the lock; try again")

    def _holder(self) -> tuple[dict[str, Any], float] | None:
        try:
            attrs = self.t.sftp.stat(self.path)
            with self.t.sftp.open(self.path, "rb") as handle:
                data = handle.read(4096)
        except FileNotFoundError:
            return None
        try:
            return json.loads(data), float(attrs.st_mtime or 0)
        except ValueError:
            return {}, float(attrs.st_mtime or 0)

    def _break_if_stale(self) -> bool:
        """Rename a stale lock aside (atomic: one breaker wins), then retry."""
        holder = self._holder()
        if holder is None:
            return True
        doc, mtime = holder
        if time.time() - mtime < self.ttl:
            return False
        aside = f"{self.path}.stale-{self.token}"
        try:
            self.t.sftp.rename(self.path, aside)
        except OSError:
            return False  # someone else broke it (or refreshed it) first
        _log.warn("Broke stale lock of %s (pid %s)", doc.get("host"), doc.get("pid"))
        self.t._remove_quietly(aside)
        return True

    def refresh(self) -> None:
        holder = self._holder()
        if not holder or holder[0].get("owner") != self.token:
            raise SpoolError("lock file replaced")
        now = time.time()
        self.t.sftp.utime(self.path, (now, now))

    def remove(self) -> None:
        self.t.sftp.remove(self.path)
