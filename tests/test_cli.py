"""Our command line: exit codes, one-line errors, and what we add."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from conftest import Runner, jobs_in

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def assert_one_error_line(result: object, status: int = 1) -> None:
    err = result.err  # type: ignore[attr-defined]
    assert result.returncode == status, err  # type: ignore[attr-defined]
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie awaiting a reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


QUEUE_COMMANDS = [
    ["queue-ls"],
    ["queue-info", "-j", "1"],
    ["queue-payload", "-j", "1"],
    ["queue-get-next"],
    ["queue-set-next", "3"],
    ["queue-process", "true"],
    ["queue-write"],
    ["queue-status"],
]


@pytest.mark.parametrize("command", QUEUE_COMMANDS, ids=lambda c: c[0])
def test_missing_queue_is_one_error_line(ours: Runner, tmp_path: Path, command: list[str]) -> None:
    result = ours(command[0], "-q", tmp_path / "nope", *command[1:], input=b"x")
    assert_one_error_line(result)
    assert not (tmp_path / "nope").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        ["queue-process", "-q", "Q", "--order-by", "random", "true"],
        ["queue-process", "-q", "Q", "--on-error", "ignore", "true"],
        ["queue-process", "-q", "Q", "--timeout", "soon", "true"],
        ["queue-set-next", "-q", "Q", "abc"],
        ["prepare-set-next", "-s", "S", "-1"],
        ["prepare", "-s", "S", "stray"],
        ["-l", "verbose", "gen-uuid"],
        ["queue-ls"],
    ],
    ids=lambda a: "-".join(a)[:40],
)
def test_usage_errors_exit_2(ours: Runner, tmp_path: Path, args: list[str]) -> None:
    result = ours(*args, cwd=tmp_path)
    assert result.returncode == 2, result.err
    assert "Traceback" not in result.err


def test_enum_values_are_case_insensitive(ours: Runner, queue: Path) -> None:
    for args in (
        ["--order-by", "TIMESTAMP"],
        ["--on-error", "delete"],
        ["--output-to", "saveboth"],
    ):
        assert ours("queue-process", "-q", queue, *args, "true").returncode == 0


@pytest.mark.parametrize("level", ["trace", "DEBUG", "Info", "warn", "error", "1", "5"])
def test_log_levels(ours: Runner, level: str) -> None:
    assert ours("-l", level, "gen-uuid").returncode == 0


def test_debug_log_explains_ignored_files(ours: Runner, queue: Path) -> None:
    (queue / "jobs" / "fspl-garbage.fspl").write_bytes(b"not a packet")
    quiet = ours("queue-ls", "-q", queue)
    assert quiet.returncode == 0 and quiet.err == ""
    loud = ours("-l", "debug", "queue-ls", "-q", queue)
    assert "fspl-garbage.fspl" in loud.err and "unparsable" in loud.err


def test_gen_commands(ours: Runner) -> None:
    assert re.fullmatch(UUID + "\n", ours("gen-uuid").out)
    assert re.fullmatch(f"fspl-{UUID}\\.fspl\n", ours("gen-filename").out)
    assert "MIT License" in ours("show-license").out
    assert re.fullmatch(r"filespooler \d+\.\d+\.\d+\n", ours("--version").out)


def test_queue_write_names_and_leaves_nothing(ours: Runner, queue: Path) -> None:
    packet = ours("prepare-nop", "-s", "-").stdout
    for _ in range(3):
        assert ours("queue-write", "-q", queue, input=packet).returncode == 0
    names = os.listdir(queue / "jobs")
    assert len(names) == 3
    assert all(re.fullmatch(f"fspl-{UUID}\\.fspl", n) for n in names)


def test_prepare_missing_input_burns_no_number(ours: Runner, tmp_path: Path) -> None:
    seq = tmp_path / "seq"
    assert ours("prepare-get-next", "-s", seq).out == "1\n"
    assert_one_error_line(ours("prepare", "-s", seq, "-i", tmp_path / "missing"))
    assert ours("prepare-get-next", "-s", seq).out == "1\n"


def test_timeout_kills_the_process_group(ours: Runner, queue: Path, tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    ours("queue-write", "-q", queue, input=ours("prepare", "-s", "-").stdout)
    started = time.monotonic()
    result = ours(
        "queue-process",
        "-q",
        queue,
        "--timeout",
        "1",
        "sh",
        "--",
        "-c",
        f"sleep 30 & echo $! > {pidfile}; wait",
    )
    assert time.monotonic() - started < 20
    assert result.returncode == 1 and "timed out" in result.err
    grandchild = int(pidfile.read_text())
    time.sleep(0.2)
    assert not alive(grandchild)  # the reference leaves this one running; we do not
    assert len(jobs_in(queue)) == 1  # Retry: the job stays


def test_queue_status_shows_a_stalled_queue(ours: Runner, queue: Path) -> None:
    ours("queue-set-next", "-q", queue, "3")
    for seq in range(4, 10):
        packet = ours("prepare-nop", "-s", "-").stdout
        # Give the packet seq `seq` by preparing with a dedicated seqfile.
        seqfile = queue.parent / f"s{seq}"
        ours("prepare-set-next", "-s", seqfile, str(seq))
        packet = ours("prepare-nop", "-s", seqfile).stdout
        ours("queue-write", "-q", queue, input=packet)
    (queue / "jobs" / "fspl-junk.fspl").write_bytes(b"junk")
    status = ours("queue-status", "-q", queue)
    assert status.returncode == 0
    assert "next: 3" in status.out
    assert "stalled: next is 3; present: 4–9" in status.out
    assert "unparsable: 1" in status.out
    assert ours("queue-process", "-q", queue, "true").returncode == 0  # nothing runs
    assert len(jobs_in(queue)) == 7


def test_queue_status_append_only(ours: Runner, tmp_path: Path) -> None:
    queue = tmp_path / "ao"
    ours("queue-init", "-q", queue, "--append-only")
    assert "append-only" in ours("queue-status", "-q", queue).out


def test_queue_move_is_resumable(ours: Runner, tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    for q in (src, dst):
        ours("queue-init", "-q", q)
    for _ in range(3):
        ours("queue-write", "-q", src, input=ours("prepare-nop", "-s", tmp_path / "seq").stdout)
    # Simulate a crash after delivery and before deletion: copy one by hand.
    first = jobs_in(src)[0]
    (dst / "jobs" / first).write_bytes((src / "jobs" / first).read_bytes())
    assert ours("queue-move", src, dst).returncode == 0
    assert jobs_in(src) == []
    assert len(jobs_in(dst)) == 3  # no duplicate of the pre-copied job
    assert ours("queue-process", "-q", dst, "true").returncode == 0
    assert (dst / "nextseq").read_text() == "4\n"


def test_python_m_spooler(ours: Runner) -> None:
    result = ours("--help")
    assert result.returncode == 0 and "queue-process" in result.out


def test_transports_lists_builtins(ours: Runner) -> None:
    out = ours("transports").out
    for scheme in ("file", "s3", "sftp", "rclone"):
        assert scheme in out


def test_unknown_scheme_is_one_error_line(ours: Runner) -> None:
    assert_one_error_line(ours("queue-ls", "-q", "nosuchscheme-xyz://host/q"))


def test_local_transport_rejects_options(ours: Runner, queue: Path) -> None:
    assert_one_error_line(ours("queue-ls", "-q", queue, "-o", "key=value"))


def test_help_command_like_the_reference(ours: Runner) -> None:
    assert "--queuedir" in ours("help", "queue-ls").out
    assert "queue-process" in ours("help").out
    assert ours("help", "nope").returncode == 2
    assert ours().returncode == 2  # no command: usage, as the reference
