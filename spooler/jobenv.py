"""The FSPL_* environment of a job: shown by *-info, given to commands.

One function builds it so that ``queue-info`` prints exactly what
``queue-process`` sets.  Values are bytes: params and saved variables may
hold anything, newlines included.
"""

from __future__ import annotations

import time
from functools import lru_cache
from typing import NamedTuple

from .packet import Command, Meta
from .redact import redact


class JobRef(NamedTuple):
    """Where a queued job lives (absent for stdin-* commands)."""

    name: str
    queue_location: str
    full_path: str


# Formatting follows the reference (chrono's RFC 3339 writer), which matters
# only far from the present: years outside 0000..9999 carry a sign and at
# least four digits (``+10000``, ``-0001``); offsets are whole minutes, their
# seconds truncated (local mean time before 1900 has odd offsets); and
# nanoseconds of 1e9 or more (chrono's leap-second form) show one second more.


def _leap(nanos: int) -> int:
    return 1 if 1_000_000_000 <= nanos < 2_000_000_000 else 0


def _stamp(tm: time.struct_time, leap: int) -> str:
    year = tm.tm_year
    text = f"{year:04d}" if 0 <= year <= 9999 else f"{year:+05d}"
    return (
        f"{text}-{tm.tm_mon:02d}-{tm.tm_mday:02d}"
        f"T{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec + leap:02d}"
    )


def rfc3339_utc(secs: int, nanos: int = 0) -> str:
    return _rfc3339_utc(secs, _leap(nanos))


@lru_cache(maxsize=4096)
def _rfc3339_utc(secs: int, leap: int) -> str:
    """Cached as :func:`_rfc3339_local`: every job run formats both."""
    try:
        return _stamp(time.gmtime(secs), leap) + "Z"
    except (OverflowError, OSError, ValueError):
        return str(secs)


def rfc3339_local(secs: int, nanos: int = 0) -> str:
    """Local time with a numeric offset, e.g. ``2022-05-07T21:07:02-05:00``."""
    return _rfc3339_local(secs, _leap(nanos))


@lru_cache(maxsize=4096)
def _rfc3339_local(secs: int, leap: int) -> str:
    """Cached: jobs sent in a burst share their second, and ``queue-ls``
    formats one per job."""
    try:
        tm = time.localtime(secs)
    except (OverflowError, OSError, ValueError):
        return str(secs)
    offset = tm.tm_gmtoff
    sign = "-" if offset < 0 else "+"
    hours, minutes = divmod(abs(offset) // 60, 60)
    return _stamp(tm, leap) + f"{sign}{hours:02d}:{minutes:02d}"


def job_environment(meta: Meta, job: JobRef | None = None) -> list[tuple[bytes, bytes]]:
    """The ordered ``(NAME, VALUE)`` pairs for ``meta``."""
    pairs = [
        (b"FSPL_SEQ", b"%d" % meta.seq),
        (b"FSPL_CTIME_SECS", b"%d" % meta.ctime_secs),
        (b"FSPL_CTIME_NANOS", b"%d" % meta.ctime_nanos),
        (b"FSPL_CTIME_RFC3339_UTC", rfc3339_utc(meta.ctime_secs, meta.ctime_nanos).encode()),
        (b"FSPL_CTIME_RFC3339_LOCAL", rfc3339_local(meta.ctime_secs, meta.ctime_nanos).encode()),
    ]
    if job is not None:
        pairs += [
            (b"FSPL_JOB_FILENAME", job.name.encode("utf-8", "surrogateescape")),
            (b"FSPL_JOB_QUEUEDIR", redact(job.queue_location).encode("utf-8", "surrogateescape")),
            (b"FSPL_JOB_FULLPATH", redact(job.full_path).encode("utf-8", "surrogateescape")),
        ]
    if isinstance(meta.cmd, Command):
        pairs += [(b"FSPL_PARAM_%d" % i, p) for i, p in enumerate(meta.cmd.params, 1)]
        pairs += [(b"FSPL_SET_" + k, v) for k, v in meta.cmd.env]
    return pairs


def render_info(pairs: list[tuple[bytes, bytes]]) -> bytes:
    """``NAME=VALUE`` lines, raw bytes."""
    return b"".join(k + b"=" + v + b"\n" for k, v in pairs)
