"""The spool engine: scan a queue, order its jobs, process them.

Everything here goes through a :class:`~spooler.transport.Transport`; this
module never names a path.  Processing follows the reference exactly:

* ``Sequence`` order: lock, read ``nextseq``, scan every header (duplicate
  seqs abort before anything runs), then run the job whose seq is
  ``nextseq`` until there is none.
* ``Timestamp`` order: lock (the sequence is neither read nor written), run
  every job in creation-time order.

After a job: success advances the sequence and deletes the job; failure
follows ``--on-error``.  The sequence is written *before* the job is
deleted, so a crash in between leaves a stale file that is never run again;
the only window in which a job can run twice is between the command's exit
and that write (docs/reliability.md).
"""

from __future__ import annotations

import enum
import gc
import io
from collections.abc import Callable, Iterable
from operator import itemgetter
from typing import BinaryIO, NamedTuple, Protocol, TypeVar

from . import log
from .delivery import StagedTransport
from .errors import CommandFailed, HeaderError, JobNotFound, SpoolError
from .jobenv import JobRef
from .jobsource import JobSource
from .naming import NamedMeta, check_header, named_row, named_source, parse_name
from .packet import FIXED_LEN, Meta, Special, needed_length, parse_header
from .redact import redact
from .transport import Row, SequenceState, Transport, is_job_name

_log = log.Logger("spooler.queue")
#: Bytes read from each job in a scan; real headers are well under 200
#: (longer ones are re-read whole), and small reads are measurably faster.
PREFIX_READ = 512


class Order(enum.Enum):
    SEQUENCE = "Sequence"
    TIMESTAMP = "Timestamp"


class OnError(enum.Enum):
    RETRY = "Retry"
    DELETE = "Delete"
    LEAVE = "Leave"


class Job(NamedTuple):
    """A job found by a scan: its file name and its metadata.

    ``meta`` is the decoded header (:class:`~spooler.packet.Meta`), or for a
    job whose name carries its header (:mod:`spooler.naming`) what the name
    says (:class:`~spooler.naming.NamedMeta`: seq and ctime, no command);
    :meth:`Queue.open` reads the header itself."""

    name: str
    meta: Meta | NamedMeta


class CachedMeta(NamedMeta):
    """What the transport's header cache says about a job whose name does not
    carry its header: used as a name's :class:`~spooler.naming.NamedMeta`,
    and compared with the header in the same way when the job is opened."""

    __slots__ = ()


class CacheMismatch(SpoolError):
    """A job's header says something else than the header cache (the file
    was rewritten in place); the cache is dropped."""


class ProcessConfig(NamedTuple):
    order_by: Order = Order.SEQUENCE
    on_error: OnError = OnError.RETRY
    never_delete: bool = False
    maxjobs: int | None = None
    save_output: bool = False


class Outcome(NamedTuple):
    """How one job went; ``detail`` explains a failure."""

    ok: bool
    detail: str


#: Runs one Command job: (metadata, where it lives (None for stdin-process),
#: payload fd, output fd).
Runner = Callable[[Meta, "JobRef | None", int, "int | None"], Outcome]


class QueueStatus(NamedTuple):
    """What ``queue-status`` reports; :meth:`lines` renders it."""

    location: str
    append_only: bool
    next_seq: int | None
    #: Who holds the processing lock, when someone does.
    holder: str | None
    seqs: list[int]
    duplicates: list[int]
    unparsable: list[str]

    @property
    def locked(self) -> bool:
        return self.holder is not None

    @property
    def stalled(self) -> bool:
        return self.next_seq is not None and bool(self.seqs) and self.next_seq not in self.seqs

    def lines(self) -> list[str]:
        out = [f"queue: {redact(self.location)}"]
        if self.append_only:
            out.append("next: - (append-only queue: it can be written and listed, not processed)")
        else:
            shown = "?" if self.next_seq is None else self.next_seq
            locked = f" (locked: {self.holder})" if self.holder else ""
            out.append(f"next: {shown}{locked}")
        present = format_ranges(self.seqs) if self.seqs else "none"
        out.append(f"jobs: {len(self.seqs)} (seq {present})")
        if self.duplicates:
            out.append(
                f"duplicates: {format_ranges(self.duplicates)} (sequence order refuses to run)"
            )
        if self.unparsable:
            out.append(
                f"unparsable: {len(self.unparsable)} file(s) ignored: {', '.join(self.unparsable)}"
            )
        if self.next_seq is not None and self.seqs:
            stale = [s for s in self.seqs if s < self.next_seq]
            if stale:
                out.append(
                    f"stale: {format_ranges(stale)} (below next; never run in sequence order)"
                )
            if self.stalled:
                waiting = [s for s in self.seqs if s > self.next_seq]
                if waiting:
                    out.append(
                        f"stalled: next is {self.next_seq}; present: {format_ranges(waiting)}"
                    )
        return out


