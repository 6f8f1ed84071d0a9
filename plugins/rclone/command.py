"""Driving the rclone binary: one call, its errors, its streams.

Everything that knows how rclone is invoked lives here, so the transport
speaks in queue terms and the lock store reuses the same calls: ``run``
turns rclone's last stderr line into a one-line error, ``rcat`` streams an
upload straight from a descriptor when it can, and :class:`CatStream` is a
download as a real pipe that a command can read directly.
"""

from __future__ import annotations

import array
import fcntl
import json
import os
import re
import select
import shlex
import shutil
import subprocess
import termios
from collections.abc import Mapping
from typing import Any, BinaryIO

from spooler.errors import SpoolError, TransportUnavailable, missing
from spooler.streams import raw_fd

_STAMP = re.compile(r"^\d{4}/\d\d/\d\d \d\d:\d\d:\d\d ")
_LEVEL = re.compile(r"^(?P<level>[A-Z]+) *: *")
#: Entries worth reporting, best first: rclone's summary of the failure,
#: then its ERROR lines, then NOTICEs (a misconfigured remote).
_RANKS = (
    re.compile(r"^(?:Failed to|Fatal error)"),
    re.compile(r"^ERROR\b"),
    re.compile(r"^NOTICE\b"),
)


def last_error(stderr: bytes) -> str:
    """The useful line of rclone's stderr, without timestamp and level.

    rclone ends a failure with a ``Failed to …`` (or ``Fatal error: …``)
    summary, but DEBUG/INFO lines (``-o flags=-vv``) and usage text may
    follow it, and ``caused by: …`` continues an entry on the next line:
    entries are rebuilt, then the last one of the best kind is taken.
    """
    entries: list[str] = []
    for raw in stderr.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        stamped = _STAMP.match(line)
        line = line[stamped.end() :] if stamped else line
        if not line:
            continue
        if not stamped and entries and line.lower().startswith("caused by"):
            entries[-1] += f" ({line})"
        else:
            entries.append(line)
    for rank in _RANKS:
        for entry in reversed(entries):
            if rank.match(entry):
                return _LEVEL.sub("", entry).lstrip(": ") or entry
    useful = [e for e in entries if not re.match(r"^(?:DEBUG|INFO)\b", e)]
    return _LEVEL.sub("", useful[-1]) if useful else "failed"


_UNKNOWN_REMOTE = "didn't find section in config file"


def rclone_argv(options: Mapping[str, str]) -> list[str]:
    """The rclone command line every call starts with (``-o config``, ``-o flags``)."""
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
    return argv


class Rclone:
    """rclone calls on paths relative to one queue's ``REMOTE:PATH``."""

    def __init__(self, argv: list[str], base: str, location: str) -> None:
        self.argv = argv
        self.base = base.rstrip("/")
        self.remote = base.split(":", 1)[0]
        self.location = location

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

    def entries(self, relative: str, files_only: bool = True) -> list[dict[str, Any]]:
        """``lsjson`` of a directory (its files only, by default)."""
        flags = ["--files-only"] if files_only else []
        out = self.run("lsjson", *flags, "--no-mimetype", self.path(relative))
        entries: list[dict[str, Any]] = json.loads(out or b"[]")
        return entries

    def exists(self, relative: str) -> bool:
        try:
            return bool(self.entries(relative))
        except FileNotFoundError:
            return False

    def rcat(self, relative: str, source: BinaryIO) -> None:
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

    def cat(self, relative: str) -> CatStream:
        """A download as a pipe (see :class:`CatStream`)."""
        # Named as the URL (rclone:REMOTE:PATH) in errors.
        return CatStream([*self.argv, "cat", self.path(relative)], f"rclone:{self.path(relative)}")


class CatStream:
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
                raise missing(self.name)
            raise OSError(f"rclone cat {self.name} failed: {err}")

    def __enter__(self) -> CatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
