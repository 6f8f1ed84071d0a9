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

import array
import errno
import fcntl
import json
import os
import re
import select
import shlex
import shutil
import subprocess
import termios
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from functools import cached_property
from typing import Any, BinaryIO

from spooler import log
from spooler.delivery import StagedTransport
from spooler.errors import SpoolError, TransportUnavailable, append_only, no_queue
from spooler.layout import JOBS_DIR, PLACEHOLDER, SEQ_LOCK_NAME, SEQ_NAME, SEQ_TEMP_NAME
from spooler.lease import (
    DEFAULT_TTL,
    Conflict,
    LeaseStore,
    LockCopy,
    content_version,
    hold,
    holder,
)
from spooler.plugin import Capability, SequencePeek, SequenceState
from spooler.seqfile import parse_seq
from spooler.streams import raw_fd, spooled_upload

_log = log.Logger("spooler.rclone")
LOCK_NAME = "nextseq.rclone-lock"
DEFAULT_SETTLE = 1.0
HEADER_WORKERS = 8
OPTIONS = ("config", "flags", "lock_ttl", "lock_settle")


_NOISE = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d (?:[A-Z]+ *: *)?")


def last_error(stderr: bytes) -> str:
    """rclone's last stderr line without its timestamp and level."""
    lines = stderr.decode("utf-8", "replace").strip().splitlines()
    return _NOISE.sub("", lines[-1]) if lines else "failed"


_UNKNOWN_REMOTE = "didn't find section in config file"


def _seconds(options: Mapping[str, str], key: str, default: float) -> float:
    """A duration option; a one-line error, not a traceback, when it is not one."""
    raw = options.get(key)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # NaN too
        raise SpoolError(f"-o {key}={raw}: expected a number of seconds")
    return value


