"""Options and helpers shared by the command modules."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from .. import api
from ..queue import Queue
from .actions import emit as emit  # the commands call options.emit

if TYPE_CHECKING:
    from click.shell_completion import CompletionItem

F = Callable[..., Any]
CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class ParamsCommand(click.Command):
    """A command whose extra parameters follow a literal ``--``.

    As in the reference, ``PARAMS`` are only what comes after ``--``; a
    stray positional before it is a usage error.  The parameters are handed
    to the callback as ``params`` (a tuple of bytes).
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        extra: list[str] = []
        if "--" in args:
            cut = args.index("--")
            args, extra = args[:cut], args[cut + 1 :]
        ctx.meta["fspl.params"] = tuple(os.fsencode(a) for a in extra)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        ctx.params["params"] = ctx.meta.get("fspl.params", ())
        return super().invoke(ctx)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- PARAMS...]"]


class CompletedPath(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2
    """A path or URL kept exactly as given (the command reports a bad one in
    its own words), which shells complete as a file or directory name."""

    name = "path"

    def __init__(self, kind: str) -> None:
        self.kind = kind  # "file" or "dir": click's completion item types

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value

    def shell_complete(
        self, ctx: click.Context, param: click.Parameter, incomplete: str
    ) -> list[CompletionItem]:
        from click.shell_completion import CompletionItem

        return [CompletionItem(incomplete, type=self.kind)]


def command(name: str, params: bool = False, **kwargs: Any) -> Callable[[F], click.Command]:
    """Make a function the click command ``name`` (listed in :mod:`.commands`);
    ``params=True`` gives it the reference's ``-- PARAMS`` tail."""

    def wrap(fn: F) -> click.Command:
        cls = ParamsCommand if params else click.Command
        return click.command(name, cls=cls, context_settings=CONTEXT, **kwargs)(fn)

    return wrap


def parse_pairs(values: tuple[str, ...]) -> dict[str, str]:
    """``("k=v", …)`` → ``{"k": "v"}``; a usage error for anything else."""
    parsed: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}")
        parsed[key.strip()] = value
    return parsed


def _store_transport_options(
    ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> None:
    ctx.meta["fspl.transport_options"] = parse_pairs(values)


def queuedir(func: F) -> F:
    """``-q DIR`` plus ``-o KEY=VALUE`` options for the queue's transport."""
    func = click.option(
        "-o",
        "--transport-option",
        multiple=True,
        metavar="KEY=VALUE",
        expose_value=False,
        callback=_store_transport_options,
        help="Option for a remote queue's transport (repeatable; see fspl(1))",
    )(func)
    return click.option(
        "-q",
        "--queuedir",
        required=True,
        type=CompletedPath("dir"),
        metavar="DIR",
        help="Queue location: a path or URL",
    )(func)


def open_queue(
    location: str, decoder: str | None = None, transport_options: dict[str, str] | None = None
) -> Queue:
    """Open a queue for this command, closed with it.

    ``transport_options`` default to the command's ``-o`` options.
    """
    ctx = click.get_current_context()
    if transport_options is None:
        transport_options = ctx.meta.get("fspl.transport_options", {})
    queue = api.open_queue(location, decoder=decoder, options=transport_options)
    ctx.call_on_close(queue.transport.close)
    return queue


decoder = click.option(
    "-d", "--decoder", metavar="CMD", help="Decoder command, run with $SHELL -c, for each job file"
)
seqfile = click.option(
    "-s",
    "--seqfile",
    required=True,
    type=CompletedPath("file"),
    metavar="FILE",
    help='Sender sequence file (created if missing); "-" for none (seq 1)',
)
job_id = click.option("-j", "--job", "job", required=True, type=str, metavar="ID", help="Job ID")
seq_id = click.argument("id", metavar="ID")


class U64(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2
    """An unsigned 64-bit integer as the reference reads one: ``+`` and digits only."""

    name = "integer"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        from ..seqfile import parse_u64

        try:
            return parse_u64(value, "")
        except Exception:
            self.fail(f"{value!r} is not a whole number from 0 to 2^64-1", param, ctx)


def parse_id(value: str) -> int:
    """A job or sequence ID: an unsigned 64-bit decimal number."""
    from ..seqfile import parse_u64

    try:
        return parse_u64(value, "ID")
    except Exception as exc:
        raise click.BadParameter(str(exc), param_hint="ID") from None
