"""Our command line: exit status, one-line errors, and what we do beyond the reference.

Deliberate differences from the reference, asserted here as our behaviour:
* every error is one ``Error: …`` line (the reference prints anyhow's
  multi-line "Caused by:" chains, and clap's usage blocks for usage errors);
* ``--timeout`` kills the command's whole process group (the reference kills
  only the command and leaves its children running);
* ``--version`` names this project (``filespooler 0.1.0``), not fspl 1.2.2;
* ``queue-status`` and ``prepare -i`` opening its file before taking a number.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from conftest import Result, Runner, craft, jobs_in, make_queue, nextseq, put_job
from helpers import one_error_line, wait_until

from spooler.naming import parse_name

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


def alive(pid: int) -> bool:
    """Running (not gone, not a zombie awaiting its reaper)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# -- exit status ---------------------------------------------------------------------


def test_exit_status_0_cases(ours: Runner, tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    assert ours("queue-process", "-q", queue, "true").returncode == 0  # zero jobs
    put_job(queue, craft(2))
    put_job(queue, b"*FILESPOOLER garbage")
    result = ours("queue-process", "-q", queue, "false")  # no job with the next seq
    assert (result.returncode, result.stderr) == (0, b"")
    (queue / "nextseq").write_text("2\n")
    put_job(queue, craft(3))
    put_job(queue, craft(4))
    assert ours("queue-process", "-q", queue, "-n", "1", "true").returncode == 0  # maxjobs
    assert nextseq(queue) == "3\n"
    assert ours("queue-process", "-q", queue, "--on-error", "Leave", "false").returncode == 0
    assert nextseq(queue) == "5\n" and len(jobs_in(queue)) == 3  # 3, 4 and the garbage


def test_exit_status_1_cases(ours: Runner, tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    put_job(queue, craft(1))
    line = one_error_line(ours("queue-info", "-q", queue, "-j", "7"))
    assert "Job 7 not found" in line
    line = one_error_line(ours("queue-process", "-q", queue, "false"))  # Retry
    assert "exited with status 1" in line
    put_job(queue, craft(1))
    line = one_error_line(ours("queue-process", "-q", queue, "true"))
    assert "seq 1" in line  # duplicate seqs: nothing ran
    assert one_error_line(ours("queue-info", "-q", queue, "-j", "1"))
    assert nextseq(queue) == "1\n" and len(jobs_in(queue)) == 2
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "jobs").write_bytes(b"a file, not a directory")  # an I/O error
    one_error_line(ours("queue-ls", "-q", broken))


QUEUE_COMMANDS = [
    ["queue-ls"],
    ["queue-info", "-j", "1"],
    ["queue-payload", "-j", "1"],
    ["queue-get-next"],
    ["queue-set-next", "3"],
    ["queue-process", "true"],
    ["queue-process", "--order-by", "timestamp", "true"],
    ["queue-write"],
    ["queue-status"],
]


@pytest.mark.parametrize("command", QUEUE_COMMANDS, ids=lambda c: "-".join(c[:2]))
def test_missing_queue_is_one_error_line(ours: Runner, tmp_path: Path, command: list[str]) -> None:
    result = ours(command[0], "-q", tmp_path / "nope", *command[1:], input=craft(1))
    one_error_line(result)
    assert list(tmp_path.iterdir()) == []  # nothing created on the way


def test_queue_init_errors(ours: Runner, tmp_path: Path) -> None:
    make_queue(tmp_path / "q")
    assert "File exists" in one_error_line(ours("queue-init", "-q", tmp_path / "q"))
    one_error_line(ours("queue-init", "-q", tmp_path / "a" / "b"))


@pytest.mark.parametrize(
    "args",
    [
        ["bogus"],
        ["-X", "gen-uuid"],
        ["queue-process", "-q", "Q", "--order-by", "random", "true"],
        ["queue-process", "-q", "Q", "--on-error", "ignore", "true"],
        ["queue-process", "-q", "Q", "--output-to", "SaveStdout", "true"],
        ["queue-process", "-q", "Q", "--timeout", "0.5", "true"],
        ["queue-process", "-q", "Q", "-n", "-1", "true"],
        ["queue-process", "-q", "Q"],
        ["queue-set-next", "-q", "Q", "abc"],
        ["prepare-set-next", "-s", "S", "-1"],
        ["prepare", "-s", "S", "stray"],
        ["prepare"],
        ["queue-info", "-q", "Q", "-j", " 1"],
        ["-l", "verbose", "gen-uuid"],
        ["queue-ls"],
        ["queue-ls", "-q"],
    ],
    ids=lambda a: "_".join(a)[:40],
)
def test_usage_errors_exit_2_on_one_line(ours: Runner, tmp_path: Path, args: list[str]) -> None:
    # The reference prints clap's multi-line usage block; we print one line.
    one_error_line(ours(*args, cwd=tmp_path), status=2)
    assert list(tmp_path.iterdir()) == []


def test_no_command_prints_help_and_exits_2(ours: Runner) -> None:
    result = ours()
    assert result.returncode == 2 and "queue-process" in result.err


def test_enum_values_are_case_insensitive(ours: Runner, tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    put_job(queue, craft(5, ctime=(2, 0)), name="late")
    put_job(queue, craft(9, ctime=(1, 0)), name="early")
    result = ours(
        "queue-process",
        "-q",
        queue,
        "--order-by",
        "TIMESTAMP",
        "--on-error",
        "delete",
        "--output-to",
        "saveBOTH",
        "sh",
        "--",
        "-c",
        'echo "$FSPL_SEQ"; exit 1',
    )
    assert result.returncode == 0, result.err
    assert sorted(p.name for p in (queue / "jobs").iterdir()) == [
        "fspl-early.fspl.out",
        "fspl-late.fspl.out",
    ]
    assert (queue / "jobs" / "fspl-early.fspl.out").read_text() == "9\n"


@pytest.mark.parametrize(
    ("level", "shown", "hidden"),
    [
        ("error", [], ["WARN", "INFO", "DEBUG", "TRACE"]),
        ("1", [], ["WARN", "DEBUG"]),
        ("Warn", ["WARN"], ["DEBUG", "TRACE"]),
        ("info", ["WARN"], ["DEBUG", "TRACE"]),
        ("DEBUG", ["WARN", "DEBUG"], ["TRACE"]),
        ("trace", ["WARN", "DEBUG", "TRACE"], []),
        ("5", ["TRACE"], []),
    ],
)
def test_log_levels(
    ours: Runner, tmp_path: Path, level: str, shown: list[str], hidden: list[str]
) -> None:
    queue = make_queue(tmp_path / "q")
    put_job(queue, craft(1, params=[b"ignored"]))  # params without --allow-job-params: a warning
    result = ours("-l", level, "queue-process", "-q", queue, "true")
    assert result.returncode == 0
    labels = {line.split()[0] for line in result.err.splitlines()}
    for label in shown:
        assert label in labels, result.err
    for label in hidden:
        assert label not in labels, result.err


def test_debug_log_explains_ignored_files(ours: Runner, queue: Path) -> None:
    (queue / "jobs" / "fspl-garbage.fspl").write_bytes(b"not a packet")
    quiet = ours("queue-ls", "-q", queue)
    assert quiet.returncode == 0 and quiet.err == ""
    loud = ours("-l", "debug", "queue-ls", "-q", queue)
    assert "fspl-garbage.fspl" in loud.err and "unparsable" in loud.err


# -- timeout ---------------------------------------------------------------------------


def test_timeout_kills_the_whole_process_group(ours: Runner, tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    put_job(queue, craft(1))
    pidfile = tmp_path / "grandchild.pid"
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
    # Our captured stdout closes as soon as the group is dead: had the grandchild
    # survived (as with the reference), this would take 30 seconds.
    assert time.monotonic() - started < 10
    assert "timed out" in one_error_line(result)
    grandchild = int(pidfile.read_text())
    # The reference leaves this one running; we do not.
    wait_until(lambda: not alive(grandchild), "the grandchild to be killed", timeout=5)
    assert jobs_in(queue) == ["fspl-t0000.fspl"] and nextseq(queue) == "1\n"  # Retry


def test_signals_reach_the_command_group(ours: Runner, tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    put_job(queue, craft(1))
    started_file = tmp_path / "started"
    proc = subprocess.Popen(
        [
            *ours.argv0,  # type: ignore[attr-defined]
            "queue-process",
            "-q",
            str(queue),
            "--timeout",
            "60",
            "sh",
            "--",
            "-c",
            f"touch {started_file}; sleep 30 & wait",
        ],
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(lambda: started_file.exists() or proc.poll() is not None, "the command")
        assert proc.poll() is None, "fspl exited before the command started"
        proc.terminate()  # SIGTERM to fspl is passed on to the command's group
        assert proc.wait(10) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert jobs_in(queue) == ["fspl-t0000.fspl"] and nextseq(queue) == "1\n"


# -- queue-status ------------------------------------------------------------------------


def test_queue_status_shows_a_stalled_queue(ours: Runner, tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    (queue / "nextseq").write_text("3\n")
    for seq in (1, 4, 5, 5, 6, 7, 8, 9):
        put_job(queue, craft(seq, kind="NOP"))
    put_job(queue, b"junk", name="junk")
    status = ours("queue-status", "-q", queue)
    assert status.returncode == 0, status.err
    lines = status.out.splitlines()
    assert lines[0] == f"queue: {queue}"
    assert "next: 3" in lines
    assert "stalled: next is 3; present: 4–9" in lines
    assert any(line.startswith("duplicates: 5") for line in lines)
    assert any(line.startswith("stale: 1") for line in lines)
    assert any(line.startswith("unparsable: 1") and "fspl-junk.fspl" in line for line in lines)
    assert ours("queue-process", "-q", queue, "true").returncode == 1  # the duplicate 5
    assert nextseq(queue) == "3\n"


def test_queue_status_never_waits_for_a_processor(ours: Runner, tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    put_job(queue, craft(1))
    # Blocking, so that a probe below holding the lock for an instant cannot make it give up.
    holder = subprocess.Popen(["flock", str(queue / "nextseq.lock"), "sleep", "20"])
    try:
        wait_until(
            lambda: subprocess.run(["flock", "-n", str(queue / "nextseq.lock"), "true"]).returncode,
            "the holder to take the lock",
        )
        status = ours("queue-status", "-q", queue)
    finally:
        holder.kill()
        holder.wait()
    assert status.returncode == 0
    assert "next: 1 (locked" in status.out and "jobs: 1 (seq 1)" in status.out


def test_queue_status_append_only(ours: Runner, tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "ao", append_only=True)
    put_job(queue, craft(2))
    out = ours("queue-status", "-q", queue).out
    assert "append-only" in out and "jobs: 1 (seq 2)" in out


# -- writing and preparing ------------------------------------------------------------------


def test_queue_write_names_and_leaves_nothing_else(ours: Runner, queue: Path) -> None:
    packets = [craft(n, os.urandom(70_000)) for n in (1, 2)]
    for packet in packets:
        assert ours("queue-write", "-q", queue, input=packet).returncode == 0
    names = os.listdir(queue / "jobs")
    assert len(names) == 2
    # Parsable packets are named after their header (spooler.naming).
    assert sorted(parse_name(n).seq for n in names) == [1, 2], names  # type: ignore[union-attr]
    contents = sorted((queue / "jobs" / n).read_bytes() for n in names)
    assert contents == sorted(packets)  # stored verbatim, unvalidated


def test_failed_queue_write_leaves_no_temporary_file(ours: Runner, queue: Path) -> None:
    # A write-only stdin: the temporary file is created, then reading fails (EBADF).
    fd = os.open(queue.parent / "sink", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        result = subprocess.run(
            [*ours.argv0, "queue-write", "-q", str(queue)],  # type: ignore[attr-defined]
            stdin=fd,
            capture_output=True,
            timeout=60,
        )
    finally:
        os.close(fd)
    one_error_line(Result(result.returncode, result.stdout, result.stderr))
    assert os.listdir(queue / "jobs") == []


def test_prepare_missing_input_burns_no_number(ours: Runner, tmp_path: Path) -> None:
    seq = tmp_path / "seq"
    seq.write_text("4\n")
    result = ours("prepare", "-s", seq, "-i", tmp_path / "missing")
    assert "No such file" in one_error_line(result)
    assert result.stdout == b""
    assert seq.read_text() == "4\n"


def test_prepare_streams_a_file_payload(ours: Runner, tmp_path: Path) -> None:
    payload = os.urandom(300_000)
    (tmp_path / "in").write_bytes(payload)
    result = ours("prepare", "-s", tmp_path / "seq", "-i", tmp_path / "in")
    assert result.returncode == 0
    assert result.stdout.endswith(payload)
    assert result.stdout[: -len(payload)] == craft(1, ctime=_ctime_of(result.stdout))


def _ctime_of(packet: bytes) -> tuple[int, int]:
    from spooler.packet import parse_header

    meta = parse_header(packet).meta
    return meta.ctime_secs, meta.ctime_nanos


# -- small commands ----------------------------------------------------------------------


def test_python_m_spooler(ours: Runner) -> None:
    assert ours.argv0[1:] == ["-m", "spooler"]  # type: ignore[attr-defined]
    result = ours("--help")
    assert result.returncode == 0 and "queue-process" in result.out
    # Our own version string (the reference says "filespooler 1.2.2").
    assert re.fullmatch(r"filespooler \d+\.\d+\.\d+\n", ours("--version").out)


def test_gen_commands(ours: Runner) -> None:
    uuids = {ours("gen-uuid").out for _ in range(2)}
    assert len(uuids) == 2 and all(re.fullmatch(UUID + "\n", u) for u in uuids)
    assert re.fullmatch(f"fspl-{UUID}\\.fspl\n", ours("gen-filename").out)
    assert "MIT License" in ours("show-license").out


def test_queue_move_is_resumable(ours: Runner, tmp_path: Path) -> None:
    src, dst = make_queue(tmp_path / "src"), make_queue(tmp_path / "dst")
    for seq in (1, 2, 3):
        put_job(src, craft(seq, kind="NOP"))
    # As if a move crashed after delivering one job and before deleting it.
    first = jobs_in(src)[0]
    (dst / "jobs" / first).write_bytes((src / "jobs" / first).read_bytes())
    assert ours("queue-move", src, dst).returncode == 0
    assert jobs_in(src) == []
    assert len(jobs_in(dst)) == 3  # no duplicate of the pre-copied job
    assert ours("queue-process", "-q", dst, "true").returncode == 0
    assert nextseq(dst) == "4\n"


def test_transports_lists_builtins(ours: Runner) -> None:
    out = ours("transports").out
    for scheme in ("file", "s3", "sftp", "rclone"):
        assert scheme in out


def test_unknown_scheme_is_one_error_line(ours: Runner) -> None:
    one_error_line(ours("queue-ls", "-q", "nosuchscheme-xyz://host/q"))


def test_local_transport_rejects_options(ours: Runner, queue: Path) -> None:
    one_error_line(ours("queue-ls", "-q", queue, "-o", "key=value"))


def test_help_command_like_the_reference(ours: Runner) -> None:
    assert "--queuedir" in ours("help", "queue-ls").out
    assert "queue-process" in ours("help").out
    assert ours("help", "nope").returncode == 2
    assert ours().returncode == 2  # no command: usage, as the reference