class RcloneTransport(StagedTransport):
    """A queue at ``REMOTE:PATH`` of an rclone remote."""

    capabilities = frozenset({Capability.PROCESS, Capability.LOCAL_FD, Capability.LEASE})

    def __init__(self, location: str, base: str, argv: list[str], options: Mapping[str, str]):
        super().__init__(location)
        self.base = base.rstrip("/")
        self.argv = argv
        self.remote = base.split(":", 1)[0]
        self.lock_ttl = _seconds(options, "lock_ttl", DEFAULT_TTL)
        self.settle = _seconds(options, "lock_settle", DEFAULT_SETTLE)

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, str]) -> RcloneTransport:
        unknown = set(options) - set(OPTIONS)
        if unknown:
            raise SpoolError(f"Unknown rclone options: {', '.join(sorted(unknown))}")
        base = url.split(":", 1)[1]
        if ":" not in base:
            raise SpoolError(f"{url}: expected rclone:REMOTE:PATH")
        binary = shutil.which("rclone")
        if binary is None:
            raise TransportUnavailable("rclone is not installed (apt-get install rclone)")
        # Never prompt: a password prompt would read the payload on stdin.
        argv = [binary, "--ask-password=false"]
        if options.get("config"):
            argv += ["--config", options["config"]]
        try:
            argv += shlex.split(options.get("flags", ""))
        except ValueError as exc:
            raise SpoolError(f"-o flags: {exc}") from None
        return cls(url, base, argv, options)

    # -- running rclone -------------------------------------------------------
    def path(self, relative: str) -> str:
        sep = "" if self.base.endswith(":") else "/"
        return f"{self.base}{sep}{relative}"

    def run(self, *args: str, data: bytes | None = None, stdin: int | None = None) -> bytes:
        """Run rclone; its last stderr line becomes a one-line error."""
        proc = subprocess.run(
            [*self.argv, *args],
            input=data,
            stdin=subprocess.DEVNULL if data is None and stdin is None else stdin,
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            message = last_error(proc.stderr)
            if _UNKNOWN_REMOTE in message:
                raise SpoolError(
                    f'rclone has no remote named "{self.remote}": define it with rclone config, '
                    f"-o config=FILE or RCLONE_CONFIG_{self.remote.upper()}_TYPE=…"
                )
            if "directory not found" in message or "object not found" in message:
                raise FileNotFoundError(message)
            raise SpoolError(f"rclone {args[0]} {self.location}: {message}")
        return proc.stdout

    def _entries(self, relative: str) -> list[dict[str, Any]]:
        out = self.run("lsjson", "--files-only", "--no-mimetype", self.path(relative))
        entries: list[dict[str, Any]] = json.loads(out or b"[]")
        return entries

    def exists(self, relative: str) -> bool:
        try:
            return bool(
                self.run("lsjson", "--files-only", "--no-mimetype", self.path(relative)).strip(
                    b"[] \n"
                )
            )
        except FileNotFoundError:
            return False

    # -- jobs --------------------------------------------------------------------
    def list_names(self) -> list[str]:
        try:
            return [entry["Name"] for entry in self._entries(JOBS_DIR)]
        except FileNotFoundError:
            raise no_queue(self.location) from None

    def open_job(self, name: str) -> BinaryIO:
        stream = _CatStream([*self.argv, "cat", self.path(f"jobs/{name}")], name)
        if stream.empty and not self.exists(f"jobs/{name}"):
            stream.close()
            raise FileNotFoundError(name)  # object stores "cat" a missing key as nothing
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
            return name, data or FileNotFoundError(name)

        with ThreadPoolExecutor(HEADER_WORKERS) as pool:
            yield from pool.map(head, list(names))

    # -- delivery (the protocol of spooler.delivery) ---------------------------
    def write_staged(self, temp: str, source: BinaryIO, progress: Callable[[int], None]) -> None:
        self._require_queue()  # rcat would create one: a typo must not
        self._rcat(f"jobs/{temp}", source)

    def publish(self, temp: str, final: str) -> None:
        # Best effort: moveto replaces, and most backends have no create-only move.
        if self.exists(f"jobs/{final}"):
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
        for entry in self._entries(JOBS_DIR):
            if entry.get("Name") in wanted:
                yield entry["Name"], _age(entry.get("ModTime"), now)

    def _rcat(self, relative: str, source: BinaryIO) -> None:
        """Stream ``source`` to rclone rcat: straight from its fd when it has one."""
        fd = raw_fd(source)
        if fd is not None:
            self.run("rcat", self.path(relative), stdin=fd)
            return
        proc = subprocess.Popen(
            [*self.argv, "rcat", self.path(relative)], stdin=subprocess.PIPE, stderr=subprocess.PIPE
        )
        assert proc.stdin is not None and proc.stderr is not None
        try:
            while chunk := source.read(1 << 20):
                proc.stdin.write(chunk)
            proc.stdin.close()
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        err = proc.stderr.read()
        if proc.wait() != 0:
            raise SpoolError(f"rclone rcat {self.location}: {last_error(err)}")

    def delete(self, name: str) -> None:
        self.run("deletefile", self.path(f"jobs/{name}"))

    def open_output(self, name: str) -> AbstractContextManager[BinaryIO]:
        target = self.path(f"jobs/{name}")

        def upload(spool: BinaryIO) -> None:
            self.run("rcat", target, stdin=spool.fileno())

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
        if self.exists(SEQ_NAME):
            return False
        self._require_queue()
        return True

    def _require_queue(self) -> None:
        """A queue has a ``jobs`` directory (kept by a placeholder on object stores)."""
        try:
            entries = json.loads(self.run("lsjson", "--no-mimetype", self.path("")) or b"[]")
        except FileNotFoundError:
            entries = []
        if not any(entry.get("Name") == JOBS_DIR and entry.get("IsDir") for entry in entries):
            raise no_queue(self.location)

    @cached_property
    def lock_store(self) -> RcloneLockStore:
        return RcloneLockStore(self, LOCK_NAME)

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


class _CatStream:
    """``rclone cat`` stdout as a readable pipe; a failed download raises on close.

    The engine reads the header from the pipe and hands the descriptor to the
    command.  When rclone dies of SIGPIPE the reader stopped early (a command
    that ignores its stdin), which is not a transport failure; any other
    non-zero exit means the payload may be truncated, so closing raises and
    the job is not counted as done.
    """

    fspl_raw_fd = True  # the pipe carries exactly the object's bytes

    def __init__(self, argv: list[str], name: str) -> None:
        self.name = name
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdout is not None
        self._out = self.proc.stdout
        # Wait for the first byte or for EOF, so that a missing job is a
        # FileNotFoundError here, as for every transport, not a short header.
        select.select([self._out], [], [])
        pending = array.array("i", [0])
        fcntl.ioctl(self._out.fileno(), termios.FIONREAD, pending)
        self.empty = pending[0] == 0
        if self.empty:
            self.proc.wait()
            if self.proc.returncode != 0:
                self.close()

    def fileno(self) -> int:
        return self._out.fileno()

    def read(self, size: int = -1) -> bytes:
        return os.read(self.fileno(), size if size >= 0 else 1 << 20)

    def close(self) -> None:
        if self._out.closed:
            return
        self._out.close()
        assert self.proc.stderr is not None
        err = last_error(self.proc.stderr.read())
        self.proc.stderr.close()
        status = self.proc.wait()
        if status == -13:  # SIGPIPE: the reader stopped early
            return
        if status != 0:
            if "not found" in err:
                raise FileNotFoundError(self.name)
            raise OSError(f"rclone cat {self.name} failed: {err}")

    def __enter__(self) -> _CatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class RcloneLockStore(LeaseStore):
    """``nextseq.rclone-lock``: a best-effort lock object.

    rclone has no create-if-absent on most backends, so ``create`` writes,
    waits ``lock_settle`` seconds for a racing writer's object to land, and
    reads back; replace and delete are read-compare-act.  rclone's
    modification times are the uploading client's, so the lock's age is not
    known: a lock is broken only when its holder is provably dead or when
    this host has seen it unchanged for a full TTL.
    """

    def __init__(self, t: RcloneTransport, name: str) -> None:
        self.t = t
        self.name = name

    def create(self, body: bytes) -> str:
        if self.read() is not None:
            raise FileExistsError(errno.EEXIST, "locked", self.name)
        try:
            self.t.run("rcat", self.t.path(self.name), data=body)
        except SpoolError as exc:
            if "hash differ" in str(exc) or "corrupted on transfer" in str(exc):
                # Another processor wrote the same object at the same moment.
                raise FileExistsError(errno.EEXIST, "locked", self.name) from None
            raise
        time.sleep(self.t.settle)  # let a racing writer's object land, then check
        current = self.read()
        if current is None or current.body != body:
            raise FileExistsError(errno.EEXIST, "locked", self.name)
        return current.version

    def read(self) -> LockCopy | None:
        try:
            body = self.t.run("cat", self.t.path(self.name))
        except FileNotFoundError:
            return None
        if not body and not self.t.exists(self.name):
            return None  # object stores "cat" a missing key as nothing
        return LockCopy(body, content_version(body))

    def _expect(self, version: str) -> None:
        current = self.read()
        if current is None:
            raise FileNotFoundError(self.name)
        if current.version != version:
            raise Conflict(self.name)

    def replace(self, body: bytes, version: str) -> str:
        self._expect(version)
        self.t.run("rcat", self.t.path(self.name), data=body)
        return content_version(body)

    def delete(self, version: str) -> None:
        try:
            self._expect(version)
        except FileNotFoundError:
            return
        self.t.run("deletefile", self.t.path(self.name))


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