def _held_check(state: SequenceState) -> Callable[[], object]:
    """What to call before each job: a lock that may have been lost must not
    start one.

    Lease-based sequences (spooler.lease) refuse once their lock was taken
    over or could not be renewed in time; flock-based ones need no check."""
    check: Callable[[], object] | None = getattr(state, "check", None)
    return _always if check is None else check


def _always() -> bool:
    return True


def _duplicate(name: str, seq: int, other: str) -> SpoolError:
    """The reference's error for a seq seen twice."""
    return SpoolError(
        f'Attempted to process "{name}" with seq {seq}, which was already seen in "{other}"'
    )


def _by_seq(jobs: list[Job]) -> dict[int, Job]:
    """Jobs by seq; a seq seen twice is the reference's error."""
    by_seq: dict[int, Job] = {}
    for scanned in jobs:
        other = by_seq.setdefault(scanned.meta.seq, scanned)
        if other is not scanned:
            raise _duplicate(scanned.name, scanned.meta.seq, other.name)
    return by_seq


_SEQ = itemgetter(0)
#: ``Transport.read_prefixes`` or ``HeaderCache.read_prefixes``.
_PrefixReader = Callable[[list[str], int], Iterable[tuple[str, "bytes | OSError"]]]
_T = TypeVar("_T")


def _without_gc(scan: Callable[[], _T]) -> _T:
    """``scan()`` with the collector paused.

    A scan builds small objects only, none of them cyclic: the collector
    would walk the growing containers again and again (10-15 % of a 100k
    scan)."""
    paused = gc.isenabled()
    gc.disable()
    try:
        return scan()
    finally:
        if paused:
            gc.enable()


class SeqIndex(Protocol):
    """The jobs of a sequence pass by seq (a dict, or :class:`_NamedIndex`)."""

    def get(self, seq: int, /) -> Job | None: ...


class _NamedIndex:
    """Jobs by seq when every job's name carries its header: only the names
    are held (a 100k backlog needs no 100k job objects); a :class:`Job` is
    built for the few that are looked up."""

    def __init__(self, names: dict[int, str]) -> None:
        self._names = names

    def get(self, seq: int, /) -> Job | None:
        name = self._names.get(seq)
        if name is None:
            return None
        row = named_row(name)
        assert row is not None  # only such names are held
        return Job(name, NamedMeta(row[0], row[1], row[2]))


def format_ranges(values: Iterable[int]) -> str:
    """``[4, 5, 6, 9]`` → ``"4–6, 9"``."""
    ordered = sorted(set(values))
    parts: list[str] = []
    start = prev = None
    for value in [*ordered, None]:
        if start is not None and value is not None and value == prev + 1:  # type: ignore[operator]
            prev = value
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}–{prev}")
        start = prev = value
    return ", ".join(parts)


