"""The FSPL_* environment of a job: shown by *-info, given to commands.

One function builds it so that ``queue-info`` prints exactly what
``queue-process`` sets.  Values are bytes: params and saved variables may
hold anything, newlines included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

from .packet import Command, Meta


@dataclass(frozen=True)
class JobRef:
    """Where a queued job lives (absent for stdin-* commands)."""

    name: str
    queue_location: str
    full_path: str


def rfc3339_utc(secs: int) -> str:
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(secs))
    except (OverflowError, OSError, ValueError):
        return str(secs)


@lru_cache(maxsize=4096)
def rfc3339_local(secs: int) -> str:
    """Local time with a numeric offset, e.g. ``2022-05-07T21:07:02-05:00``.

    Cached: jobs sent in a burst share their second, and ``queue-ls`` formats
    one per job.
    """
    try:
        tm = time.localtime(secs)
    except (OverflowError, OSError, ValueError):
        return str(secs)
    offset = tm.tm_gmtoff
    sign = "-" if offset < 0 else "+"
    hours, rest = divmod(abs(offset), 3600)
    minutes, seconds = divmod(rest, 60)
    suffix = f"{sign}{hours:02d}:{minutes:02d}" + (f":{seconds:02d}" if seconds else "")
    return time.strftime("%Y-%m-%dT%H:%M:%S", tm) + suffix


def job_environment(meta: Meta, job: JobRef | None = None) -> list[tuple[bytes, bytes]]:
    """The ordered ``(NAME, VALUE)`` pairs for ``meta``."""
    pairs = [
        (b"FSPL_SEQ", b"%d" % meta.seq),
        (b"FSPL_CTIME_SECS", b"%d" % meta.ctime_secs),
        (b"FSPL_CTIME_NANOS", b"%d" % meta.ctime_nanos),
        (b"FSPL_CTIME_RFC3339_UTC", rfc3339_utc(meta.ctime_secs).encode()),
        (b"FSPL_CTIME_RFC3339_LOCAL", rfc3339_local(meta.ctime_secs).encode()),
    ]
    if job is not None:
        pairs += [
            (b"FSPL_JOB_FILENAME", job.name.encode("utf-8", "surrogateescape")),
            (b"FSPL_JOB_QUEUEDIR", job.queue_location.encode("utf-8", "surrogateescape")),
            (b"FSPL_JOB_FULLPATH", job.full_path.encode("utf-8", "surrogateescape")),
        ]
    if isinstance(meta.cmd, Command):
        pairs += [(b"FSPL_PARAM_%d" % i, p) for i, p in enumerate(meta.cmd.params, 1)]
        pairs += [(b"FSPL_SET_" + k, v) for k, v in meta.cmd.env]
    return pairs


def render_info(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """``NAME=VALUE`` lines, raw bytes."""
    return b"".join(k + b"=" + v + b"\n" for k, v in pairs)
