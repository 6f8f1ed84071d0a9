"""A minimal inotify(7) binding over ctypes: one descriptor, many watches.

Why not a library: ``watchfiles`` runs a Rust notifier thread per watcher,
debounces events (50 ms and more, against a 50 ms latency target) and brings
anyio; ``inotify_simple`` is close to this module but is one more dependency
for three system calls.  What the watch loop needs is exactly one
descriptor it can ``poll()`` next to its wake-up pipe, thousands of watches
on it (one process serving 1,000 queues), and the raw events; that is the
three libc calls below and a ``struct`` loop, with no import cost unless a
queue is watched.

Linux only: elsewhere (or when the calls fail, e.g. the watch limit is
reached) :class:`Inotify` raises ``OSError`` and callers fall back to
polling.
"""

from __future__ import annotations

import ctypes
import os
import struct
from typing import NamedTuple

IN_MODIFY = 0x00000002
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000

_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len (struct inotify_event)
_READ_SIZE = 64 * 1024


class Event(NamedTuple):
    """One inotify event; ``name`` is empty for events on the watched directory itself."""

    wd: int
    mask: int
    name: str


class Inotify:
    """An inotify instance in non-blocking, close-on-exec mode."""

    def __init__(self) -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            self._init1 = libc.inotify_init1
            self._add = libc.inotify_add_watch
            self._rm = libc.inotify_rm_watch
        except (OSError, AttributeError) as exc:
            raise OSError(f"inotify is not available: {exc}") from None
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._rm.argtypes = [ctypes.c_int, ctypes.c_int]
        self.fd = self._check(self._init1(os.O_NONBLOCK | os.O_CLOEXEC), "inotify_init1")

    @staticmethod
    def _check(result: int, what: str, path: str | None = None) -> int:
        if result < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"{what}: {os.strerror(err)}", path)
        return result

    def add_watch(self, path: str, mask: int) -> int:
        """Watch ``path``; the same inode always yields the same descriptor."""
        return self._check(self._add(self.fd, os.fsencode(path), mask), "inotify_add_watch", path)

    def rm_watch(self, wd: int) -> None:
        """Stop watching; a watch the kernel already dropped is no error."""
        self._rm(self.fd, wd)

    def read(self) -> list[Event]:
        """Every event queued now (none if nothing is pending)."""
        try:
            data = os.read(self.fd, _READ_SIZE)
        except BlockingIOError:
            return []
        events = []
        offset, end, size = 0, len(data), _HEADER.size
        while offset + size <= end:
            wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
            offset += size
            raw = data[offset : offset + length].split(b"\0", 1)[0]
            offset += length
            events.append(Event(wd, mask, os.fsdecode(raw)))
        return events

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
