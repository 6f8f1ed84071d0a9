"""The bodies of the hot commands, shared by the click commands and the fast path.

``queue-ls``, ``queue-write``, ``prepare`` and ``queue-process`` can be
reached two ways: through click (:mod:`.app`), or, for the command lines
:mod:`.fast` fully understands, without it.  Both call these functions, so
the work done, its order and its output are the same; this module imports
neither click nor the transport registry.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, BinaryIO

from ..streams import write_all

if TYPE_CHECKING:
    from ..execute import RunOptions
    from ..queue import ProcessConfig, Queue


def emit(data: bytes | str) -> None:
    """Write to stdout unbuffered (payload commands stream past sys.stdout)."""
    # surrogateescape: job names that are not UTF-8 print as their own bytes.
    write_all(1, data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)


def queue_ls(queue: Queue) -> None:
    """``queue-ls``: the table of jobs, sorted by ID.

    Jobs sent in a burst share their second, so each distinct second is
    formatted once; the table is written in one go."""
    from ..jobenv import rfc3339_local

    stamps: dict[int, str] = {}
    lines = [f"{'ID':<20} {'creation timestamp':<27} filename\n"]
    append = lines.append
    for seq, secs, nanos, name in queue.rows():
        stamp = stamps.get(secs) if nanos < 1_000_000_000 else None
        if stamp is None:
            stamp = f"{rfc3339_local(secs, nanos):<27} "
            if nanos < 1_000_000_000:  # larger ones are the leap-second form
                stamps[secs] = stamp
        append(f"{seq:<20} {stamp}{name}\n")
    emit("".join(lines))


def queue_write(queue: Queue) -> None:
    """``queue-write``: the packet on stdin becomes a new job."""
    with os.fdopen(0, "rb", buffering=0, closefd=False) as stdin:
        queue.write(stdin)


def prepare(seqfile: str, input_: str | None, params: tuple[bytes, ...]) -> None:
    """``prepare``: a Command packet on stdout, its payload streamed from ``input_``."""
    from ..api import command, header, write_packet

    if input_ is None:
        source: AbstractContextManager[BinaryIO | None] = nullcontext()
    elif input_ == "-":
        source = os.fdopen(0, "rb", buffering=0, closefd=False)
    else:
        # Opened before the sequence number is taken: a bad path burns no number.
        source = open(input_, "rb", buffering=0)  # noqa: SIM115 - closed by the with below
    with source as payload:
        write_packet(1, header(command(params), seqfile_path=seqfile), payload)


def process_config(
    order_by: str, on_error: str, never_delete: bool, maxjobs: int | None, output_to: str
) -> ProcessConfig:
    """The :class:`ProcessConfig` of ``queue-process``'s options (choices
    already in their canonical spelling)."""
    from ..queue import OnError, Order, ProcessConfig

    return ProcessConfig(
        Order(order_by), OnError(on_error), never_delete, maxjobs, output_to == "SaveBoth"
    )


def queue_process(queue: Queue, config: ProcessConfig, opts: RunOptions) -> None:
    """``queue-process`` without ``--watch``: run the command for each job."""
    from ..api import command_runner

    queue.process(config, command_runner(opts))
