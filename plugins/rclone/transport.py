"""Queues on any rclone remote (``rclone:REMOTE:PATH``), driving the rclone binary.

Remotes come from the user's rclone config or ``RCLONE_CONFIG_*`` variables,
exactly as rclone reads them (it runs with the inherited environment);
``-o config=FILE`` names another config file and ``-o flags="…"`` adds rclone
flags (for example backend tuning) to every call.

Delivery is ``rclone rcat`` to ``jobs/tmp-NAME.tmp`` then ``rclone moveto``
to the job name; listing is ``lsjson``; headers are ranged ``cat``s run
concurrently; payloads stream from ``rclone cat``'s stdout, a real pipe that
the command reads directly.  rclone offers no atomic create on most
backends, so the processing lock is best effort: see docs/transports/rclone.md.
"""

from __future__ import annotations

import errno
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from functools import cached_property
from typing import BinaryIO

from spooler import log, transport_options
from spooler.delivery import StagedTransport
from spooler.errors import SpoolError, UsageError, append_only, missing, no_queue
from spooler.layout import JOBS_DIR, PLACEHOLDER, SEQ_LOCK_NAME, SEQ_NAME, SEQ_TEMP_NAME
from spooler.lease import (
    DEFAULT_TTL,
    hold,
    holder,
)
from spooler.plugin import Capability, SequencePeek, SequenceState
from spooler.seqfile import parse_seq
from spooler.streams import spooled_upload
from spooler.transport_options import Option

from .command import Rclone, rclone_argv
from .lock import RcloneLockStore

_log = log.Logger("spooler.rclone")
DEFAULT_SETTLE = 1.0
HEADER_WORKERS = 8
OPTIONS = (
    Option("config"),
    Option("flags"),
    Option("lock_ttl", "seconds", DEFAULT_TTL, minimum=1),
    Option("lock_settle", "seconds", DEFAULT_SETTLE, minimum=0),
)


