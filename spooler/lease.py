"""The one lock protocol for storage without flock (S3, SFTP, rclone, WebDAV…).

A transport supplies a :class:`LeaseStore`: four small operations on one
lock object (create-if-absent, read, replace-if-unchanged,
delete-if-unchanged) and, where the storage can tell, the lock's age by the
storage's *own* clock.  Everything else lives here, once: the holder's
document, the heartbeat that renews the lock while jobs run, the rules for
breaking a stale lock, the fencing of sequence writes and the release.

Clocks.  Machines disagree about the time of day, often by minutes, so no
rule here ever compares one machine's wall clock with another's.  A lock is
stale, and may be broken, only when one of these holds:

* **its holder is dead**: the lock names this host (host name *and* boot id)
  and a process id that no longer exists, or that now belongs to a process
  started at another time (as flock is released when its holder dies);
* **the storage says so**: the storage reports the lock's age from its own
  clock alone (last-modified time against the same server's current time),
  and that age exceeds the TTL plus :data:`GRACE`;
* **we saw it so**: this host has observed the very same version of the lock
  for a full TTL on its own monotonic clock (observations are kept in a small
  local file, so successive ``fspl`` runs from cron add up).

The holder, for its part, trusts only its own monotonic clock: it notes the
time *before* sending each renewal, and once it has gone without a confirmed
renewal for most of a TTL it stops starting jobs (:meth:`Lease.check`), well
before anyone may break its lock.  Together this is safe for any clock offset
between processors and servers, assuming only that clocks tick at roughly the
same rate (docs/reliability.md).

Fencing.  Every ``nextseq`` write first checks the lease (lost? renewal
overdue?) and re-reads the lock to confirm it still carries our token
immediately before writing (S3 adds ``If-Match`` on ``nextseq`` itself).  A release
deletes the lock only if it is still ours.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from . import log
from .errors import LockError, SpoolError
from .ids import uuid4_text

_log = log.Logger("spooler.lease")

#: Lock TTL used by every built-in transport unless ``-o lock_ttl`` says otherwise.
DEFAULT_TTL = 120.0
#: Added to the TTL before a storage-clock age counts as stale: timestamps
#: have one-second resolution and a renewal takes a round trip to land.
GRACE = 3.0
#: A holder stops starting jobs once this fraction of a TTL has passed since
#: its last confirmed renewal (renewals are sent every third of a TTL).
SELF_DEADLINE = 0.75


class Conflict(Exception):
    """A conditional replace or delete found the lock changed."""


@dataclass(frozen=True)
class LockCopy:
    """The lock as read: its bytes, a version token, and its age by the
    storage's own clock when the storage reports one in the same answer."""

    body: bytes
    version: str
    age: float | None = None


class LeaseStore(ABC):
    """The storage operations behind one lock object (see the module docstring).

    :meth:`replace` and :meth:`delete` are real conditional operations where
    the storage has them (S3 and WebDAV ``If-Match``) and read-compare-act
    elsewhere (SFTP, rclone); the lease re-reads its token before every
    sequence write either way.
    """

    @abstractmethod
    def create(self, body: bytes) -> str:
        """Create the lock if absent; return its version or ``""`` if the
        storage does not say.  Raise ``FileExistsError`` if it exists."""

    @abstractmethod
    def read(self) -> LockCopy | None:
        """The current lock, or None when there is none."""

    @abstractmethod
    def replace(self, body: bytes, version: str) -> str:
        """Replace the lock if it is still ``version``; return the new version.
        Raise :class:`Conflict` if it changed, ``FileNotFoundError`` if gone."""

    @abstractmethod
    def delete(self, version: str) -> None:
        """Delete the lock if it is still ``version``; :class:`Conflict` if it
        changed; nothing if it is already gone."""

    def measure_age(self, copy: LockCopy) -> float | None:
        """The lock's age in seconds by the storage's clock alone, or None."""
        return copy.age

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release a connection of the store's own, if it has one."""


def content_version(body: bytes) -> str:
    """A version token for storage without one: a digest of the content
    (every renewal changes the content, so the digest changes with it)."""
    return hashlib.sha256(body).hexdigest()[:32]


# -- who holds it ------------------------------------------------------------------


