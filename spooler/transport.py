"""The Transport interface: everything the engine needs from a queue's storage.

The engine (``queue.py``) never touches a filesystem; it asks a Transport.  A
transport is one queue location (``QUEUE/`` with ``nextseq`` and ``jobs/``) on
some storage: a local directory, a bucket prefix, a directory on an SFTP
server…  Plugins declare their transports with a
:class:`spooler.spec.TransportSpec`; :mod:`spooler.registry` resolves ``-q``
values to instances.  This module is a leaf (it imports only the error and
job-name definitions), so plugins, the registry and the engine can all depend
on it.

What a transport must provide (abstract methods below):

* ``list_names``: the file names in ``jobs/`` (the engine filters the job
  pattern);
* ``open_job``: a job as a readable stream from offset 0; a stream with a real
  ``fileno()`` lets a command read its payload straight from the file;
* ``read_prefixes``: the first bytes of many jobs (headers), which remote
  transports answer with concurrent ranged reads;
* ``deliver``: make a complete job appear atomically under a fresh
  ``fspl-UUID.fspl`` name, never overwriting anything;
* ``delete``, ``open_output`` (the ``NAME.out`` file of ``SaveBoth``);
* ``init`` (optionally append-only), ``is_append_only``;
* ``lock_sequence``: exclusive access to ``nextseq`` for the duration of a
  ``with`` block, as a :class:`SequenceState`.

Optional: ``header_cache`` (a :class:`HeaderCache`, the seq and creation
time of jobs remembered between scans; the local transport has one).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import BinaryIO, ClassVar, NamedTuple, Protocol

from .errors import LockError
from .ids import JOB_PREFIX, JOB_SUFFIX


def is_job_name(name: str) -> bool:
    """True for names matching ``fspl-*.fspl``, the only files that are jobs."""
    return (
        name.startswith(JOB_PREFIX)
        and name.endswith(JOB_SUFFIX)
        and len(name) >= len(JOB_PREFIX) + len(JOB_SUFFIX)
        and "/" not in name
    )


class Capability:
    """Names of optional abilities a transport declares (see docs/plugins.md)."""

    #: ``open_job`` streams have a real descriptor (payload handed over as is).
    LOCAL_FD = "local-fd"
    #: ``lock_sequence`` works, so the queue can be processed in place.
    PROCESS = "process"
    #: ``deliver`` refuses to replace an existing object by itself
    #: (create-only), rather than relying on unique names alone.
    CREATE_ONLY = "create-only"
    #: ``read_prefixes`` reads many headers concurrently.
    CONCURRENT_HEADERS = "concurrent-headers"
    #: ``lock_sequence`` is a :mod:`spooler.lease` lock whose store is the
    #: transport's ``lock_store`` attribute (the kit tests the lock through it).
    LEASE = "lease"


class SequenceState(Protocol):
    """The queue's next sequence number, valid while the lock is held."""

    def read(self) -> int: ...

    def write(self, value: int) -> None: ...


class SequencePeek(NamedTuple):
    """The sequence state as a diagnostic sees it, without taking anything.

    ``next_seq`` is None when it cannot be read; ``holder`` describes who holds
    the processing lock (None when nobody does)."""

    next_seq: int | None
    holder: str | None = None


#: A scan's row: seq, ctime seconds, ctime nanoseconds, file name.
Row = tuple[int, int, int, str]


class HeaderCache(ABC):
    """Seq and creation time of jobs whose names do not carry them (the
    reference's UUID names), remembered between scans so that a scan need
    not read those jobs again (docs/architecture.md, "The header cache").

    One object serves one scan: :meth:`lookup`, then :meth:`read_prefixes`
    of the jobs it did not answer, then :meth:`remember` with what parsed.
    The cache is a hint, as names are: the engine compares the header with
    it before a cached job runs or is shown, and calls :meth:`drop` on a
    mismatch."""

    @abstractmethod
    def lookup(self, names: Collection[str]) -> dict[str, Row]:
        """Rows of those of ``names`` that are cached for the file now under
        that name (a file replaced since is not); must never fail."""

    @abstractmethod
    def read_prefixes(
        self, names: Iterable[str], size: int
    ) -> Iterator[tuple[str, bytes | OSError]]:
        """:meth:`Transport.read_prefixes`, noting what :meth:`remember` needs
        to store what is read (the local cache: each file's inode)."""

    @abstractmethod
    def remember(self, fresh: list[Row]) -> None:
        """Headers just read for the names :meth:`lookup` did not answer.
        The cache may store them with its hits and forget every other name;
        failing to store is silent."""

    @abstractmethod
    def drop(self) -> None:
        """Forget everything: a cached value was found wrong."""