class RcloneTransport(StagedTransport):
    """A queue at ``REMOTE:PATH`` of an rclone remote."""

    capabilities = frozenset({Capability.PROCESS, Capability.LOCAL_FD, Capability.LEASE})

    def __init__(self, location: str, base: str, argv: list[str], options: Mapping[str, str]):
        super().__init__(location)
        self.rclone = Rclone(argv, base, location)
        opts = transport_options.parse("rclone", options, OPTIONS)
        self.lock_ttl: float = opts["lock_ttl"]
        self.settle: float = opts["lock_settle"]

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, str]) -> RcloneTransport:
        transport_options.parse("rclone", options, OPTIONS)
        base = url.split(":", 1)[1]
        if ":" not in base:
            raise UsageError(f"{url}: expected rclone:REMOTE:PATH")
        return cls(url, base, rclone_argv(options), options)

    def path(self, relative: str) -> str:
        return self.rclone.path(relative)

    def run(self, *args: str, data: bytes | None = None) -> bytes:
        return self.rclone.run(*args, data=data)

    # -- jobs --------------------------------------------------------------------
    def list_names(self) -> list[str]:
        try:
            return [entry["Name"] for entry in self.rclone.entries(JOBS_DIR)]
        except FileNotFoundError:
            raise no_queue(self.location) from None

    def open_job(self, name: str) -> BinaryIO:
        stream = self.rclone.cat(f"jobs/{name}")
        if stream.empty and not self.rclone.exists(f"jobs/{name}"):
            stream.close()
            raise missing(self.job_location(name))  # object stores "cat" a missing key as nothing
        return stream  # type: ignore[return-value]

    def read_prefixes(
        self, names: Iterable[str], size: int
    ) -> Iterator[tuple[str, bytes | OSError]]:
        def head(name: str) -> tuple[str, bytes | OSError]:
            try:
                data = self.run("cat", "--count", str(size), self.path(f"jobs/{name}"))
            except (SpoolError, OSError) as exc:
                return name, exc if isinstance(exc, OSError) else OSError(str(exc))
            # Object stores answer a missing key with nothing (it "is" an empty
            # directory); no job file is empty, so nothing means not found.
            return name, data or missing(self.job_location(name))

        with ThreadPoolExecutor(HEADER_WORKERS) as pool:
            yield from pool.map(head, list(names))

    # -- delivery (the protocol of spooler.delivery) ---------------------------
    def write_staged(self, temp: str, source: BinaryIO, progress: Callable[[int], None]) -> None:
        self._require_queue()  # rcat would create one: a typo must not
        self.rclone.rcat(f"jobs/{temp}", source)

    def publish(self, temp: str, final: str) -> None:
        # Best effort: moveto replaces, and most backends have no create-only move.
        if self.rclone.exists(f"jobs/{final}"):
            raise FileExistsError(errno.EEXIST, "Job exists", final)
        self.run("moveto", self.path(f"jobs/{temp}"), self.path(f"jobs/{final}"))

    def discard(self, temp: str) -> None:
        try:
            self.run("deletefile", self.path(f"jobs/{temp}"))
        except Exception:  # cleanup must not mask the original failure
            pass

    def staged_ages(self, temps: list[str]) -> Iterator[tuple[str, float | None]]:
        """Ages from rclone's ModTime: set by the uploading client on many
        backends, so this compares clocks, which only the one-hour margin of
        spooler.delivery.STALE_TEMP_AGE makes harmless."""
        wanted = set(temps)
        now = time.time()
        for entry in self.rclone.entries(JOBS_DIR):
            if entry.get("Name") in wanted:
                yield entry["Name"], _age(entry.get("ModTime"), now)

    def delete(self, name: str) -> None:
        self.run("deletefile", self.path(f"jobs/{name}"))

    def open_output(self, name: str) -> AbstractContextManager[BinaryIO]:
        target = self.path(f"jobs/{name}")

        def upload(spool: BinaryIO) -> None:
            self.rclone.run("rcat", target, stdin=spool.fileno())

        return spooled_upload(upload)

    # -- structure and sequence -------------------------------------------------
    def init(self, append_only: bool = False) -> None:
        try:
            if self.run("lsjson", self.path("")).strip(b"[] \n"):
                raise SpoolError(f'Queue "{self.location}" already exists')
        except FileNotFoundError:
            pass
        self.run("mkdir", self.path(JOBS_DIR))
        # Backends without directories drop an empty jobs/: keep something in it.
        self.run("rcat", self.path(f"jobs/{PLACEHOLDER}"), data=b"\n")
        if not append_only:
            self.run("rcat", self.path(SEQ_NAME), data=b"1\n")
            # The reference's flock file, so that fspl running where the files
            # are can process this queue as well.
            self.run("rcat", self.path(SEQ_LOCK_NAME), data=b"")

    def is_append_only(self) -> bool:
        if self.rclone.exists(SEQ_NAME):
            return False
        self._require_queue()
        return True

    def _require_queue(self) -> None:
        """A queue has a ``jobs`` directory (kept by a placeholder on object stores)."""
        try:
            entries = self.rclone.entries("", files_only=False)
        except FileNotFoundError:
            entries = []
        if not any(entry.get("Name") == JOBS_DIR and entry.get("IsDir") for entry in entries):
            raise no_queue(self.location)

    @cached_property
    def lock_store(self) -> RcloneLockStore:
        return RcloneLockStore(self.rclone, self.settle)

    def lock_sequence(self) -> AbstractContextManager[SequenceState]:
        if self.is_append_only():
            raise append_only(self.location)
        return hold(self.lock_store, self.location, self.lock_ttl, self._read_seq, self._write_seq)

    def peek_sequence(self) -> SequencePeek:
        doc = holder(self.lock_store)
        who = None if doc is None else f"{doc.get('host', '?')} (pid {doc.get('pid', '?')})"
        return SequencePeek(self._read_seq(), who)

    def _read_seq(self) -> int:
        text = self.run("cat", self.path(SEQ_NAME)).decode("ascii", "replace")
        return parse_seq(text, self.location)

    def _write_seq(self, value: int) -> None:
        self.run("rcat", self.path(SEQ_TEMP_NAME), data=b"%d\n" % value)
        self.run("moveto", self.path(SEQ_TEMP_NAME), self.path(SEQ_NAME))


def _age(modtime: object, now: float) -> float | None:
    """Seconds since an rclone ``ModTime`` (RFC 3339, nanoseconds allowed)."""
    if not isinstance(modtime, str):
        return None
    from datetime import datetime

    text = re.sub(r"(\.\d{6})\d+", r"\1", modtime).replace("Z", "+00:00")
    try:
        return now - datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
