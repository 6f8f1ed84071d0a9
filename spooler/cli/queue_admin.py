"""Queue administration: queue-init, queue-write, queue-{get,set}-next."""

from __future__ import annotations

import click

from . import actions, options


@options.command("queue-init")
@options.queuedir
@click.option(
    "--append-only",
    is_flag=True,
    help="Create only the jobs directory: the queue can be written and listed, not processed",
)
def queue_init(queuedir: str, append_only: bool) -> None:
    """Create a queue (it must not exist yet)."""
    options.open_queue(queuedir).transport.init(append_only)


@options.command("queue-write")
@options.queuedir
def queue_write(queuedir: str) -> None:
    """Store the packet on stdin as a new job, safely.

    The job appears under its name only once it is complete and durable;
    nothing is validated and no lock is taken.  A packet whose header parses
    is named fspl-SEQ_SECS_NANOS_RANDOM_CHECK.fspl (scans read it from the
    name), anything else fspl-UUID.fspl.
    """
    actions.queue_write(options.open_queue(queuedir))


@options.command("queue-get-next")
@options.queuedir
def queue_get_next(queuedir: str) -> None:
    """Print the queue's next sequence number (takes the queue lock)."""
    with options.open_queue(queuedir).transport.lock_sequence() as state:
        value = state.read()
    options.emit(f"{value}\n")


@options.command("queue-set-next")
@options.queuedir
@options.seq_id
def queue_set_next(queuedir: str, id: str) -> None:
    """Set the queue's next sequence number (takes the queue lock)."""
    value = options.parse_id(id)
    with options.open_queue(queuedir).transport.lock_sequence() as state:
        state.write(value)
