"""Helpers for tests of long-running fspl processes (queue-process --watch, serve)."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from conftest import OURS_ARGV, fork_server
from forkserver import Child
from helpers import TIMEOUT, wait_until


class Daemon:
    """A long-running ``fspl`` whose stdout and stderr go to a file."""

    def __init__(
        self,
        args: Sequence[str | os.PathLike[str]],
        log: Path,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.log = log
        self.proc: subprocess.Popen[bytes] | Child
        server = fork_server()  # a child of it where there is one: no interpreter start
        with open(log, "wb") as out, open(os.devnull, "rb") as devnull:
            if server is not None:
                self.proc = server.start(
                    list(map(os.fspath, args)),
                    {**os.environ, **(env or {})},
                    os.fspath(cwd) if cwd is not None else os.getcwd(),
                    (devnull.fileno(), out.fileno(), out.fileno()),
                )
                return
            self.proc = subprocess.Popen(
                [*OURS_ARGV, *map(os.fspath, args)],
                stdin=devnull,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=cwd,
            )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_output(self, text: str, count: int = 1) -> None:
        def seen() -> bool:
            if self.proc.poll() is not None and self.output.count(text) < count:
                raise AssertionError(f"exited with {self.proc.returncode}:\n{self.output}")
            return self.output.count(text) >= count

        wait_until(seen, f"{text!r} x{count} in:\n{self.output}")

    def signal(self, signum: int = signal.SIGTERM) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = TIMEOUT) -> int:
        return self.proc.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(name="daemon")
def daemon_fixture(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemons; any still running at the end of the test is killed."""
    started: list[Daemon] = []

    def start(*args: str | os.PathLike[str], **kw: object) -> Daemon:
        d = Daemon(args, tmp_path / f"daemon-{len(started)}.log", **kw)  # type: ignore[arg-type]
        started.append(d)
        return d

    yield start
    for d in started:
        d.kill()


def recorder(log: Path) -> list[str]:
    """A queue-process COMMAND and PARAMS appending "SEQ PAYLOAD" lines to ``log``."""
    return ["sh", "--", "-c", f'printf "%s %s\\n" "$FSPL_SEQ" "$(cat)" >> "{log}"']


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0): it is dead for our purposes.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
