"""Exceptions the engine raises on purpose.

Everything the user can cause (bad input, missing queues, held locks, corrupt
packets) is a :class:`SpoolError`; the CLI turns it into one ``Error: …`` line
and exit status 1.  Anything else reaching the CLI is a bug, but is still
reported on one line rather than as a traceback.
"""

from __future__ import annotations

import errno
import os


class SpoolError(Exception):
    """A failure the user can act on; ``str()`` is the complete message."""


class UsageError(SpoolError):
    """A command line the user must correct (a bad ``-o`` option, a malformed
    URL): exit status 2, as for click's usage errors."""

    exit_code = 2


class HeaderError(SpoolError):
    """A job file's header does not parse (wrong tag, CRC, version, length…)."""


class LockError(SpoolError):
    """The queue's (or sender's) sequence lock is held by someone else."""


class JobNotFound(SpoolError):
    """``-j ID`` names no job, or more than one."""


class CommandFailed(SpoolError):
    """A job failed while ``--on-error Retry`` was in force."""


class TransportUnavailable(SpoolError):
    """A URL names a transport whose plugin or library is not installed."""


def describe_os_error(exc: OSError) -> str:
    """Render an OSError the way the reference does: ``text (os error N)``."""
    if exc.errno is None:
        return str(exc)
    text = exc.strerror or str(exc)
    return f"{text} (os error {exc.errno})"


def missing(where: str) -> FileNotFoundError:
    """The contract's FileNotFoundError for a job, naming where it was looked
    for, so that the CLI's one line says ``"WHERE": No such file …``."""
    return FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), where)


def no_queue(location: str, why: str = "") -> SpoolError:
    """The error for a location that holds no queue (a typo, or not initialised)."""
    detail = f" ({why})" if why else ""
    return SpoolError(
        f'no queue at "{location}"{detail}; create one with: fspl queue-init -q {location}'
    )


def append_only(location: str) -> SpoolError:
    """The error for processing a queue that has no sequence state."""
    return SpoolError(f'"{location}" is an append-only queue: it cannot be processed')
