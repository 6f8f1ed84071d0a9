"""Moving jobs between queues on any two transports (``fspl queue-move``).

A move must never lose a job, and should never duplicate one, even when it
is killed half-way and run again.  The rules:

* **never onto itself**: SRC and DST are compared by identity, not by
  spelling: a probe file written through DST's transport is looked for
  through SRC's (``Q`` and ``Q/``, a symlink, an ``sftp://`` URL of a local
  directory, all are caught);
* **a job keeps its file name** in DST, and delivery never replaces a name,
  so a job delivered before a crash is recognised when the move resumes;
* **a source job is deleted only after DST is verified** to hold a
  byte-identical copy (its SHA-256 read back from DST); a job of the same
  name but other content already in DST is a different job: ours is
  delivered under a fresh name, and the clash is reported;
* **every attempt writes a temporary name of its own** (spooler.delivery),
  so a killed move never blocks the next, and DST's stale temporary files
  are cleaned.

The one window left: killed after DST holds the verified copy and before the
source is deleted, a resumed move finds the job in DST and just deletes the
source, unless DST has *processed and deleted* it in between; then it is
delivered again.  A sequence-ordered DST never runs it (its seq is below
``nextseq``); only ``--order-by Timestamp`` processing could.  The window is
one delete request long, like the processing window (docs/reliability.md).

The source queue's lock is held for the whole move when the source has one,
so a mover excludes a processor of the source and other movers (the
"dispersal" pattern: workers pulling jobs from one incoming queue).  An
append-only source has no lock: run one mover per such queue.
"""

from __future__ import annotations

import hashlib
from contextlib import AbstractContextManager, nullcontext
from typing import BinaryIO

from . import log
from .delivery import StagedTransport
from .errors import SpoolError, no_queue
from .ids import uuid4_text
from .naming import named_source
from .queue import Job, Order, Queue
from .streams import BUFSIZE
from .transport import Capability, SequenceState, Transport

_log = log.Logger("spooler.transfer")


def _order(jobs: list[Job], order_by: Order) -> list[Job]:
    if order_by is Order.TIMESTAMP:
        return sorted(jobs, key=lambda j: (j.meta.ctime_key, j.meta.seq, j.name))
    return sorted(jobs, key=lambda j: (j.meta.seq, j.meta.ctime_key, j.name))


def _source_lock(src: Queue) -> AbstractContextManager[SequenceState | None]:
    transport = src.transport
    if Capability.PROCESS in transport.capabilities and not transport.is_append_only():
        return transport.lock_sequence()
    _log.debug('Source "%s" has no lock: run one mover per source queue', src.location)
    return nullcontext()


def same_queue(src: Transport, dst: Transport) -> bool:
    """True when both transports reach the same ``jobs/``: a probe written
    through ``dst`` shows up in a listing through ``src``."""
    probe = f".fspl-identity-{uuid4_text()}"
    try:
        with dst.open_output(probe) as out:
            out.write(b"queue-move identity probe\n")
    except FileNotFoundError:  # removed since it was listed
        raise no_queue(dst.location) from None
    try:
        return probe in src.list_names()
    finally:
        try:
            dst.delete(probe)
        except OSError:
            _log.warn('Could not remove the probe "%s" from %s', probe, dst.location)


class _Hashing:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.sha.update(data)
        return data

    def readinto(self, buffer: memoryview) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        self.sha.update(data)
        return len(data)


def digest(transport: Transport, name: str) -> str:
    """SHA-256 of a job's bytes as the transport serves them."""
    sha = hashlib.sha256()
    with transport.open_job(name) as stream:
        while chunk := stream.read(BUFSIZE):
            sha.update(chunk)
    return sha.hexdigest()


def move_jobs(
    src: Queue,
    dst: Queue,
    *,
    maxjobs: int | None = None,
    order_by: Order = Order.SEQUENCE,
    keep: bool = False,
) -> int:
    """Move (or with ``keep``, copy) jobs from ``src`` to ``dst``; return the count."""
    # Listing DST first: a missing target is the transport's "no queue"
    # error (naming it, with the queue-init hint), not the probe's failure.
    dst.transport.list_names()
    if same_queue(src.transport, dst.transport):
        raise SpoolError(
            f'"{src.location}" and "{dst.location}" are the same queue: nothing to move'
        )
    moved = 0
    with _source_lock(src):
        jobs = _order(src.scan(), order_by)
        if maxjobs is not None:
            jobs = jobs[:maxjobs]
        listing = dst.transport.list_names()
        if isinstance(dst.transport, StagedTransport):
            dst.transport.clean_stale_temps(listing)
        present = set(listing)
        for job in jobs:
            _transfer(src.transport, dst.transport, job.name, job.name in present)
            if not keep:
                src.transport.delete(job.name)
            moved += 1
    verb = "Copied" if keep else "Moved"
    _log.info("%s %d job(s) from %s to %s", verb, moved, src.location, dst.location)
    return moved


def _transfer(src: Transport, dst: Transport, name: str, present: bool) -> str:
    """Make DST hold a verified copy of ``name``; return its name in DST."""
    if not present:
        try:
            return _deliver_verified(src, dst, name, name)
        except FileExistsError:
            pass  # delivered by someone (a previous run) meanwhile
    ours = digest(src, name)
    if digest(dst, name) == ours:
        _log.info('"%s" is already in %s; finishing its move', name, dst.location)
        return name
    renamed = _deliver_verified(src, dst, name, None)
    _log.warn(
        '%s already holds a different job named "%s"; this one was delivered as "%s"',
        dst.location,
        name,
        renamed,
    )
    return renamed


def _deliver_verified(src: Transport, dst: Transport, name: str, keep_name: str | None) -> str:
    """Deliver ``name`` under ``keep_name``, or under a fresh name (one that
    carries its header when it parses, as queue-write gives) when None."""
    with src.open_job(name) as stream:
        hashing = _Hashing(stream)
        source: BinaryIO = hashing  # type: ignore[assignment]
        if keep_name is None:
            keep_name, source = named_source(source)
        delivered = dst.deliver(source, name=keep_name)
    if digest(dst, delivered) != hashing.sha.hexdigest():
        raise SpoolError(
            f'The copy of "{name}" in {dst.location} differs from the original; '
            f"the job was kept in {src.location}"
        )
    return delivered
