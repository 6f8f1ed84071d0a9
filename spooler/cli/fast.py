"""A hand-checked parser for the hot commands on local queues, before click.

Importing click, the transport registry and pluggy costs more than a
``queue-ls`` of an empty queue or a ``queue-write`` of a small packet
(docs/architecture.md has the numbers).  The command lines that scripts run
thousands of times — ``queue-ls``, ``queue-write``, ``prepare`` and
``queue-process`` (without ``--watch``) on a plain local path — are parsed
here instead and run with the local transport directly.

The rule is to take only what is fully understood and to hand everything
else to click: :func:`parse` returns None for help, an unknown or repeated
option, a missing value, a stray argument, a value click would reject, a
location that could be a URL or belong to another transport.  Usage errors
therefore keep click's exact messages, and a command line parsed here means
what click would make of it.  Runtime errors go through
:func:`spooler.cli.report.failure`, as on the click path, and the command
bodies are :mod:`spooler.cli.actions`, shared with the click commands.

``FSPL_NO_FAST_PATH=1`` sends every command line through click (a debugging
aid, and how the tests compare the two paths).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from ..execute import RunOptions
    from ..queue import ProcessConfig, Queue

DISABLE_VAR = "FSPL_NO_FAST_PATH"


class Spec(NamedTuple):
    """What one command accepts: option spellings → destination."""

    values: dict[str, str]  # options taking a value
    flags: dict[str, str]  # options without one
    required: tuple[str, ...]
    positional: str | None = None  # the destination of the one argument, if any
    params: bool = False  # "-- PARAMS…" allowed


_QUEUE = {"-q": "queuedir", "--queuedir": "queuedir"}
_DECODER = {"-d": "decoder", "--decoder": "decoder"}
_PROCESS_VALUES = {
    "--order-by": "order_by",
    "--on-error": "on_error",
    "-n": "maxjobs",
    "--maxjobs": "maxjobs",
    "--output-to": "output_to",
    "--timeout": "timeout",
}
_PROCESS_FLAGS = {
    "--never-delete": "never_delete",
    "--allow-job-params": "allow_job_params",
    "--ignore-payload": "ignore_payload",
}
SPECS: dict[str, Spec] = {
    "queue-ls": Spec({**_QUEUE, **_DECODER}, {}, ("queuedir",)),
    "queue-write": Spec(_QUEUE, {}, ("queuedir",)),
    "prepare": Spec(
        {"-s": "seqfile", "--seqfile": "seqfile", "-i": "input", "--input": "input"},
        {},
        ("seqfile",),
        params=True,
    ),
    "queue-process": Spec(
        {**_QUEUE, **_DECODER, **_PROCESS_VALUES},
        _PROCESS_FLAGS,
        ("queuedir", "command"),
        positional="command",
        params=True,
    ),
}
#: click.Choice(case_sensitive=False) of queue-process: folded → canonical.
CHOICES = {
    "order_by": {"sequence": "Sequence", "timestamp": "Timestamp"},
    "on_error": {"retry": "Retry", "delete": "Delete", "leave": "Leave"},
    "output_to": {"passboth": "PassBoth", "saveboth": "SaveBoth"},
}
DEFAULTS = {"order_by": "Sequence", "on_error": "Retry", "output_to": "PassBoth"}


class Parsed(NamedTuple):
    """A command line :func:`parse` fully understood."""

    command: str
    values: dict[str, str | bool]
    params: tuple[bytes, ...]


def parse(args: Sequence[str]) -> Parsed | None:
    """The command, option values and params of ``args``, or None for click."""
    if not args or os.environ.get(DISABLE_VAR):
        return None
    spec = SPECS.get(args[0])
    if spec is None:
        return None
    rest = list(args[1:])
    params: tuple[bytes, ...] = ()
    if spec.params and "--" in rest:  # as ParamsCommand: PARAMS follow the first "--"
        cut = rest.index("--")
        params = tuple(os.fsencode(a) for a in rest[cut + 1 :])
        rest = rest[:cut]
    values: dict[str, str | bool] = {}
    arg_iter = iter(rest)
    for arg in arg_iter:
        flag = False
        value: str | None
        if arg[:1] != "-" or arg == "-":
            dest, value = spec.positional, arg
        elif arg.startswith("--"):
            name, eq, value = arg.partition("=")
            if name in spec.flags and not eq:
                dest, flag = spec.flags[name], True
            else:
                dest = spec.values.get(name)
                if not eq:
                    value = next(arg_iter, None)
        else:  # -xVALUE or -x VALUE
            dest, value = spec.values.get(arg[:2]), arg[2:] or next(arg_iter, None)
        if dest is None or value is None or dest in values:
            return None  # unknown, missing its value, or repeated: click's to report
        values[dest] = True if flag else value
    if any(name not in values for name in spec.required):
        return None
    return Parsed(args[0], values, params)


def local_queue(location: str, decoder: str | None) -> Queue | None:
    """The queue at ``location`` when the registry would give it the local
    transport for certain, else None.

    A location with a colon could be a URL (``s3://``, ``rclone:remote:``,
    ``file:``) or an fsspec chain: the registry decides those.  A plain path
    goes to the ``fspl_claim_path`` hooks: only the built-in ones run unless
    ``FSPL_PLUGINS=all`` asks for third-party ones too (then the registry
    decides), and the only built-in hook is rclone's, which claims paths on
    an rclone FUSE mount; it is asked here, the rest is local.
    """
    if not location or ":" in location or os.environ.get("FSPL_PLUGINS") == "all":
        return None
    # By module name, as the registry does: the plugins are another package.
    from importlib import import_module

    if import_module("spooler_plugins.rclone.mounts").mount_of(location) is not None:
        return None
    from .. import failures
    from ..queue import Queue
    from ..transport import Transport

    local: type[Transport] = import_module("spooler_plugins.local.transport").LocalTransport
    failures.note(location)
    return Queue(local.from_url(location, {}), decoder)


def run(args: Sequence[str]) -> int | None:
    """Run ``args`` here and return the exit status, or None to leave them to click."""
    work = plan(args)
    if work is None:
        return None
    from .report import failure

    try:
        work()
    except (KeyboardInterrupt, Exception) as exc:
        return failure(exc)
    return 0


def plan(args: Sequence[str]) -> Callable[[], None] | None:
    """The command ``args`` as a call to make, or None if click must decide.

    No queue, job or input file is touched yet (only the mount table is
    read), so that the caller reports whatever the call raises."""
    parsed = parse(args)
    if parsed is None:
        return None
    from .actions import prepare, queue_ls, queue_process, queue_write

    values = parsed.values
    if parsed.command == "prepare":
        input_ = values.get("input")
        seqfile = str(values["seqfile"])
        return lambda: prepare(seqfile, None if input_ is None else str(input_), parsed.params)
    settings = (
        _process_settings(values, parsed.params) if parsed.command == "queue-process" else None
    )
    if parsed.command == "queue-process" and settings is None:
        return None
    decoder = values.get("decoder")
    queue = local_queue(str(values["queuedir"]), None if decoder is None else str(decoder))
    if queue is None:
        return None

    def work() -> None:
        with queue:
            if parsed.command == "queue-ls":
                queue_ls(queue)
            elif parsed.command == "queue-write":
                queue_write(queue)
            else:
                assert settings is not None
                queue_process(queue, *settings)

    return work


def _process_settings(
    values: dict[str, str | bool], params: tuple[bytes, ...]
) -> tuple[ProcessConfig, RunOptions] | None:
    """queue-process's options converted as click's types would, or None
    where click would reject a value (its message, not ours)."""
    from ..errors import SpoolError
    from ..execute import RunOptions
    from ..seqfile import parse_u64
    from .actions import process_config

    choice: dict[str, str] = {}
    for dest, canonical in CHOICES.items():
        given = values.get(dest, DEFAULTS[dest])
        assert isinstance(given, str)
        if given.casefold() not in canonical:
            return None
        choice[dest] = canonical[given.casefold()]
    numbers: dict[str, int | None] = {}
    for dest in ("maxjobs", "timeout"):
        number = values.get(dest)
        try:
            numbers[dest] = None if number is None else parse_u64(str(number), "")
        except SpoolError:
            return None
    config = process_config(
        choice["order_by"],
        choice["on_error"],
        "never_delete" in values,
        numbers["maxjobs"],
        choice["output_to"],
    )
    opts = RunOptions(
        os.fsencode(str(values["command"])),
        params,
        "allow_job_params" in values,
        "ignore_payload" in values,
        numbers["timeout"],
    )
    return config, opts
