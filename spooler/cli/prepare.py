"""Sender commands: prepare, prepare-nop, prepare-fail, prepare-{get,set}-next."""

from __future__ import annotations

import click

from .. import seqfile as seqfiles
from ..api import header, write_packet
from ..packet import Special
from . import actions, options


@options.command("prepare", params=True)
@options.seqfile
@click.option(
    "-i",
    "--input",
    "input_",
    type=options.CompletedPath("file"),
    metavar="INPUT",
    help='Payload: a file name, or "-" for stdin; no payload when absent',
)
def prepare(seqfile: str, input_: str | None, params: tuple[bytes, ...]) -> None:
    """Write a Command packet to stdout.

    Every FSPL_SET_* environment variable is saved in the packet and set
    again when the job is processed.  PARAMS after -- are appended to the
    processor's command line when it allows job params.
    """
    actions.prepare(seqfile, input_, params)


@options.command("prepare-nop")
@options.seqfile
def prepare_nop(seqfile: str) -> None:
    """Write a NOP packet (always succeeds, runs nothing) to stdout."""
    write_packet(1, header(Special.NOP, seqfile_path=seqfile))


@options.command("prepare-fail")
@options.seqfile
def prepare_fail(seqfile: str) -> None:
    """Write a Fail packet (always fails, runs nothing) to stdout."""
    write_packet(1, header(Special.FAIL, seqfile_path=seqfile))


@options.command("prepare-get-next")
@options.seqfile
def prepare_get_next(seqfile: str) -> None:
    """Print the sequence number the next prepare will use."""
    # Unlike prepare, "-" is an ordinary file name here (as in the reference).
    with seqfiles.locked(seqfile, create=True) as seq:
        value = seq.read()
    options.emit(f"{value}\n")


@options.command("prepare-set-next")
@options.seqfile
@options.seq_id
def prepare_set_next(seqfile: str, id: str) -> None:
    """Set the sequence number the next prepare will use."""
    value = options.parse_id(id)
    with seqfiles.locked(seqfile, create=True) as seq:
        seq.write(value)
