"""Fuzz local command lines: random subcommands, options and hostile values.

Whatever the command line, the outcome is an exit status of 0, 1 or 2 and
never a traceback or an "internal error" (the label reserved for bugs).

The CLI runs in-process through :func:`spooler.cli.app.run`, the function
``fspl`` itself calls, with descriptors 0, 1 and 2 redirected to files: the
CLI writes with ``os.write`` on those descriptors, so this is what a
subprocess would see, at a fraction of the cost.  ``FSPL_FUZZ_EXAMPLES``
raises the number of examples (default 150).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import click
from conftest import craft, make_queue, put_job
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spooler.cli.app import cli, run

EXAMPLES = int(os.environ.get("FSPL_FUZZ_EXAMPLES", "150"))
#: Commands that wait for events or run forever, and options that make
#: others do so; the rest is fair game.
LONG_RUNNING = {"serve"}
NO_WAIT = {"--watch"}
#: Values safe to run as a shell command or program (decoders, commands) and
#: to create as a path: nothing absolute, nothing destructive.
VALUES = [
    "",
    "-",
    "--",
    "0",
    "1",
    "-1",
    "+7",
    "1.5",
    "nan",
    "inf",
    "18446744073709551616",
    "9" * 40,
    "abc",
    "=",
    "k=v",
    "bogus=1",
    "lease_ttl=abc",
    "true",
    "false",
    "cat",
    "no-such-program-here",
    "q",
    "q/jobs",
    "q/nextseq",
    "missing",
    "missing/deeper",
    "seq",
    "file:q",
    "file://q",
    "x" * 300,
    os.fsdecode(b"\xff\xfe"),
    "\u00e9\u2603",
    " ",
    "\n",
    "sequence",
    "timestamp",
    "retry",
    "saveboth",
]
_CTX = click.Context(cli)
COMMANDS = sorted(set(cli.list_commands(_CTX)) - LONG_RUNNING)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    name = draw(st.sampled_from(COMMANDS))
    command = cli.get_command(_CTX, name)
    assert command is not None
    options = [
        p for p in command.params if isinstance(p, click.Option) and not set(p.opts) & NO_WAIT
    ]
    args = [name]
    chosen = draw(st.lists(st.sampled_from(options), max_size=5)) if options else []
    for option in chosen:
        args.append(draw(st.sampled_from(option.opts + option.secondary_opts)))
        if not option.is_flag:
            args.append(draw(st.sampled_from(VALUES)))
    args += draw(st.lists(st.sampled_from(VALUES), max_size=3))
    return args


@contextlib.contextmanager
def redirected(workdir: Path) -> Iterator[Path]:
    """fds 0 (empty), 1 and 2 (files) and the cwd pointed into ``workdir``."""
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    cwd = os.getcwd()
    err = workdir / "stderr"
    try:
        with (
            open(os.devnull, "rb") as null,
            open(workdir / "stdout", "wb") as out,
            open(err, "wb") as error,
        ):
            for fd, target in ((0, null), (1, out), (2, error)):
                os.dup2(target.fileno(), fd)
            os.chdir(workdir)
            yield err
    finally:
        os.chdir(cwd)
        for fd, copy in zip((0, 1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(command_lines())
def test_no_command_line_ends_in_a_traceback(args: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        q = make_queue(workdir / "q")
        put_job(q, craft(1, b"one\n"))
        put_job(q, craft(1, b"dup\n"))
        (workdir / "seq").write_text("1\n")
        with redirected(workdir) as err:
            status = run(args)
        text = err.read_text("utf-8", "replace")
    assert "Traceback" not in text, (args, text)
    assert "internal error" not in text, (args, text)
    assert status in (0, 1, 2), (args, status, text)
    if status:
        assert text.startswith("Error: ") or text.startswith("error: "), (args, text)
