"""The click application: global options, the lazy group, error handling."""

from __future__ import annotations

import os
from collections.abc import Sequence

import click

from .. import __version__, log
from .commands import COMMANDS, load
from .options import CONTEXT
from .report import fail, failure

#: Set by the shell completion scripts (``_FSPL_COMPLETE=bash_source fspl``).
COMPLETE_VAR = "_FSPL_COMPLETE"


class LazyGroup(click.Group):
    """Commands are imported from their modules only when invoked."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return load(cmd_name) if cmd_name in COMMANDS else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help comes from the table so that --help imports no command.
        with formatter.section("Commands"):
            formatter.write_dl([(name, entry[1]) for name, entry in COMMANDS.items()])


def _set_log_level(ctx: click.Context, param: click.Parameter, value: str) -> str:
    try:
        log.set_level(log.parse_level(value))
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.option(
    "-l",
    "--log-level",
    default="info",
    show_default=True,
    metavar="LEVEL",
    expose_value=False,
    is_eager=True,
    callback=_set_log_level,
    help="trace, debug, info, warn or error; logs go to stderr",
)
@click.version_option(__version__, "-V", "--version", message="filespooler %(version)s")
def cli() -> None:
    """fspl: sequential, distributed, file-based job queues.

    Packets and queues are compatible with Filespooler 1.2.2; queues can also
    live on remote transports (see 'fspl transports' and 'man fspl').
    """


def run(args: Sequence[str]) -> int:
    """Run click and map every failure to a status and one stderr line."""
    if not args and COMPLETE_VAR not in os.environ:
        # Bare "fspl": the help on stderr, status 2, as the reference (click
        # 8.1 would print it on stdout with status 0; 8.2 raises).
        with cli.make_context("fspl", [], resilient_parsing=True) as ctx:
            click.echo(ctx.get_help(), err=True)
        return 2
    try:
        cli.main(list(args), prog_name="fspl", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        # One line like every other error (click would add usage lines).
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
        fail(exc.format_message() + hint)
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        return 130
    except (KeyboardInterrupt, Exception) as exc:
        return failure(exc)
    return 0
