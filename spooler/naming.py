"""Job names that carry their header: ``fspl-SEQ_SECS_NANOS_RANDOM_CHECK.fspl``.

A scan needs only each job's seq and creation time, and reading them from
the file costs an open and a read per job, a round trip per job on remote
storage.  So when ``queue-write`` can parse the packet it delivers, it puts
them in the name:

* ``SEQ``: the sequence number, decimal (0 … 2^64-1);
* ``SECS``: the creation time's seconds, decimal, ``-`` for negative ones;
* ``NANOS``: its nanoseconds, decimal (0 … 2^32-1, as the header allows);
* ``RANDOM``: 16 lowercase hex digits from ``os.urandom`` (unique names;
  scans only check its length);
* ``CHECK``: the CRC-32 of ``SEQ_SECS_NANOS_RANDOM`` (ASCII), 8 lowercase hex
  digits, so that a hand-made name is not mistaken for one of ours.

Numbers are canonical (no sign on positives, no leading zeros), so each
header has exactly one spelling; a name is at most 89 characters.  Any other
``fspl-*.fspl`` name (the reference's UUIDs, hand-made, Syncthing's
conflict copies) is read from its header as before.  The header stays the
truth: :func:`check_header` compares the two before a job runs or is shown.
"""

from __future__ import annotations

import os
import zlib
from typing import BinaryIO, NamedTuple

from .errors import HeaderError, SpoolError
from .ids import JOB_PREFIX, JOB_SUFFIX
from .packet import FIXED_LEN, needed_length, parse_header
from .streams import Prefixed

_U64 = 2**64
_I64 = 2**63
_U32 = 2**32
_RANDOM_LEN = 16


class NamedMeta(NamedTuple):
    """What a job's name says about it: the header fields a scan needs.

    A scan returns these for jobs named by :func:`job_name` instead of a full
    :class:`~spooler.packet.Meta` (the command and its environment are read
    from the header when the job is opened)."""

    seq: int
    ctime_secs: int
    ctime_nanos: int

    @property
    def ctime_key(self) -> tuple[int, int]:
        return (self.ctime_secs, self.ctime_nanos)


def _check(body: str) -> str:
    return f"{zlib.crc32(body.encode('ascii')):08x}"


def job_name(seq: int, secs: int, nanos: int) -> str:
    """A fresh name carrying these header fields (unique by its random part)."""
    body = f"{seq}_{secs}_{nanos}_{os.urandom(_RANDOM_LEN // 2).hex()}"
    return f"{JOB_PREFIX}{body}_{_check(body)}{JOB_SUFFIX}"


#: Where the body (``SEQ_SECS_NANOS_RANDOM``) ends: before ``_CHECK.fspl``.
_BODY_END = -(1 + 8 + len(JOB_SUFFIX))
#: Where the numbers end: before ``RANDOM_CHECK.fspl``.
_NUMBERS_END = _BODY_END - _RANDOM_LEN
_PREFIX_LEN = len(JOB_PREFIX)


def named_row(name: str) -> tuple[int, int, int, str] | None:
    """``(seq, secs, nanos, name)`` for a name made by :func:`job_name`, else None.

    Scans call this for every name, so it does as few operations as it can
    (in CPython each call costs more than the bytes it looks at; a regular
    expression with groups measured twice the instructions, and every
    slice bound here is a precomputed constant): a split gives the five
    fields (the reference's UUIDs have none of the separators), the check
    value is compared with its exact lowercase spelling and the suffix in
    one comparison, and the numbers, once converted, are spelled again with
    the prefix: equal to the name's start only if they were canonical (no
    sign on positives, no leading zeros, ASCII digits).  ``RANDOM`` only
    has to be 16 characters: it carries nothing, and the check value covers
    it.
    """
    try:
        head, secs_text, nanos_text, random, tail = name.split("_")
        seq, secs, nanos = int(head[_PREFIX_LEN:]), int(secs_text), int(nanos_text)
        check = zlib.crc32(name[_PREFIX_LEN:_BODY_END].encode("ascii"))
    except ValueError:  # not five fields, not numbers, or not ASCII
        return None
    if (
        tail != f"{check:08x}{JOB_SUFFIX}"
        or f"{JOB_PREFIX}{seq}_{secs}_{nanos}_" != name[:_NUMBERS_END]
        or len(random) != _RANDOM_LEN
        or not (0 <= seq < _U64 and -_I64 <= secs < _I64 and 0 <= nanos < _U32)
    ):
        return None
    return seq, secs, nanos, name


def parse_name(name: str) -> NamedMeta | None:
    """The header fields in a name made by :func:`job_name`; None for any
    other name (those jobs are read from their header)."""
    row = named_row(name)
    return None if row is None else NamedMeta(row[0], row[1], row[2])


class NameMismatch(SpoolError):
    """A job's header says something else than its name (renamed, or edited)."""


def check_header(name: str, seq: int, secs: int, nanos: int) -> None:
    """Raise :class:`NameMismatch` when ``name`` carries other header fields
    than the header read from the job; names of other forms always pass."""
    named = parse_name(name)
    if named is None or named == (seq, secs, nanos):
        return
    raise NameMismatch(
        f'Job file "{name}" does not match its header: the name says seq {named.seq}, '
        f"ctime {named.ctime_secs}.{named.ctime_nanos:09d}; the header says seq {seq}, "
        f"ctime {secs}.{nanos:09d}"
    )


#: Headers larger than this are not looked at for a name (the job gets a
#: UUID name): the bytes looked at are held in memory until delivered.
NAME_HEADER_LIMIT = 64 * 1024


def named_source(source: BinaryIO) -> tuple[str | None, BinaryIO]:
    """Look at the header at the start of ``source``: the name to deliver it
    under (None when it does not parse: encoded packets, anything else), and
    a stream that yields all of ``source`` again."""
    seen = _read_up_to(source, FIXED_LEN)
    name = None
    try:
        total = needed_length(seen)
        if total <= NAME_HEADER_LIMIT:
            seen += _read_up_to(source, total - len(seen))
            meta = parse_header(seen).meta
            name = job_name(meta.seq, meta.ctime_secs, meta.ctime_nanos)
    except HeaderError:
        pass
    return name, Prefixed(seen, source)  # type: ignore[return-value]


def _read_up_to(source: BinaryIO, size: int) -> bytes:
    """``size`` bytes, fewer only at the end of the stream (``read`` may return
    less than asked, as pipes do)."""
    parts = b""
    while len(parts) < size:
        chunk = source.read(size - len(parts))
        if not chunk:
            break
        parts += chunk
    return parts