class Transport(ABC):
    """One queue on one storage system.  Subclasses live in plugins."""

    #: Capabilities (see :class:`Capability`); listed by ``fspl transports``.
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, location: str) -> None:
        #: The queue location exactly as the user gave it (FSPL_JOB_QUEUEDIR).
        self.location = location

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, str]) -> Transport:
        """Build from a ``-q`` value; ``options`` are ``-o KEY=VALUE`` extras."""
        return cls(url)

    def job_location(self, name: str) -> str:
        """FSPL_JOB_FULLPATH: the location plus ``/jobs/NAME``, not normalised."""
        return f"{self.location.rstrip('/')}/jobs/{name}"

    # -- jobs ------------------------------------------------------------
    @abstractmethod
    def list_names(self) -> list[str]:
        """Names of the entries of ``jobs/`` (any names; the engine filters)."""

    @abstractmethod
    def open_job(self, name: str) -> BinaryIO:
        """Open a job for reading from its first byte.

        Raise ``FileNotFoundError`` if it is gone.  Return an unbuffered
        stream (``buffering=0``) when it has a descriptor, so that the engine
        can read exactly the header and hand the rest on.
        """

    def read_prefixes(
        self, names: Iterable[str], size: int
    ) -> Iterator[tuple[str, bytes | OSError]]:
        """Yield ``(name, first size bytes or the error)`` for each name.

        The default opens each job in turn; remote transports override this
        with concurrent ranged reads.  Order of results is not significant.
        """
        for name in names:
            try:
                with self.open_job(name) as stream:
                    yield name, stream.read(size)
            except OSError as exc:
                yield name, exc

    @abstractmethod
    def deliver(self, source: BinaryIO, name: str | None = None) -> str:
        """Store ``source`` as a new job; return its file name.

        The name is a fresh ``fspl-UUID.fspl`` unless ``name`` is given
        (``queue-move`` keeps a job's name so that a resumed move never
        duplicates it).  The job must become visible under its final name
        only once complete (write to a name outside the pattern, then rename)
        and must never replace an existing file: raise ``FileExistsError``
        if ``name`` exists.  A failure must leave no job behind.
        """

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove a job (or its ``.out`` file)."""

    @abstractmethod
    def open_output(self, name: str) -> AbstractContextManager[BinaryIO]:
        """Create or truncate ``jobs/NAME`` for a command's output.

        The yielded file must have a real ``fileno()`` (remote transports
        spool to a local temporary file and upload it when the block ends).
        """

    # -- queue structure and sequence -------------------------------------
    @abstractmethod
    def init(self, append_only: bool = False) -> None:
        """Create the queue; fail if it exists."""

    @abstractmethod
    def is_append_only(self) -> bool:
        """True when the queue has no sequence state (``--append-only``)."""

    @abstractmethod
    def lock_sequence(self) -> AbstractContextManager[SequenceState]:
        """Exclusive access to the queue's sequence number.

        Must fail immediately with :class:`spooler.errors.LockError` when held
        elsewhere; must fail with a :class:`spooler.errors.SpoolError` naming
        the append-only case when the queue has no sequence state.
        """

    def peek_sequence(self) -> SequencePeek:
        """The sequence state for ``queue-status``: must not create, break or
        modify anything (diagnostics are read-only).  The default takes and
        releases the lock, which is read-only for locks that die with their
        holder; transports whose locks are objects override it."""
        try:
            with self.lock_sequence() as state:
                return SequencePeek(state.read())
        except LockError as exc:
            return SequencePeek(None, str(exc))

    def header_cache(self) -> HeaderCache | None:
        """The cache of headers for this queue's jobs, or None (the default:
        every job whose name does not carry its header is read)."""
        return None

    def local_directory(self) -> str | None:
        """The queue's directory when it is a directory of this machine (the
        watcher then waits on inotify instead of polling); None otherwise."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to do here
        """Release connections; the default has none."""
