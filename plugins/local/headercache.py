"""The local transport's header cache: seq and ctime of jobs whose names do
not carry them, kept per user outside the queue.

Reading a header costs an open, a read and a close per job (about 8 µs in
CPython, plus the msgpack parse); a queue written by the reference (UUID
names) pays that on every ``queue-ls``.  The cache remembers each such job's
seq and creation time under its name and the inode of the file read (from
the ``fstat`` the read does anyway); a scan compares it with the inode that
``os.scandir`` gives without a ``stat``, so a job replaced by a rename
(Syncthing, editors, ``queue-move``) has a new inode and is read again.

Where: ``$XDG_CACHE_HOME/filespooler/headers-DEV-INO.msgpack`` (default
``~/.cache/filespooler``), keyed by the jobs directory's device and inode.
Not in the queue: readers need no write access there, and Syncthing does not
carry one machine's inodes to another.  ``FSPL_NO_HEADER_CACHE=1`` turns it
off.  A file that cannot be read, is too big, is corrupt or of another
format version is an empty cache; a cache that cannot be written is none.

The file is one msgpack array ``[TAG, VERSION, names, inodes, seqs, secs,
nanos]`` of parallel arrays: loading and checking them is a few C-level
passes (``map``, ``min``/``max``, ``zip``), with no Python code per entry.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable, Iterator

import msgpack

from spooler.transport import HeaderCache, Row

#: The local transport's prefix reader, filling a dict name → inode.
Reader = Callable[
    [Iterable[str], int, "dict[str, int] | None"], Iterator[tuple[str, "bytes | OSError"]]
]

DISABLE_VAR = "FSPL_NO_HEADER_CACHE"
_TAG = "fspl-header-cache"
_VERSION = 1
#: Scans that read fewer headers than this leave the file as it is (a
#: queue that changes by a few jobs per scan is not rewritten each time).
WRITE_THRESHOLD = 32
#: Larger files are ignored and not written (about 70 bytes per job: some
#: 900,000 jobs), so a runaway file cannot make every scan slow.
MAX_BYTES = 64 * 1024 * 1024
_U64 = 2**64
_I64 = 2**63
_U32 = 2**32


def cache_directory() -> str | None:
    """Where the cache files live, or None when the cache is off (or there is
    no home to put it in)."""
    if os.environ.get(DISABLE_VAR):
        return None
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # unset, empty or relative: the spec says ignore it
        home = os.path.expanduser("~")
        if not os.path.isabs(home):
            return None
        base = os.path.join(home, ".cache")
    return os.path.join(base, "filespooler")


def open_cache(jobs_dir: str, reader: Reader) -> LocalHeaderCache | None:
    """The cache of ``jobs_dir`` (whose jobs ``reader`` reads), or None when
    the cache is off or the directory cannot be looked at."""
    directory = cache_directory()
    if directory is None:
        return None
    try:
        st = os.stat(jobs_dir)
    except OSError:
        return None
    name = f"headers-{st.st_dev}-{st.st_ino}"
    return LocalHeaderCache(jobs_dir, os.path.join(directory, name), reader)


class LocalHeaderCache(HeaderCache):
    """One scan's view of one jobs directory's cache file."""

    def __init__(self, jobs_dir: str, path: str, reader: Reader) -> None:
        self.jobs_dir = jobs_dir
        #: The cache file (``.msgpack`` added); temporary files share its stem.
        self.path = path + ".msgpack"
        self._stem = path
        self._reader = reader
        self._inodes: dict[str, int] = {}  # as cached: those of the hits are current
        self._hits: dict[str, Row] = {}
        self._read: dict[str, int] = {}  # inodes of the files read_prefixes read

    def lookup(self, names: Collection[str]) -> dict[str, Row]:
        rows, self._inodes = _load(self.path)
        if not rows:  # nothing to check: no second pass over the directory
            return {}
        cached_inodes = self._inodes
        wanted = names if isinstance(names, (set, frozenset, dict)) else set(names)
        hits: dict[str, Row] = {}
        try:
            with os.scandir(self.jobs_dir) as entries:
                for entry in entries:
                    name = entry.name
                    if name in wanted and cached_inodes.get(name) == entry.inode():
                        hits[name] = rows[name]
        except OSError:  # the directory went away since the listing: read what can be
            return {}
        self._hits = hits
        return hits

    def read_prefixes(
        self, names: Iterable[str], size: int
    ) -> Iterator[tuple[str, bytes | OSError]]:
        return self._reader(names, size, self._read)

    def remember(self, fresh: list[Row]) -> None:
        if len(fresh) < WRITE_THRESHOLD:
            return
        read = self._read
        # Rows of files this object did not read have no known inode: not
        # stored.  (A header longer than the prefix is parsed from a second
        # read, but its inode is the prefix read's: a file replaced in
        # between has a new one, and the next scan misses.)
        rows = [*self._hits.values(), *(row for row in fresh if row[3] in read)]
        inodes = self._inodes
        inodes.update(read)
        seqs, secs, nanos, names = (list(column) for column in zip(*rows, strict=True))
        data = msgpack.packb(
            [_TAG, _VERSION, names, [inodes[name] for name in names], seqs, secs, nanos],
            use_bin_type=True,
        )
        if len(data) <= MAX_BYTES:
            self._write(data)

    def _write(self, data: bytes) -> None:
        """Replace the file atomically; any failure leaves no cache written."""
        temp = f"{self._stem}.{os.getpid()}-{os.urandom(4).hex()}.tmp"
        try:
            os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except OSError:
            return
        try:
            with open(fd, "wb") as out:
                out.write(data)
            os.replace(temp, self.path)
        except OSError:
            try:
                os.unlink(temp)
            except OSError:
                pass

    def drop(self) -> None:
        try:
            os.unlink(self.path)
        except OSError:
            pass


def _load(path: str) -> tuple[dict[str, Row], dict[str, int]]:
    """Rows and inodes by name from the cache file; both empty for a file
    that is missing, too big, unreadable or not a cache of this version."""
    try:
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size > MAX_BYTES:
                return {}, {}
            data = handle.read()
        doc = msgpack.unpackb(data, raw=False)
    except (OSError, ValueError, msgpack.UnpackException):
        return {}, {}
    if not _valid(doc):
        return {}, {}
    _, _, names, inodes, seqs, secs, nanos = doc
    return dict(zip(names, zip(seqs, secs, nanos, names, strict=True), strict=True)), dict(
        zip(names, inodes, strict=True)
    )


def _valid(doc: object) -> bool:
    """True for ``[TAG, VERSION, names, inodes, seqs, secs, nanos]``: parallel
    arrays of the right types, numbers in the header's ranges."""
    if not (isinstance(doc, list) and len(doc) == 7 and doc[0] == _TAG and doc[1] == _VERSION):
        return False
    columns = doc[2:]
    if not all(type(column) is list and len(column) == len(doc[2]) for column in columns):
        return False
    names, *numbers = columns
    if set(map(type, names)) - {str} or any(set(map(type, c)) - {int} for c in numbers):
        return False
    if not names:
        return True
    inodes, seqs, secs, nanos = numbers
    return (
        len(set(names)) == len(names)
        and min(inodes) >= 0
        and _within(seqs, 0, _U64)
        and _within(secs, -_I64, _I64)
        and _within(nanos, 0, _U32)
    )


def _within(column: list[int], low: int, high: int) -> bool:
    return low <= min(column) and max(column) < high