def boot_id() -> str:
    """This boot's id (Linux); monotonic times compare only within one boot."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot; None if no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return None
    except OSError:
        return ""
    # The command name may hold spaces and parentheses: fields follow the last ")".
    fields = stat[stat.rfind(b")") + 2 :].split()
    return fields[19].decode() if len(fields) > 19 else ""


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_HOST = socket.gethostname()
_BOOT = boot_id()


def holder_is_dead(doc: dict[str, Any]) -> bool:
    """True only when the holder is provably gone: same host, same boot, and
    its pid is free or now names a process started at another time."""
    if not _BOOT or doc.get("host") != _HOST or doc.get("boot") != _BOOT:
        return False
    pid = doc.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    started = _start_time(pid)
    if started is None:
        return not _pid_exists(pid)
    recorded = doc.get("started")
    return bool(started and recorded and started != recorded)


# -- what this host has seen -------------------------------------------------------


class Observations:
    """Versions of other holders' locks this host has seen, with the monotonic
    time each was first seen, kept across runs in a small local file.

    ``time.monotonic`` is one system-wide clock on Linux, valid across
    processes until the next boot, so the boot id is stored with it.
    """

    def __init__(self, directory: str | None = None) -> None:
        self.directory = directory or os.environ.get("FSPL_STATE_DIR") or _default_state_dir()

    def _path(self, location: str) -> str:
        key = hashlib.sha256(location.encode("utf-8", "surrogateescape")).hexdigest()[:24]
        return os.path.join(self.directory, f"lock-{key}.json")

    def unchanged_for(self, location: str, version: str, now: float) -> float:
        """Seconds this exact version has been seen unchanged (0 when new)."""
        path = self._path(location)
        try:
            with open(path, encoding="utf-8") as fh:
                seen = json.load(fh)
            if seen.get("boot") == _BOOT and seen.get("version") == version:
                return max(0.0, now - float(seen["since"]))
        except (OSError, ValueError, KeyError, TypeError):
            pass
        self._record(path, {"boot": _BOOT, "version": version, "since": now})
        return 0.0

    def forget(self, location: str) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self._path(location))

    def _record(self, path: str, data: dict[str, Any]) -> None:
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            temp = f"{path}.{os.getpid()}.tmp"
            with open(temp, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(temp, path)
        except OSError as exc:  # observations only ever help; never fail for them
            _log.debug("Could not record a lock observation in %s: %s", self.directory, exc)


def _default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "filespooler")


# -- the protocol ------------------------------------------------------------------


class Lease:
    """Acquire, renew, fence and release one lock through a :class:`LeaseStore`."""

    def __init__(
        self,
        store: LeaseStore,
        location: str,
        ttl: float = DEFAULT_TTL,
        *,
        clock: Callable[[], float] = time.monotonic,
        observations: Observations | None = None,
    ) -> None:
        if not ttl > 0:
            raise SpoolError(f"{location}: the lock TTL must be a positive number of seconds")
        self.store = store
        self.location = location
        self.ttl = ttl
        self.clock = clock
        self.observations = observations or Observations()
        self.token = uuid4_text()
        self.version = ""
        self.confirmed = 0.0  # monotonic time before the last confirmed write
        self.renewals = 0
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._mutex = threading.Lock()  # one store call at a time from this lease

    # -- the document ------------------------------------------------------------
    def document(self) -> bytes:
        """Who holds the lock.  ``renewal`` changes on every renewal, so that
        observers see a live lock change and a dead one stand still."""
        return json.dumps(
            {
                "owner": self.token,
                "host": _HOST,
                "boot": _BOOT,
                "pid": os.getpid(),
                "started": _start_time(os.getpid()) or "",
                "ttl": self.ttl,
                "renewal": self.renewals,
            }
        ).encode()

    # -- acquiring -----------------------------------------------------------------
    def acquire(self) -> None:
        """Take the lock, breaking a stale one, or raise :class:`LockError`."""
        for _ in range(3):
            sent = self.clock()
            try:
                version = self.store.create(self.document())
            except FileExistsError:
                current = self.store.read()
                if current is None:
                    continue  # released meanwhile: try again
                self._break_if_stale(current)
                continue
            self.version = version or self._own_version()
            self.confirmed = sent
            self.observations.forget(self.location)
            self._beat = threading.Thread(target=self._heartbeat, daemon=True, name="fspl-lock")
            self._beat.start()
            return
        raise LockError(f"{self.location}: lost the race for the lock; try again")

    def _own_version(self) -> str:
        copy = self.store.read()
        if copy is None or _owner(copy.body) != self.token:
            raise LockError(f"{self.location}: another processor took the lock at the same time")
        return copy.version

    def _break_if_stale(self, current: LockCopy) -> None:
        """Delete ``current`` if a rule of the module docstring allows; else LockError."""
        doc = _parse(current.body)
        reason = self.stale_reason(current, doc)
        if reason is None:
            raise LockError(self.describe(doc))
        _log.warn(
            "Breaking the lock of %s held by %s (pid %s): %s",
            self.location,
            doc.get("host", "?"),
            doc.get("pid", "?"),
            reason,
        )
        try:
            self.store.delete(current.version)
        except Conflict:
            raise LockError(f"{self.location}: the lock changed while being broken") from None

    def stale_reason(self, copy: LockCopy, doc: dict[str, Any]) -> str | None:
        """Why ``copy`` may be broken, or None if it may not."""
        if holder_is_dead(doc):
            return "its process no longer exists"
        age = self.store.measure_age(copy)
        if age is not None and age > self.ttl + GRACE:
            return f"not renewed for {age:.0f} s by the storage's clock"
        # The content too: some stores keep an ETag across same-size rewrites.
        seen = f"{copy.version}/{content_version(copy.body)}"
        unchanged = self.observations.unchanged_for(self.location, seen, self.clock())
        if unchanged >= self.ttl:
            return f"seen unchanged for {unchanged:.0f} s by this host"
        return None

    def describe(self, doc: dict[str, Any]) -> str:
        """The refusal: who holds the lock and when it could be broken."""
        ttl = float(doc.get("ttl") or self.ttl)
        return (
            f"{self.location} is being processed by {doc.get('host', '?')} "
            f"(pid {doc.get('pid', '?')}); its lock is broken only once it goes "
            f"{ttl:.0f} s without renewal"
        )

    # -- holding -------------------------------------------------------------------
    def _heartbeat(self) -> None:
        interval = self.ttl / 3
        while not self._stop.wait(interval):
            try:
                self.renew()
            except (Conflict, FileNotFoundError):
                _log.error("The lock of %s was taken over; stopping", self.location)
                self.lost.set()
                return
            except Exception as exc:  # a network hiccup: try again until overdue
                _log.warn("Lock renewal of %s failed: %s", self.location, exc)
                if self.overdue():
                    self.lost.set()
                    return

    def renew(self) -> None:
        with self._mutex:
            self.renewals += 1
            sent = self.clock()
            self.version = self.store.replace(self.document(), self.version)
            self.confirmed = sent

    def overdue(self) -> bool:
        return self.clock() - self.confirmed >= self.ttl * SELF_DEADLINE

    def check(self) -> None:
        """Refuse to go on once the lock may be (or be about to be) someone else's."""
        if self.lost.is_set():
            raise SpoolError(f"{self.location}: the processing lock was lost; stopping")
        if self.overdue():
            raise SpoolError(
                f"{self.location}: the processing lock could not be renewed for "
                f"{self.clock() - self.confirmed:.0f} s; stopping before it can be broken"
            )

    def fence(self) -> None:
        """Immediately before a sequence write: still ours?"""
        self.check()
        with self._mutex:
            copy = self.store.read()
        if copy is None or _owner(copy.body) != self.token:
            self.lost.set()
            raise SpoolError(f"{self.location}: the processing lock was taken over; stopping")

    # -- releasing -----------------------------------------------------------------
    def abandon(self) -> None:
        """Stop renewing and leave the lock where it is, as a holder that
        crashed would (the kit's tests use it to make stale locks)."""
        self._stop.set()
        if self._beat is not None:
            self._beat.join()

    def release(self) -> None:
        """Stop renewing; delete the lock only if it is still ours."""
        self.abandon()
        if self.lost.is_set():
            return
        try:
            with self._mutex:
                self.store.delete(self.version)
        except Conflict:
            _log.warn("The lock of %s is no longer ours; left in place", self.location)
        except Exception as exc:
            _log.warn("Could not release the lock of %s: %s", self.location, exc)


def _parse(body: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(body)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _owner(body: bytes) -> object:
    return _parse(body).get("owner")


def holder(store: LeaseStore) -> dict[str, Any] | None:
    """The current holder's document, read without changing anything (for
    diagnostics); None when the queue is not locked."""
    copy = store.read()
    return None if copy is None else _parse(copy.body)


class LockedSequence:
    """``nextseq`` behind a :class:`Lease`: every write is fenced first."""

    def __init__(self, lease: Lease, read: Callable[[], int], write: Callable[[int], None]) -> None:
        self.lease = lease
        self._read = read
        self._write = write

    def read(self) -> int:
        return self._read()

    def check(self) -> None:
        """Before starting a job (the engine calls it)."""
        self.lease.check()

    def write(self, value: int) -> None:
        self.lease.fence()
        self._write(value)


@contextlib.contextmanager
def hold(
    store: LeaseStore,
    location: str,
    ttl: float,
    read: Callable[[], int],
    write: Callable[[int], None],
) -> Iterator[LockedSequence]:
    """``Transport.lock_sequence`` for a lease-locked transport."""
    lease = Lease(store, location, ttl)
    lease.acquire()
    try:
        yield LockedSequence(lease, read, write)
    finally:
        lease.release()
