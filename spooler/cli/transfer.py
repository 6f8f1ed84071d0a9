"""Moving jobs between queues: queue-move."""

from __future__ import annotations

import click

from ..queue import Order
from ..transfer import move_jobs
from . import options


@options.command("queue-move")
@click.argument("src", metavar="SRC")
@click.argument("dst", metavar="DST")
@options.decoder
@click.option(
    "-n", "--maxjobs", type=click.IntRange(min=0), metavar="N", help="Move at most N jobs"
)
@click.option(
    "--order-by",
    type=click.Choice([o.value for o in Order], case_sensitive=False),
    default="Sequence",
    show_default=True,
    help="Which jobs go first when --maxjobs limits the move",
)
@click.option("--keep", is_flag=True, help="Copy: leave the jobs in SRC")
@click.option(
    "--from-option",
    "from_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Transport option for SRC (repeatable)",
)
@click.option(
    "--to-option",
    "to_options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Transport option for DST (repeatable)",
)
def queue_move(
    src: str,
    dst: str,
    decoder: str | None,
    maxjobs: int | None,
    order_by: str,
    keep: bool,
    from_options: tuple[str, ...],
    to_options: tuple[str, ...],
) -> None:
    """Move jobs from queue SRC to queue DST, on any transports.

    Each job keeps its file name, is delivered to DST safely (complete before
    it is visible) and only then deleted from SRC, so an interrupted move can
    simply be run again: nothing is lost and nothing is duplicated.  Holds
    SRC's lock while it works (when SRC has one), so it excludes processors
    of SRC and other movers: workers can each pull jobs from a shared
    incoming queue with `queue-move -n 1 --order-by Timestamp`.
    """
    source = options.open_queue(src, decoder, options.parse_pairs(from_options))
    target = options.open_queue(dst, None, options.parse_pairs(to_options))
    move_jobs(source, target, maxjobs=maxjobs, order_by=Order(order_by), keep=keep)
