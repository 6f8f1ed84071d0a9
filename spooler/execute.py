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

Commands are started with ``posix_spawn`` rather than ``subprocess``: it
offers a process group on every supported Python (``Popen(process_group=)``
needs 3.11) and costs about a third of a fork+exec per job.  As with the
reference, descriptors other than stdin/stdout/stderr are inherited only if
they are inheritable (Python opens everything close-on-exec), and the child
starts with the default disposition for SIGPIPE and SIGXFSZ, which Python
ignores in its own process; other dispositions and the signal mask are
inherited, so ``nohup fspl …`` still protects its commands.
"""

from __future__ import annotations

import os
import select
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from itertools import chain
from typing import Any, NamedTuple

from . import log
from .errors import SpoolError
from .queue import Outcome

_log = log.Logger("spooler.execute")
_FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
#: Ignored by the Python runtime itself; commands get them back at default.
_RESTORED = (signal.SIGPIPE, signal.SIGXFSZ)

#: Set by :mod:`spooler.watcher` while it runs.  Then every command gets a
#: process group of its own and, instead of fspl forwarding signals to it,
#: runs inside ``group_hook(pgid)``: the watch loop lets a job finish on the
#: first signal and kills its group on the second (it runs commands from
#: worker threads, where signal handlers cannot be installed anyway).
group_hook: Callable[[int], AbstractContextManager[None]] | None = None


class RunOptions(NamedTuple):
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
    # One join finds a NUL in any name or value (os.environb holds none).
    _refuse_nul(b"".join(chain.from_iterable(pairs)))
    env = _base_env.copy()
    for name, value in pairs:
        if b"=" in name:
            # A saved name may hold "=" (the reference passes it through, and
            # the command sees ``FSPL_SET_A=B=C``); the OS interface refuses
            # such keys, so split at the first "=": the string is the same.
            name, _, rest = name.partition(b"=")
            value = rest + b"=" + value
        env[name] = value
    return env


def _refuse_nul(data: bytes) -> None:
    """No C string holds a NUL: refuse as the reference does (the job stays)."""
    if b"\0" in data:
        raise SpoolError("nul byte found in provided data")


def run_command(
    argv: list[bytes],
    env_pairs: Sequence[tuple[bytes, bytes]],
    stdin: int | None,
    output: int | None,
    timeout: float | None,
) -> Outcome:
    """Run ``argv`` to completion; ``output`` receives stdout and stderr."""
    _refuse_nul(b"".join(argv))
    env = _environment(env_pairs)
    _log.debug("Preparing to run %r with params %r", argv[0], argv[1:])
    hook = group_hook
    if hook is None and timeout is None:
        # The common case, once per job: fspl's own group, nothing to forward.
        pid = _spawn(argv, env, stdin, output, False, None)
        _log.debug("Waiting indefinitely for command to exit")
        status: int | None = _reap(pid)
    else:

        def start(mask: Iterable[int] | None) -> int:
            return _spawn(argv, env, stdin, output, True, mask)

        guard = _hooked(start, hook) if hook is not None else _forwarding(start)
        with guard as pid:
            status = _wait(pid, timeout)
    if status is None:
        return Outcome(False, f"Command timed out after {timeout:g} seconds and was killed")
    if status == 0:
        _log.debug("Command exited successfully")
        return Outcome(True, "exit status 0")
    if status < 0:
        return Outcome(False, f"Command killed by signal {-status}")
    return Outcome(False, f"Command exited with status {status}")


def _spawn(
    argv: list[bytes],
    env: dict[bytes, bytes],
    stdin: int | None,
    output: int | None,
    group: bool,
    mask: Iterable[int] | None,
) -> int:
    """Start ``argv``; its PID.  The command is searched in fspl's own PATH,
    which is also the command's: a job adds only FSPL_* variables.  ``mask``,
    when given, is the signal mask the command starts with (fspl's own, while
    fspl holds some signals back)."""
    options: dict[str, Any] = {"setsigdef": _RESTORED}
    if group:
        options["setpgroup"] = 0
    if mask is not None:
        options["setsigmask"] = mask
    actions = _redirections(stdin, output)
    try:
        pid = os.posix_spawnp(argv[0], argv, env, file_actions=actions, **options)
    except OSError as exc:
        raise SpoolError(
            f"Running {os.fsdecode(argv[0])!r}: {exc.strerror or exc} (os error {exc.errno})"
        ) from None
    _log.debug("Command PID %d started successfully", pid)
    return pid


def _redirections(stdin: int | None, output: int | None) -> list[tuple[int, int, int]]:
    """posix_spawn's file actions: ``stdin`` on 0, ``output`` on 1 and 2."""
    dup2 = os.POSIX_SPAWN_DUP2
    actions = [] if stdin is None else [(dup2, stdin, 0)]
    if output is not None:
        actions += [(dup2, output, 1), (dup2, output, 2)]
    return actions


def _wait(pid: int, timeout: float | None) -> int | None:
    """The exit code (negative: killed by that signal), or None after a timeout."""
    if timeout is None:
        _log.debug("Waiting indefinitely for command to exit")
        return _reap(pid)
    if not _exited_within(pid, timeout):
        _log.debug("Timeout reached; killing process group %d", pid)
        _killpg(pid, signal.SIGKILL)
        _reap(pid)
        return None
    return _reap(pid)


def _reap(pid: int) -> int:
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _exited_within(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit, without reaping it.

    A pidfd wakes us the moment it exits; without one (not Linux, or a
    kernel before 5.3) its state is polled, as ``Popen.wait`` does.
    """
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        return _poll_exit(pid, timeout)
    deadline = time.monotonic() + timeout
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        while (left := deadline - time.monotonic()) > 0:
            # poll() takes an int of milliseconds: wait a day at most per call.
            if poller.poll(min(left, 86_400.0) * 1000):
                return True
        return False
    finally:
        os.close(pidfd)


def _poll_exit(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    delay = 0.0005
    while (left := deadline - time.monotonic()) > 0:
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        time.sleep(min(delay, left))
        delay = min(delay * 2, 0.05)
    return False


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


@contextmanager
def _hooked(
    start: Callable[[Iterable[int] | None], int],
    hook: Callable[[int], AbstractContextManager[None]],
) -> Iterator[int]:
    pid = start(None)
    with hook(pid):
        yield pid


@contextmanager
def _forwarding(start: Callable[[Iterable[int] | None], int]) -> Iterator[int]:
    """Start the command in its own group and pass SIGINT/SIGTERM/SIGHUP on to it.

    The three are held back from before the spawn until the handlers are in
    place: one arriving in between would otherwise kill fspl and leave the
    command running on its own.  A held signal is forwarded once released.
    """
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
    try:
        pid = start(mask)

        def forward(signum: int, _frame: object) -> None:
            _killpg(pid, signum)

        previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    try:
        yield pid
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
