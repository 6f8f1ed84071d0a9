"""Failure exit codes side by side with the reference, beyond usage errors.

Each case runs in a fresh copy of the same local tree for both
implementations (a failure may still change state, so nothing is shared)
and asserts that ours exits with the reference's status.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import NamedTuple

import pytest
from conftest import Runner, craft, make_queue, put_job


class Case(NamedTuple):
    args: tuple[str, ...]
    stdin: str = ""  # a file of the tree, or nothing
    lock: str = ""  # a lock file of the tree to hold (flock) while it runs


CASES: dict[str, Case] = {
    "ls-no-queue": Case(("queue-ls", "-q", "nope")),
    "info-no-queue": Case(("queue-info", "-q", "nope", "-j", "1")),
    "write-no-queue": Case(("queue-write", "-q", "nope"), stdin="packet"),
    "process-no-queue": Case(("queue-process", "-q", "nope", "true")),
    "set-next-no-queue": Case(("queue-set-next", "-q", "nope", "3")),
    "get-next-no-queue": Case(("queue-get-next", "-q", "nope")),
    "info-no-job": Case(("queue-info", "-q", "q", "-j", "7")),
    "payload-no-job": Case(("queue-payload", "-q", "q", "-j", "7")),
    "info-duplicated-seq": Case(("queue-info", "-q", "dup", "-j", "1")),
    "payload-duplicated-seq": Case(("queue-payload", "-q", "dup", "-j", "1")),
    "process-append-only": Case(("queue-process", "-q", "appendonly", "true")),
    "set-next-append-only": Case(("queue-set-next", "-q", "appendonly", "2")),
    "init-exists": Case(("queue-init", "-q", "q")),
    "process-command-missing": Case(("queue-process", "-q", "q", "/nonexistent/cmd")),
    "process-command-fails": Case(("queue-process", "-q", "q", "false")),
    "process-bad-decoder": Case(("queue-process", "-q", "q", "-d", "/nonexistent/dec", "cat")),
    "process-decoder-fails": Case(("queue-process", "-q", "q", "-d", "false", "cat")),
    "ls-bad-decoder": Case(("queue-ls", "-q", "q", "-d", "/nonexistent/dec")),
    "process-timeout": Case(("queue-process", "-q", "q", "--timeout", "1", "sleep", "--", "5")),
    "process-retry-fails": Case(("queue-process", "-q", "q", "--on-error", "Retry", "false")),
    "process-lock-held": Case(("queue-process", "-q", "q", "true"), lock="q/nextseq.lock"),
    "set-next-lock-held": Case(("queue-set-next", "-q", "q", "5"), lock="q/nextseq.lock"),
    "get-next-lock-held": Case(("queue-get-next", "-q", "q"), lock="q/nextseq.lock"),
    "prepare-lock-held": Case(("prepare", "-s", "seq", "-i", "packet"), lock="seq.lock"),
    "prepare-no-seq-dir": Case(("prepare", "-s", "no/dir/seq", "-i", "-"), stdin="packet"),
    "prepare-no-input": Case(("prepare", "-s", "seq", "-i", "/nonexistent")),
    "stdin-info-random": Case(("stdin-info",), stdin="random"),
    "stdin-info-corrupt-meta": Case(("stdin-info",), stdin="corrupt"),
    "stdin-payload-empty": Case(("stdin-payload",)),
    "stdin-process-fails": Case(("stdin-process", "false"), stdin="packet"),
    "stdin-process-missing": Case(("stdin-process", "/nonexistent/cmd"), stdin="packet"),
    "write-junk": Case(("queue-write", "-q", "q"), stdin="random"),
}


def _tree(root: Path) -> Path:
    root.mkdir()
    packet = craft(1, b"payload")
    for seq in (1, 2):
        put_job(make_queue(root / "q") if seq == 1 else root / "q", craft(seq, b"x"))
    dup = make_queue(root / "dup")
    put_job(dup, packet)
    put_job(dup, craft(1, b"other"))
    put_job(make_queue(root / "appendonly", append_only=True), packet)
    (root / "packet").write_bytes(packet)
    (root / "random").write_bytes(bytes(range(7, 107)))
    corrupt = bytearray(packet)
    corrupt[40] ^= 0xFF
    (root / "corrupt").write_bytes(bytes(corrupt))
    (root / "seq").write_text("1\n")
    (root / "seq.lock").touch()
    return root


def _run(runner: Runner, root: Path, case: Case) -> int:
    stdin = (root / case.stdin).read_bytes() if case.stdin else b""
    held = os.open(root / case.lock, os.O_RDWR) if case.lock else None
    try:
        if held is not None:
            fcntl.flock(held, fcntl.LOCK_EX)
        return runner(*case.args, input=stdin, cwd=root, timeout=30).returncode
    finally:
        if held is not None:
            os.close(held)


@pytest.mark.parametrize("name", sorted(CASES))
def test_exit_code_as_the_reference(ours: Runner, ref: Runner, tmp_path: Path, name: str) -> None:
    case = CASES[name]
    theirs = _run(ref, _tree(tmp_path / "ref"), case)
    mine = _run(ours, _tree(tmp_path / "ours"), case)
    assert mine == theirs, f"ours {mine}, reference {theirs}"