class Queue:
    """A queue reached through a transport, optionally through a decoder."""

    def __init__(self, transport: Transport, decoder: str | None = None) -> None:
        self.transport = transport
        self.decoder = decoder

    def close(self) -> None:
        """Release the transport's connections (SSH sessions, clients…)."""
        self.transport.close()

    def __enter__(self) -> Queue:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def location(self) -> str:
        return self.transport.location

    def job_ref(self, name: str) -> JobRef:
        return JobRef(name, self.location, self.transport.job_location(name))

    def init(self, append_only: bool = False) -> None:
        """Create the queue (``queue-init``); fails if it exists."""
        self.transport.init(append_only)

    def write(self, data: bytes | BinaryIO) -> str:
        """Deliver a packet (``queue-write``); return the new job's file name.

        A packet whose header parses is named after it (:mod:`spooler.naming`),
        so that scans need not open it; anything else gets a UUID name."""
        name, source = named_source(io.BytesIO(data) if isinstance(data, bytes) else data)
        return self.transport.deliver(source, name)

    def open(self, name: str) -> JobSource:
        """Open a job: parsed header plus a descriptor at its payload.

        A name that carries header fields must agree with the header
        (:class:`~spooler.naming.NameMismatch` otherwise).  For a job found
        by a scan, :meth:`open_scanned` also checks what the header cache
        said: that is the check before a job runs or its info or payload is
        shown."""
        source = JobSource(self.transport.open_job(name), self.decoder)
        meta = source.header.meta
        try:
            check_header(name, meta.seq, meta.ctime_secs, meta.ctime_nanos)
        except BaseException:
            source.close()
            raise
        return source

    def open_scanned(self, job: Job) -> JobSource:
        """:meth:`open` for a job found by a scan (:meth:`find`, :meth:`scan`):
        what the scan took from the job's name or from the header cache is
        compared with the header (a name is not parsed again).  A mismatch
        with the cache raises :class:`CacheMismatch` and drops the cache."""
        known = job.meta
        if type(known) is not NamedMeta and type(known) is not CachedMeta:
            return self.open(job.name)
        source = JobSource(self.transport.open_job(job.name), self.decoder)
        meta = source.header.meta
        if known != (meta.seq, meta.ctime_secs, meta.ctime_nanos):
            source.close()
            if type(known) is CachedMeta:
                raise self._cache_mismatch(job.name, known, meta)
            check_header(job.name, meta.seq, meta.ctime_secs, meta.ctime_nanos)
        return source

    def _cache_mismatch(self, name: str, cached: CachedMeta, meta: Meta) -> CacheMismatch:
        """Drop the header cache, which was wrong about ``name``; the error."""
        cache = self.transport.header_cache()
        if cache is not None:
            cache.drop()
        return CacheMismatch(
            f'Job file "{name}" does not match the header cache: the cache says seq '
            f"{cached.seq}, ctime {cached.ctime_secs}.{cached.ctime_nanos:09d}; the header says "
            f"seq {meta.seq}, ctime {meta.ctime_secs}.{meta.ctime_nanos:09d} (the file was "
            "changed in place; the cache was dropped, run again)"
        )

    # -- scanning ---------------------------------------------------------
    def job_names(self) -> list[str]:
        return [n for n in self.transport.list_names() if is_job_name(n)]

    def _names(self) -> list[str]:
        """Job names for a processing pass (the lock is held), removing the
        temporary files of deliveries that died, from the same listing."""
        names = self.transport.list_names()
        if isinstance(self.transport, StagedTransport):
            self.transport.clean_stale_temps(names)
        return [n for n in names if is_job_name(n)]

    def scan(self, names: list[str] | None = None) -> list[Job]:
        """Every job whose header parses; others are logged and skipped.

        Jobs whose names carry their header are taken from the name, without
        a read; the rest are read (all of them behind a decoder, which may
        hide any name's packet).  Jobs come in listing order."""
        if names is None:
            names = self.job_names()
        if self.decoder is not None:
            return [job for job in map(self._scan_decoded, names) if job is not None]
        return _without_gc(lambda: self._scan_plain(names))

    def _scan_plain(self, names: list[str]) -> list[Job]:
        named: list[Job] = []
        unnamed: list[str] = []
        for name in names:
            meta = parse_name(name)
            if meta is None:
                unnamed.append(name)
            else:
                named.append(Job(name, meta))
        if not unnamed:
            return named
        read = self._read_unnamed(unnamed)
        if not named:
            return read
        found = {job.name: job for job in (*named, *read)}
        return [found[name] for name in names if name in found]

    def rows(self) -> list[Row]:
        """``(seq, secs, nanos, name)`` of every job whose header parses,
        sorted by seq (listing order among equal ones): ``queue-ls``.

        As :meth:`listing`, without a :class:`Job` or metadata object per
        job: tuples, sorted by a C key function."""
        if self.decoder is not None:
            return [(job.meta.seq, *job.meta.ctime_key, job.name) for job in self.listing()]
        names = self.transport.list_names()
        rows = _without_gc(lambda: self._rows(names))
        rows.sort(key=_SEQ)
        return rows

    def _rows(self, names: list[str]) -> list[Row]:
        rows: list[Row] = []
        append = rows.append
        unnamed: list[str] = []
        for name in names:
            row = named_row(name)
            if row is not None:
                append(row)
            elif is_job_name(name):
                unnamed.append(name)
        if not unnamed:
            return rows
        hits, jobs = self._cached_or_read(unnamed)
        read = [(job.meta.seq, *job.meta.ctime_key, job.name) for job in jobs]
        if not rows and not hits:
            return read
        found = {row[3]: row for row in (*rows, *read)}
        found.update(hits)
        return [found[name] for name in names if name in found]

    def _read_unnamed(self, names: list[str]) -> list[Job]:
        """The jobs among ``names`` (none named by us) whose headers parse, in
        listing order; those the header cache has carry a :class:`CachedMeta`."""
        hits, read = self._cached_or_read(names)
        if not hits:
            return read
        found = {row[3]: Job(row[3], CachedMeta(*row[:3])) for row in hits.values()}
        found.update((job.name, job) for job in read)
        return [found[name] for name in names if name in found]

    def _cached_or_read(self, names: list[str]) -> tuple[dict[str, Row], list[Job]]:
        """Rows by name of the jobs the transport's header cache has, and the
        others read (offered to the cache).  Without a cache, all are read."""
        cache = self.transport.header_cache()
        if cache is None:
            return {}, self._read_headers(names, self.transport.read_prefixes)
        hits = cache.lookup(names)
        todo = [n for n in names if n not in hits] if hits else names
        read = self._read_headers(todo, cache.read_prefixes)
        cache.remember([(job.meta.seq, *job.meta.ctime_key, job.name) for job in read])
        return hits, read

    def _sequence_index(self, names: list[str]) -> SeqIndex:
        """The jobs of a sequence pass by seq; a seq seen twice is the
        reference's error, naming the two files in listing order."""
        if self.decoder is not None:
            return _by_seq(self.scan(names))
        by_name: dict[int, str] = {}
        for name in names:
            row = named_row(name)
            if row is None:  # a job to read: the general scan, in listing order
                return _by_seq(self.scan(names))
            other = by_name.setdefault(row[0], name)
            if other is not name:
                raise _duplicate(name, row[0], other)
        return _NamedIndex(by_name)

    def _read_headers(self, names: list[str], read_prefixes: _PrefixReader) -> list[Job]:
        jobs: list[Job] = []
        append = jobs.append
        for name, data in read_prefixes(names, PREFIX_READ):
            if type(data) is bytes:  # the common case, kept tight for big queues
                try:
                    append(Job(name, parse_header(data).meta))
                    continue
                except HeaderError:
                    pass
            meta = self._parse_prefix(name, data)
            if meta is not None:
                append(Job(name, meta))
        return jobs

    def _parse_prefix(self, name: str, data: bytes | OSError) -> Meta | NamedMeta | None:
        if isinstance(data, OSError):
            _log.debug('Skipping "%s": %s', name, data)
            return None
        try:
            return parse_header(data).meta
        except HeaderError as exc:
            if len(data) == PREFIX_READ and len(data) >= FIXED_LEN:
                try:
                    if needed_length(data) > len(data):  # a header larger than the prefix
                        job = self._scan_decoded(name)
                        return None if job is None else job.meta
                except HeaderError:
                    pass
            _log.debug('Skipping "%s": unparsable header: %s', name, exc)
            return None

    def _scan_decoded(self, name: str) -> Job | None:
        try:
            with JobSource(self.transport.open_job(name), self.decoder) as source:
                return Job(name, source.header.meta)
        except (HeaderError, OSError) as exc:
            _log.debug('Skipping "%s": unparsable header: %s', name, exc)
            return None

    def listing(self) -> list[Job]:
        """Jobs sorted by sequence number (duplicates allowed), as queue-ls."""
        return sorted(self.scan(), key=lambda job: job.meta.seq)

    def find(self, seq: int) -> Job:
        """The one job with ``seq``; error if absent or duplicated."""
        # As the reference (and its manual): a duplicated seq anywhere in the
        # queue refuses every -j lookup, not only a lookup of that seq.
        found = _by_seq(self.scan()).get(seq)
        if found is None:
            raise JobNotFound(f'Job {seq} not found in directory "{self.location}"')
        return found

    # -- processing -------------------------------------------------------
    def process(
        self, config: ProcessConfig, runner: Runner, proceed: Callable[[], bool] | None = None
    ) -> int:
        """Process under the queue lock; return the number of jobs run.

        ``proceed``, if given, is asked before each job; False ends the pass
        there, with nothing of that job touched (the watch loop stops on a
        signal, or gives its worker to other queues).
        """
        go = proceed or _always
        with self.transport.lock_sequence() as state:
            if config.order_by is Order.TIMESTAMP:
                # Stable sort on ctime alone: equal times keep directory order,
                # as in the reference.
                ordered = sorted(self.scan(self._names()), key=lambda j: j.meta.ctime_key)
                return self._run_list(ordered, state, config, runner, go)
            return self._run_sequence(state, config, runner, go)

    def _run_sequence(
        self, state: SequenceState, config: ProcessConfig, runner: Runner, go: Callable[[], bool]
    ) -> int:
        next_seq = state.read()
        by_seq = _without_gc(lambda: self._sequence_index(self._names()))
        still_held = _held_check(state)
        maxjobs = -1 if config.maxjobs is None else config.maxjobs
        done = 0
        while done != maxjobs:
            job = by_seq.get(next_seq)
            if job is None:
                _log.debug("No job with seq %d; stopping", next_seq)
                break
            if not go():
                break
            still_held()
            ok = self._run_one(job, config, runner)
            next_seq = (next_seq + 1) % 2**64  # u64, wrapping as the reference
            state.write(next_seq)
            self._dispose(job, ok, config)
            done += 1
        else:
            _log.debug(
                "Stopping processing as requested maximum jobs processed %d has been hit", done
            )
        return done

    def _run_list(
        self,
        jobs: list[Job],
        state: SequenceState,
        config: ProcessConfig,
        runner: Runner,
        go: Callable[[], bool],
    ) -> int:
        still_held = _held_check(state)
        done = 0
        for job in jobs:
            if (config.maxjobs is not None and done >= config.maxjobs) or not go():
                break
            still_held()
            ok = self._run_one(job, config, runner)
            self._dispose(job, ok, config)
            done += 1
        return done

    def _run_one(self, job: Job, config: ProcessConfig, runner: Runner) -> bool:
        """Run a job; raise CommandFailed under Retry, else return success."""
        _log.debug('Preparing to execute job %d from "%s"', job.meta.seq, job.name)
        try:
            source = self.open_scanned(job)
        except FileNotFoundError:
            raise SpoolError(f'Job file "{job.name}" disappeared before it could run') from None
        with source:
            meta = source.header.meta
            if config.save_output:
                # Created (empty) for NOP and Fail packets too, as the reference does.
                with self.transport.open_output(job.name + ".out") as out:
                    outcome = self._outcome(meta, job, source.fd, out.fileno(), runner)
            else:
                outcome = self._outcome(meta, job, source.fd, None, runner)
        if outcome.ok:
            return True
        if config.on_error is OnError.RETRY:
            raise CommandFailed(
                f"Aborting processing due to failure of job {meta.seq} "
                f'("{job.name}"): {outcome.detail}'
            )
        _log.warn("Job %d failed (%s); continuing per --on-error", meta.seq, outcome.detail)
        return False

    def _outcome(
        self, meta: Meta, job: Job, payload_fd: int, output: int | None, runner: Runner
    ) -> Outcome:
        if meta.cmd is Special.NOP:
            return Outcome(True, "NOP packet")
        if meta.cmd is Special.FAIL:
            return Outcome(False, "Fail packet")
        return runner(meta, self.job_ref(job.name), payload_fd, output)

    def _dispose(self, job: Job, ok: bool, config: ProcessConfig) -> None:
        if config.never_delete or (not ok and config.on_error is OnError.LEAVE):
            return
        try:
            self.transport.delete(job.name)
        except FileNotFoundError:
            _log.warn('Job file "%s" was already gone', job.name)

    # -- diagnosis ----------------------------------------------------------
    def status(self) -> QueueStatus:
        """Sequence state and present seqs, without blocking a processor."""
        append_only = self.transport.is_append_only()
        next_seq, holder = None, None
        if not append_only:
            peek = self.transport.peek_sequence()
            next_seq, holder = peek.next_seq, peek.holder
        names = self.job_names()
        jobs = self.scan(names)
        seqs = sorted(job.meta.seq for job in jobs)
        dups = sorted({s for i, s in enumerate(seqs) if i and seqs[i - 1] == s})
        parsed = {job.name for job in jobs}
        return QueueStatus(
            self.location,
            append_only,
            next_seq,
            holder,
            seqs,
            dups,
            sorted(n for n in names if n not in parsed),
        )
