"""The one delivery protocol: temp name → write → publish without replacing → clean up.

Every transport that can rename (local directories, SFTP, rclone, fsspec,
WebDAV…) delivers a job the same way, and the way is written here once:

1. write the whole job under a temporary name that is *not* a job name
   (``tmp-NAME.NONCE.tmp``: unique per attempt, so an attempt killed half-way
   never blocks the next one, and a resumed ``queue-move`` keeping NAME
   starts afresh);
2. make it durable where the storage can (fsync);
3. publish it under its job name *without ever replacing* an existing file:
   ``FileExistsError`` if NAME exists, which leaves the existing job intact;
4. on any failure, including Ctrl-C, remove the temporary file.

A transport subclasses :class:`StagedTransport` and provides the three
storage steps (:meth:`~StagedTransport.write_staged`,
:meth:`~StagedTransport.publish`, :meth:`~StagedTransport.discard`) plus,
for the clean-up of temporary files left by deliveries that died,
:meth:`~StagedTransport.staged_ages`.  Storage with a native create-only
multipart upload (S3) implements ``deliver`` itself.
"""

from __future__ import annotations

import os
import signal
import sys
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import BinaryIO

from . import log
from .ids import new_job_name
from .progress import Progress
from .transport import Transport

_log = log.Logger("spooler.delivery")

TEMP_PREFIX = "tmp-"
TEMP_SUFFIX = ".tmp"
#: Temporary files older than this (by the storage's clock where it has one)
#: belong to deliveries that died; live ones are written continuously.
STALE_TEMP_AGE = 3600.0


def temp_name(name: str) -> str:
    """A fresh temporary name for delivering ``name``: never a job name."""
    return f"{TEMP_PREFIX}{name}.{os.urandom(4).hex()}{TEMP_SUFFIX}"


def is_temp_name(name: str) -> bool:
    return name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


class StagedTransport(Transport):
    """A Transport whose ``deliver`` is the protocol of this module."""

    #: Show a progress line on a terminal for this transport's deliveries.
    show_progress = False
    #: Hold Ctrl-C back until ``write_staged`` reports progress, for protocols
    #: that a KeyboardInterrupt in the middle of a request would leave unusable
    #: (then the temporary file could not be removed).  A second Ctrl-C is
    #: not held back.
    defer_interrupts = False

    def deliver(self, source: BinaryIO, name: str | None = None) -> str:
        final = name or new_job_name()
        temp = temp_name(final)
        progress = Progress(final) if self.show_progress else None
        report = progress.add if progress else _ignore
        try:
            with _interrupts_at(report) if self.defer_interrupts else nullcontext(report) as step:
                self.write_staged(temp, source, step)
                step(0)  # a Ctrl-C held during the last read stops here, unpublished
                self.publish(temp, final)
        except BaseException:
            self.discard(temp)
            raise
        finally:
            if progress is not None:
                progress.done()
        _log.debug('Wrote job "%s"', self.job_location(final))
        return final

    @abstractmethod
    def write_staged(self, temp: str, source: BinaryIO, progress: Callable[[int], None]) -> None:
        """Write all of ``source`` to ``jobs/TEMP`` (created exclusively) and
        make it durable where the storage can; report bytes to ``progress``."""

    @abstractmethod
    def publish(self, temp: str, final: str) -> None:
        """Give ``jobs/TEMP`` the name ``jobs/FINAL``, never replacing a file:
        raise ``FileExistsError`` when FINAL exists (TEMP is then discarded)."""

    @abstractmethod
    def discard(self, temp: str) -> None:
        """Remove ``jobs/TEMP`` if it exists; never raise (it runs on failures)."""

    def staged_ages(self, temps: list[str]) -> Iterable[tuple[str, float | None]]:
        """``(name, age in seconds or None)`` for these temporary files of
        ``jobs/``; the default knows no ages, so nothing is ever removed."""
        return ((name, None) for name in temps)

    def clean_stale_temps(self, names: Iterable[str] | None = None) -> int:
        """Remove temporary files of deliveries that died; return how many.

        ``names`` is a listing of ``jobs/`` the caller already has (none is
        made then)."""
        listing = self.list_names() if names is None else names
        temps = [name for name in listing if is_temp_name(name)]
        if not temps:
            return 0
        removed = 0
        for name, age in self.staged_ages(temps):
            if age is not None and age > STALE_TEMP_AGE:
                _log.info('Removing stale temporary file "%s" (%.0f s old)', name, age)
                self.discard(name)
                removed += 1
        return removed


def _ignore(_: int) -> None:
    pass


@contextmanager
def _interrupts_at(report: Callable[[int], None]) -> Iterator[Callable[[int], None]]:
    """Defer SIGINT to the next progress report (see ``defer_interrupts``)."""
    # Only the main thread can set a signal handler.  Without threading
    # imported (the CLI does not import it) there is only the main thread.
    threading = sys.modules.get("threading")
    if threading is not None and threading.current_thread() is not threading.main_thread():
        yield report
        return
    pending: list[int] = []

    def held(signum: int, _frame: object) -> None:
        pending.append(signum)
        if len(pending) > 1:
            raise KeyboardInterrupt

    def step(size: int) -> None:
        report(size)
        if pending:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, held)
    try:
        yield step
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt
