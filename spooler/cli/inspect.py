"""Queue inspection: queue-ls, queue-info, queue-payload, queue-status."""

from __future__ import annotations

from ..jobenv import job_environment, render_info
from ..queue import Job, Queue
from ..streams import copy_fd
from . import actions, options


@options.command("queue-ls")
@options.queuedir
@options.decoder
def queue_ls(queuedir: str, decoder: str | None) -> None:
    """List the jobs in a queue, sorted by ID (reads headers only)."""
    actions.queue_ls(options.open_queue(queuedir, decoder=decoder))


def _find(queuedir: str, job: str, decoder: str | None) -> tuple[Queue, Job]:
    queue = options.open_queue(queuedir, decoder=decoder)
    return queue, queue.find(options.parse_id(job))


@options.command("queue-info")
@options.queuedir
@options.job_id
@options.decoder
def queue_info(queuedir: str, job: str, decoder: str | None) -> None:
    """Print a job's environment, exactly as a processed command gets it."""
    queue, found = _find(queuedir, job, decoder)
    with queue.open_scanned(found) as source:  # the whole header, checked against the scan
        meta = source.header.meta
    options.emit(render_info(job_environment(meta, queue.job_ref(found.name))))


@options.command("queue-payload")
@options.queuedir
@options.job_id
@options.decoder
def queue_payload(queuedir: str, job: str, decoder: str | None) -> None:
    """Write a job's payload to stdout."""
    queue, found = _find(queuedir, job, decoder)
    with queue.open_scanned(found) as source:
        copy_fd(source.fd, 1)


@options.command("queue-status")
@options.queuedir
@options.decoder
def queue_status(queuedir: str, decoder: str | None) -> None:
    """Diagnose a queue: the next seq, which seqs are present, gaps, stale jobs.

    Shows why a sequence-ordered queue is stalled, e.g.
    "stalled: next is 3; present: 4–9".  Never blocks a running processor.
    """
    status = options.open_queue(queuedir, decoder=decoder).status()
    options.emit("".join(line + "\n" for line in status.lines()))
