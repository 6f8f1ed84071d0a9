"""Moving jobs between queues on any two transports (``fspl queue-move``).

A move must never lose a job and never duplicate one, even when it is killed
half-way and run again.  Two rules give that:

* a job keeps its file name in the destination, and ``deliver`` refuses to
  replace an existing name, so a job delivered before a crash is recognised
  (and not delivered twice) when the move is resumed;
* the source copy is deleted only after the destination holds the complete
  job (``deliver`` has returned: complete and, where the transport can,
  durable).

The source queue's lock is held for the whole move when the source has one,
so a mover excludes a processor of the source and other movers (the
"dispersal" pattern: workers pulling jobs from one incoming queue).  An
append-only source has no lock: run one mover per such queue.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

from . import log
from .queue import Job, Order, Queue
from .transport import Capability, SequenceState

_log = log.get("spooler.move")


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


def move_jobs(
    src: Queue,
    dst: Queue,
    *,
    maxjobs: int | None = None,
    order_by: Order = Order.SEQUENCE,
    keep: bool = False,
) -> int:
    """Move (or with ``keep``, copy) jobs from ``src`` to ``dst``; return the count."""
    moved = 0
    with _source_lock(src):
        jobs = _order(src.scan(), order_by)
        if maxjobs is not None:
            jobs = jobs[:maxjobs]
        present = set(dst.transport.list_names())
        for job in jobs:
            if job.name in present:
                _log.info('"%s" is already in the destination; finishing its move', job.name)
            else:
                _copy(src, dst, job.name)
            if not keep:
                src.transport.delete(job.name)
            moved += 1
    _log.info("Moved %d job(s) from %s to %s", moved, src.location, dst.location)
    return moved


def _copy(src: Queue, dst: Queue, name: str) -> None:
    with src.transport.open_job(name) as stream:
        try:
            dst.transport.deliver(stream, name=name)
        except FileExistsError:
            _log.info('"%s" appeared in the destination meanwhile; not copied again', name)
