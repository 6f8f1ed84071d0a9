"""Running jobs: queue-process and stdin-process."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from ..api import command_runner
from ..errors import CommandFailed
from ..execute import RunOptions
from ..packet import Special
from ..queue import OnError, Order, ProcessConfig, Runner
from . import actions, options
from .stdin import read_stdin_header


def _run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """The options queue-process and stdin-process share."""
    for decorate in reversed(
        [
            click.option(
                "--allow-job-params",
                is_flag=True,
                help="Append the params saved in the packet to the command line",
            ),
            click.option(
                "--ignore-payload", is_flag=True, help="Do not pipe the payload to the command"
            ),
            click.option(
                "--timeout",
                type=options.U64(),
                metavar="SECONDS",
                help="Kill the command (its whole process group) after this many whole "
                "seconds; a failure",
            ),
            click.argument("command_", metavar="COMMAND"),
        ]
    ):
        func = decorate(func)
    return func


def _runner_options(command_: str, params: tuple[bytes, ...], **kw: Any) -> RunOptions:
    return RunOptions(
        os.fsencode(command_), params, kw["allow_job_params"], kw["ignore_payload"], kw["timeout"]
    )


class Seconds(click.ParamType):  # type: ignore[type-arg]  # generic from click 8.2
    """A positive number of seconds, at most a day (fractions allowed)."""

    name = "seconds"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        if isinstance(value, int | float):
            return float(value)
        text = str(value).strip()
        whole, _, fraction = text.partition(".")
        if whole.isdigit() and (not fraction or fraction.isdigit()):
            seconds = float(text)
            if 0 < seconds <= 86400:
                return seconds
        self.fail(f"{value!r} is not a number of seconds above 0 and at most 86400", param, ctx)


def _choice(enum_type: type[Order] | type[OnError] | None, *values: str) -> click.Choice:  # type: ignore[type-arg]
    names = [m.value for m in enum_type] if enum_type is not None else list(values)
    return click.Choice(names, case_sensitive=False)


@options.command("queue-process", params=True)
@options.queuedir
@options.decoder
@click.option(
    "--order-by",
    type=_choice(Order),
    default="Sequence",
    show_default=True,
    help="Sequence: strictly by seq from nextseq; Timestamp: by creation time, seq unused",
)
@click.option(
    "--on-error",
    type=_choice(OnError),
    default="Retry",
    show_default=True,
    help="On failure: Retry (stop, keep the job), Delete or Leave it and go on",
)
@click.option("--never-delete", is_flag=True, help="Never delete any job file")
@click.option("-n", "--maxjobs", type=options.U64(), metavar="N", help="Stop after N jobs")
@click.option(
    "--output-to",
    type=_choice(None, "PassBoth", "SaveBoth"),
    default="PassBoth",
    show_default=True,
    help="SaveBoth: the command's stdout and stderr go to jobs/FILENAME.out",
)
@click.option(
    "--watch",
    is_flag=True,
    help="Then wait for new jobs and process them as they arrive, until SIGTERM or SIGINT",
)
@click.option(
    "--poll",
    type=Seconds(),
    metavar="SECONDS",
    help="With --watch: seconds between re-scans [default: 60 local (inotify wakes at "
    "once), 30 remote]",
)
@_run_options
def queue_process(
    queuedir: str,
    decoder: str | None,
    order_by: str,
    on_error: str,
    never_delete: bool,
    maxjobs: int | None,
    output_to: str,
    watch: bool,
    poll: float | None,
    command_: str,
    params: tuple[bytes, ...],
    **run: Any,
) -> None:
    """Run COMMAND for each job in the queue, in order.

    COMMAND is executed directly (no shell) with PARAMS, the FSPL_*
    variables in its environment, and the job's payload on stdin.  With
    --watch, keep going: see docs/operations.md.
    """
    if poll is not None and not watch:
        raise click.UsageError("--poll needs --watch")
    config = actions.process_config(order_by, on_error, never_delete, maxjobs, output_to)
    run_options = _runner_options(command_, params, **run)
    if watch:
        _watch(queuedir, decoder, config, command_runner(run_options), poll)
    else:
        actions.queue_process(options.open_queue(queuedir, decoder=decoder), config, run_options)


def _watch(
    location: str, decoder: str | None, config: ProcessConfig, runner: Runner, poll: float | None
) -> None:
    from ..api import open_queue
    from ..watcher import QueueSpec, Watcher, run_until_signalled

    transport_options = click.get_current_context().meta.get("fspl.transport_options", {})
    # Opened here so that a bad location fails as plain queue-process does;
    # the watcher owns it from now on (and reconnects after network errors).
    queue = open_queue(location, decoder=decoder, options=transport_options)
    watcher = Watcher(exit_when_done=True)
    watcher.add(
        QueueSpec(location, runner, config, decoder, transport_options, poll, queue, strict=True)
    )
    if run_until_signalled(watcher):
        raise KeyboardInterrupt  # stopped by SIGINT: status 130, as an interrupted fspl


@options.command("stdin-process", params=True)
@_run_options
def stdin_process(command_: str, params: tuple[bytes, ...], **run: Any) -> None:
    """Run COMMAND for the one packet on stdin (its payload is the rest of stdin)."""
    meta = read_stdin_header().meta
    if meta.cmd is Special.NOP:
        return
    if meta.cmd is Special.FAIL:
        raise CommandFailed("Packet is a Fail packet")
    outcome = command_runner(_runner_options(command_, params, **run))(meta, None, 0, None)
    if not outcome.ok:
        raise CommandFailed(f"Aborting processing due to failure: {outcome.detail}")
