"""Run one job's command: argv, environment, stdin descriptor, timeout.

The command is executed directly (no shell) with the FSPL_* variables added
to the inherited environment.  Its stdin is a descriptor positioned at the
payload (see :mod:`spooler.jobsource`), or fspl's own stdin with
``--ignore-payload``.

With ``--timeout`` the command runs in a process group of its own, so that
the timeout kills everything it started (the reference kills only the direct
child and leaves grandchildren holding the payload pipe).  While it runs in
its own group, SIGINT/SIGTERM/SIGHUP sent to fspl are passed on to it.
A long-running caller (the watch loop) replaces that forwarding with
:data:`group_hook`.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

from . import log
from .errors import SpoolError
from .queue import Outcome

_log = log.get("spooler.execute")
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

#: Set by :mod:`spooler.watcher` while it runs.  Then every command gets a
#: process group of its own and, instead of fspl forwarding signals to it,
#: runs inside ``group_hook(pgid)``: the watch loop lets a job finish on the
#: first signal and kills its group on the second (it runs commands from
#: worker threads, where signal handlers cannot be installed anyway).
group_hook: Callable[[int], AbstractContextManager[None]] | None = None


@dataclass(frozen=True)
class RunOptions:
    """How to run jobs; shared by queue-process, stdin-process and the API."""

    command: bytes
    params: tuple[bytes, ...] = ()
    allow_job_params: bool = False
    ignore_payload: bool = False
    timeout: float | None = None


def build_argv(opts: RunOptions, job_params: Sequence[bytes]) -> list[bytes]:
    argv = [opts.command, *opts.params]
    if job_params:
        if opts.allow_job_params:
            argv.extend(job_params)
        else:
            _log.warn("Parameters given in job ignored because --allow-job-params not given")
    return argv


_base_env: dict[bytes, bytes] | None = None


def _environment(pairs: Sequence[tuple[bytes, bytes]]) -> dict[bytes, bytes]:
    """fspl's own environment plus the job's; the copy is made once per process."""
    global _base_env
    if _base_env is None:
        _base_env = dict(os.environb)
    env = dict(_base_env)
    env.update(pairs)
    return env


def run_command(
    argv: list[bytes],
    env_pairs: Sequence[tuple[bytes, bytes]],
    stdin: int | None,
    output: int | None,
    timeout: float | None,
) -> Outcome:
    """Run ``argv`` to completion; ``output`` receives stdout and stderr."""
    env = _environment(env_pairs)
    _log.debug("Preparing to run %r with params %r", argv[0], argv[1:])
    hook = group_hook
    own_group = timeout is not None or hook is not None
    try:
        proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=output,
            stderr=output,
            env=env,
            process_group=0 if own_group else None,
        )
    except OSError as exc:
        raise SpoolError(
            f"Running {os.fsdecode(argv[0])!r}: {exc.strerror or exc} (os error {exc.errno})"
        ) from None
    _log.debug("Command PID %d started successfully", proc.pid)
    if hook is not None:
        guard = hook(proc.pid)
    else:
        guard = _forward_signals(proc.pid) if own_group else nullcontext()
    with guard:
        status = _wait(proc, timeout)
    if status is None:
        return Outcome(False, f"Command timed out after {timeout:g} seconds and was killed")
    if status == 0:
        _log.debug("Command exited successfully")
        return Outcome(True, "exit status 0")
    if status < 0:
        return Outcome(False, f"Command killed by signal {-status}")
    return Outcome(False, f"Command exited with status {status}")


def _wait(proc: subprocess.Popen[bytes], timeout: float | None) -> int | None:
    if timeout is None:
        _log.debug("Waiting indefinitely for command to exit")
        return proc.wait()
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _log.debug("Timeout reached; killing process group %d", proc.pid)
        _killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return None


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


@contextmanager
def _forward_signals(pgid: int) -> Iterator[None]:
    def forward(signum: int, _frame: object) -> None:
        _killpg(pgid, signum)

    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
