"""Queues on SSH servers over SFTP (paramiko), configured the way ``ssh`` is.

``sftp://[USER@]HOST[:PORT]/PATH``: PATH is absolute; ``/~/PATH`` is relative
to the login directory.  HOST may be an alias of the ssh config file
(``~/.ssh/config``, or ``-o ssh_config=FILE`` / ``$FSPL_SSH_CONFIG``), read as
ssh reads it, ProxyJump, ProxyCommand and Include included (see
:mod:`.connection`, which also verifies host keys); the ssh-agent is used
when it runs.

Delivery follows :mod:`spooler.delivery`: ``jobs/tmp-NAME.NONCE.tmp`` written
with pipelined writes, flushed with ``fsync@openssh.com`` when the server
offers it, then published with the plain SFTP rename, which OpenSSH performs
as link + unlink and so never replaces an existing job.  Payloads are read
with a window of pipelined requests (:mod:`.download`).  Processing takes
the lock of :mod:`.lock` on an SFTP session of its own.  Every remote call
has a timeout (``-o timeout``, seconds): a server that stops answering is an
error, never a hang.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, suppress
from functools import cached_property
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import paramiko
from paramiko.sftp import CMD_EXTENDED, SFTPError

from spooler import log, transport_options
from spooler.delivery import StagedTransport
from spooler.errors import SpoolError, UsageError, append_only, no_queue
from spooler.layout import SEQ_LOCK_NAME, SEQ_NAME, SEQ_TEMP_NAME
from spooler.lease import DEFAULT_TTL, hold, holder
from spooler.plugin import Capability, SequencePeek, SequenceState
from spooler.redact import has_password, redact
from spooler.seqfile import MAX_SEQ_LINE, parse_seq
from spooler.streams import BUFSIZE, spooled_upload
from spooler.transport_options import Option

from .connection import connect, describe
from .download import PipelinedReader
from .lock import SFTPLockStore, server_now

_log = log.Logger("spooler.sftp")
LOCK_NAME = "nextseq.sftp-lock"
WINDOW = 64 * 1024 * 1024
#: Seconds without an answer after which a remote call fails (``-o timeout``).
DEFAULT_TIMEOUT = 60.0
OPTIONS = (
    Option("ssh_config"),
    Option("strict_host_key_checking"),
    Option("identity_file"),
    Option("known_hosts"),
    Option("lock_ttl", "seconds", DEFAULT_TTL, minimum=1),
    Option("timeout", "seconds", DEFAULT_TIMEOUT, minimum=0.1),
)


class SFTPTransport(StagedTransport):
    """A queue directory on an SFTP server."""

    capabilities = frozenset({Capability.PROCESS, Capability.CREATE_ONLY, Capability.LEASE})
    show_progress = True
    defer_interrupts = True

    def __init__(
        self,
        location: str,
        client: paramiko.SSHClient,
        root: str,
        lock_ttl: float,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        super().__init__(location)
        self.client = client
        self.timeout = timeout
        self.ssh = client.get_transport()
        assert self.ssh is not None
        self.ssh.set_keepalive(max(1, int(timeout / 4)))
        # One SFTP session per thread: paramiko's SFTPClient matches replies
        # to requests on one channel and breaks (closes it) when two threads
        # use it at once; sessions on the one SSH connection are cheap.
        self._local = threading.local()
        self._sessions: list[paramiko.SFTPClient] = []
        self._sessions_lock = threading.Lock()
        self._local.sftp = self._new_session()
        self.root = root.rstrip("/") or "/"
        self.jobs = f"{self.root}/jobs" if self.root != "/" else "/jobs"
        self.lock_ttl = lock_ttl

    @property
    def sftp(self) -> paramiko.SFTPClient:
        """This thread's SFTP session (opened on its first use)."""
        session: paramiko.SFTPClient | None = getattr(self._local, "sftp", None)
        if session is None:
            session = self._local.sftp = self._new_session()
        return session

    def _new_session(self) -> paramiko.SFTPClient:
        session = self._session(WINDOW)
        with self._sessions_lock:
            self._sessions.append(session)
        return session

    def _session(self, window: int | None = None) -> paramiko.SFTPClient:
        """A new SFTP session on the connection; its calls time out."""
        assert self.ssh is not None
        # A large window keeps writes pipelined over the whole round trip.
        sftp = paramiko.SFTPClient.from_transport(self.ssh, window_size=window)
        assert sftp is not None
        sftp.get_channel().settimeout(self.timeout)
        return sftp

    # -- connecting ---------------------------------------------------------
    @classmethod
    def from_url(cls, url: str, options: Mapping[str, str]) -> SFTPTransport:
        opts = transport_options.parse("sftp", options, OPTIONS)
        if has_password(url):
            raise UsageError(
                f"{redact(url)}: passwords in sftp:// URLs are refused (they would show in "
                "ps and in every job's environment); use a key (-o identity_file=FILE, "
                "~/.ssh/config IdentityFile) or the ssh-agent"
            )
        parts = urlsplit(url)
        if not parts.hostname:
            raise UsageError(f"{url}: no host (sftp://[USER@]HOST[:PORT]/PATH)")
        try:
            port = parts.port
        except ValueError:
            raise UsageError(
                f"{url}: the port must be a number from 1 to 65535 (sftp://HOST:PORT/PATH)"
            ) from None
        path = unquote(parts.path)
        if path.startswith("/~/"):
            path = path[3:]
        elif not path or path == "/":
            raise UsageError(f"{url}: no queue path")
        client = connect(url, parts.hostname, port, parts.username, options)
        return cls(url, client, path, opts["lock_ttl"], opts["timeout"])

    def close(self) -> None:
        if "lock_store" in self.__dict__:
            self.lock_store.close()
        for session in self._sessions:
            session.close()
        self.client.close()

    def path(self, name: str) -> str:
        return f"{self.jobs}/{name}"

    def _meta(self, name: str) -> str:
        return f"{self.root}/{name}"

    @contextmanager
    def _remote(self, what: str) -> Iterator[None]:
        """Timeouts and dropped connections as one-line errors."""
        try:
            yield
        except TimeoutError:
            raise SpoolError(
                f"{self.location}: {what}: no answer from the server for {self.timeout:g} s"
            ) from None
        except (paramiko.SSHException, EOFError) as exc:
            raise SpoolError(
                f"{self.location}: {what}: the SSH connection failed ({describe(exc)})"
            ) from None
        except OSError as exc:
            if exc.errno is None and exc.filename is None:  # paramiko's "Socket is closed"
                raise SpoolError(
                    f"{self.location}: {what}: the SSH connection dropped ({describe(exc)})"
                ) from None
            # paramiko's errors name no file ("No such file"): the queue's
            # URL (password-free: such URLs are refused) makes the line say where.
            if exc.filename is None:
                exc.filename = self.location
            raise

    # -- jobs ----------------------------------------------------------------
    def list_names(self) -> list[str]:
        with self._remote("listing jobs"):
            try:
                names: list[str] = self.sftp.listdir(self.jobs)
                return names
            except FileNotFoundError as exc:
                raise no_queue(self.location, describe(exc)) from None
            except OSError as exc:
                raise SpoolError(
                    f'Reading queue directory "{self.location}/jobs": {describe(exc)}'
                ) from None

    def open_job(self, name: str) -> BinaryIO:
        with self._remote(f"opening {name}"):
            handle = self.sftp.open(self.path(name), "rb")
        return PipelinedReader(self.sftp, handle)  # type: ignore[return-value]

    def read_prefixes(
        self, names: Iterable[str], size: int
    ) -> Iterator[tuple[str, bytes | OSError]]:
        for name in names:
            try:
                with self._remote(f"reading {name}"), self.sftp.open(self.path(name), "rb") as fh:
                    yield name, fh.read(size)
            except OSError as exc:
                yield name, exc

    # -- delivery (the protocol of spooler.delivery) ---------------------------
    def write_staged(self, temp: str, source: BinaryIO, progress: Callable[[int], None]) -> None:
        with self._remote(f"writing {temp}"):
            try:
                out = self.sftp.open(self.path(temp), "wx")
            except FileNotFoundError as exc:
                raise no_queue(self.location, describe(exc)) from None
            try:
                out.set_pipelined(True)
                while chunk := source.read(BUFSIZE):
                    out.write(chunk)
                    progress(len(chunk))
                out.flush()
                self._fsync(out)
            except BaseException:
                # Interrupted (Ctrl-C) or failed: close without waiting for
                # the pipelined acknowledgements, keep the first exception.
                with suppress(Exception):
                    out.close()
                raise
            out.close()

    def _fsync(self, handle: paramiko.SFTPFile) -> None:
        """fsync@openssh.com: the data is on the server's disk before the rename."""
        try:
            self.sftp._request(CMD_EXTENDED, "fsync@openssh.com", handle.handle)
        except (SFTPError, OSError) as exc:
            _log.debug("Server has no fsync@openssh.com: %s", exc)

    def publish(self, temp: str, final: str) -> None:
        # The plain SFTP rename refuses to replace an existing file (OpenSSH
        # links, then unlinks), so a job is never overwritten, even in a race.
        with self._remote(f"publishing {final}"):
            try:
                self.sftp.rename(self.path(temp), self.path(final))
            except OSError:
                if self._exists(self.path(final)):
                    raise FileExistsError(errno.EEXIST, "Job exists", final) from None
                raise

    def _exists(self, path: str) -> bool:
        try:
            self.sftp.stat(path)
        except FileNotFoundError:
            return False
        return True

    def discard(self, temp: str) -> None:
        try:
            self.sftp.remove(self.path(temp))
        except Exception:  # the connection may be the thing that failed
            pass

    def staged_ages(self, temps: list[str]) -> Iterator[tuple[str, float | None]]:
        wanted = set(temps)
        with self._remote("listing temporary files"):
            entries = [e for e in self.sftp.listdir_attr(self.jobs) if e.filename in wanted]
            now = server_now(self.sftp, self.root)
        for entry in entries:
            mtime = entry.st_mtime
            yield entry.filename, None if now is None or mtime is None else now - mtime

    def delete(self, name: str) -> None:
        with self._remote(f"deleting {name}"):
            self.sftp.remove(self.path(name))

    def open_output(self, name: str) -> AbstractContextManager[BinaryIO]:
        target = self.path(name)

        def upload(spool: BinaryIO) -> None:
            with self._remote(f"writing {name}"):
                self.sftp.putfo(spool, target, confirm=False)

        return spooled_upload(upload)

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
            self.sftp.open(self._meta(SEQ_LOCK_NAME), "w").close()

    def is_append_only(self) -> bool:
        with self._remote("reading the queue"):
            if self._exists(self._meta(SEQ_NAME)):
                return False
            if not self._exists(self.jobs):
                raise no_queue(self.location)
        return True

    def _read_seq(self) -> int:
        with self._remote("reading nextseq"), self.sftp.open(self._meta(SEQ_NAME), "rb") as fh:
            text = fh.read(MAX_SEQ_LINE + 1).decode("ascii", "replace")
        return parse_seq(text, self.location)

    def _write_seq(self, value: int) -> None:
        temp = self._meta(SEQ_TEMP_NAME)
        with self._remote("writing nextseq"):
            with self.sftp.open(temp, "w") as out:
                out.write(b"%d\n" % value)
                out.flush()
                self._fsync(out)
            self.sftp.posix_rename(temp, self._meta(SEQ_NAME))

    @cached_property
    def lock_store(self) -> SFTPLockStore:
        """The lock, on a session of its own (see :mod:`.lock`)."""
        return SFTPLockStore(self._session(), self._meta(LOCK_NAME))

    @contextmanager
    def lock_sequence(self) -> Iterator[SequenceState]:
        if self.is_append_only():
            raise append_only(self.location)
        with (
            self._remote("locking"),
            hold(
                self.lock_store, self.location, self.lock_ttl, self._read_seq, self._write_seq
            ) as state,
        ):
            yield state

    def peek_sequence(self) -> SequencePeek:
        with self._remote("reading the lock"):
            doc = holder(self.lock_store)
        who = None if doc is None else f"{doc.get('host', '?')} (pid {doc.get('pid', '?')})"
        return SequencePeek(self._read_seq(), who)
