"""Hostile queue entries, side by side with the reference on the same queue.

Every run has a timeout: a command that blocks fails the test rather than
hanging the suite.  Where the reference itself misbehaves (it hangs on a
FIFO) the test pins down that we do something strictly safer.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from conftest import Runner, craft, frame, jobs_in, make_queue, nextseq, pack, put_job
from helpers import one_error_line

SHORT = 20.0  # seconds: far more than any of these commands needs


def _queue(tmp_path: Path, name: str = "q") -> Path:
    q = make_queue(tmp_path / name)
    put_job(q, craft(1, b"one\n"), name="a1")
    put_job(q, craft(2, b"two\n"), name="a2")
    return q


# -- FIFOs and device nodes -------------------------------------------------------

FIFO_COMMANDS = [
    ["queue-ls"],
    ["queue-ls", "-d", "cat"],
    ["queue-status"],
    ["queue-info", "-j", "1"],
    ["queue-info", "-j", "1", "-d", "cat"],
    ["queue-payload", "-j", "2", "-d", "cat"],
]


@pytest.mark.parametrize("args", FIFO_COMMANDS, ids=" ".join)
def test_fifo_in_jobs_never_blocks(tmp_path: Path, ours: Runner, args: list[str]) -> None:
    q = _queue(tmp_path)
    os.mkfifo(q / "jobs" / "fspl-x.fspl")
    os.symlink("/dev/zero", q / "jobs" / "fspl-zero.fspl")
    result = ours(*args, "-q", q, timeout=SHORT)
    assert result.returncode == 0, result.err
    if args == ["queue-status"]:  # the diagnosis names what it skipped
        assert "ignored: fspl-x.fspl, fspl-zero.fspl" in result.out
    else:
        assert "fspl-x.fspl" not in result.out and "fspl-zero" not in result.out


@pytest.mark.parametrize("decoder", [[], ["-d", "cat"]], ids=["plain", "decoder"])
def test_fifo_does_not_stall_processing(tmp_path: Path, ours: Runner, decoder: list[str]) -> None:
    q = _queue(tmp_path)
    os.mkfifo(q / "jobs" / "fspl-x.fspl")
    result = ours("queue-process", "-q", q, *decoder, "cat", timeout=SHORT)
    assert (result.returncode, result.out) == (0, "one\ntwo\n"), result.err
    assert jobs_in(q) == ["fspl-x.fspl"]  # skipped, never opened for reading
    assert nextseq(q) == "3\n"


def test_reference_hangs_on_the_fifo_where_we_do_not(tmp_path: Path, ref: Runner) -> None:
    q = _queue(tmp_path)
    os.mkfifo(q / "jobs" / "fspl-x.fspl")
    with pytest.raises(subprocess.TimeoutExpired):
        ref("queue-ls", "-q", q, "-d", "cat", timeout=1)


# -- metadata cost -------------------------------------------------------------------


def _bomb(count: int) -> bytes:
    """seq 9 plus an ignored key holding ``count`` empty arrays."""
    head = pack({"seq": 9, "ctime": [5, 6], "cmd_type": "NOP"})
    block = b"\x84" + head[1:] + b"\xa1x\xdd" + count.to_bytes(4, "big") + b"\x90" * count
    return frame(block)


def test_metadata_with_millions_of_objects_is_refused_like_a_bad_header(
    tmp_path: Path, ours: Runner, ref: Runner
) -> None:
    q = _queue(tmp_path)
    put_job(q, _bomb(5_000_000), name="bomb")
    mine = ours("queue-ls", "-q", q, timeout=SHORT)
    assert mine.returncode == 0 and "fspl-bomb" not in mine.out  # skipped like a bad header
    assert [line.split()[0] for line in mine.out.splitlines()[1:]] == ["1", "2"]
    line = one_error_line(ours("stdin-info", input=_bomb(5_000_000), timeout=SHORT))
    assert "more than 1048576 objects" in line
    # The reference accepts it; below the cap we read the same packet as it does.
    small = _bomb(1000)
    assert ours("stdin-info", input=small).stdout == ref("stdin-info", input=small).stdout


#: Runs argv and prints its peak RSS (KiB).  A launcher, because Linux
#: carries a process's high-water mark across fork and exec: a child forked
#: straight from pytest would report pytest's own size.
_MEASURE = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
    "print(os.wait4(child.pid, 0)[2].ru_maxrss)\n"
)


def _peak_rss(args: list[str], stdin_path: Path) -> int:
    """Peak resident memory of one fspl run, in bytes."""
    import sys

    with open(stdin_path, "rb") as stdin:
        out = subprocess.run(
            [sys.executable, "-c", _MEASURE, sys.executable, "-m", "spooler", *args],
            stdin=stdin,
            capture_output=True,
            check=True,
        ).stdout
    return int(out) * 1024


@pytest.mark.slow
@pytest.mark.parametrize("command", ["stdin-info", "queue-ls"])
def test_a_large_metadata_block_is_read_once(tmp_path: Path, command: str) -> None:
    """A 24 MB block (refused by the object cap) is held once, not copied:
    the peak grows by under 1.5 times the block over a small packet's (a
    copy would be twice the block, 12 MB over the bound; the interpreter's
    own noise is well under one)."""
    size = 24_000_000
    small, large = tmp_path / "small", tmp_path / "large"
    small.write_bytes(_bomb(1000))
    large.write_bytes(_bomb(size))
    q = _queue(tmp_path)
    args = ["queue-ls", "-q", str(q)] if command == "queue-ls" else ["stdin-info"]
    base = _peak_rss(args, small)
    put_job(q, large.read_bytes(), name="bomb")
    grown = _peak_rss(args, large) - base
    assert grown < 1.5 * size, f"{grown / size:.2f} times the block"


def test_deep_nesting_and_oversized_claims_are_refused(ours: Runner) -> None:
    head = pack({"seq": 9, "ctime": [5, 6], "cmd_type": "NOP"})
    padding = b"\x00" * 5000  # after the value: ignored, but large blocks are walked
    deep = frame(b"\x84" + head[1:] + b"\xa1x" + b"\x91" * 100 + b"\xc0" + padding)
    assert "nests deeper than 64" in one_error_line(ours("stdin-info", input=deep))
    claims = frame(b"\x84" + head[1:] + b"\xa1x\xdd\xff\xff\xff\xff")
    one_error_line(ours("stdin-info", input=claims, timeout=SHORT))


# -- environment names ----------------------------------------------------------------


def test_equals_sign_in_a_saved_env_name_runs_the_job(
    tmp_path: Path, ours: Runner, ref: Runner
) -> None:
    packet = craft(1, env=[(b"A=B", b"C")])
    outputs = []
    for run, name in ((ours, "q"), (ref, "r")):
        q = make_queue(tmp_path / name)
        put_job(q, packet)
        result = run("queue-process", "-q", q, "env", timeout=SHORT)
        assert result.returncode == 0, result.err
        assert jobs_in(q) == []
        outputs.append([line for line in result.stdout.split(b"\n") if b"FSPL_SET" in line])
    assert outputs[0] == outputs[1] == [b"FSPL_SET_A=B=C"]


@pytest.mark.parametrize(
    "fields",
    [{"env": [(b"N\x00M", b"v")]}, {"env": [(b"V", b"x\x00y")]}, {"params": [b"a\x00b"]}],
    ids=["name", "value", "param"],
)
def test_nul_in_env_or_params(
    tmp_path: Path, ours: Runner, ref: Runner, fields: dict[str, list[object]]
) -> None:
    packet = craft(1, **fields)  # type: ignore[arg-type]
    errors = []
    for run, name in ((ours, "q"), (ref, "r")):
        q = make_queue(tmp_path / name)
        put_job(q, packet)
        result = run("queue-process", "--allow-job-params", "-q", q, "true", timeout=SHORT)
        errors.append(one_error_line(result))
        assert len(jobs_in(q)) == 1  # the job stays
    assert errors[0] == errors[1] == "Error: nul byte found in provided data"


# -- job names that are not UTF-8 ------------------------------------------------------


def test_non_utf8_job_names(tmp_path: Path, ours: Runner, ref: Runner) -> None:
    q = _queue(tmp_path)
    name = os.fsdecode(b"fspl-\xff\xfe.fspl")
    (q / "jobs" / name).write_bytes(craft(3, b"three\n"))
    mine, theirs = ours("queue-ls", "-q", q), ref("queue-ls", "-q", q)
    assert mine.returncode == theirs.returncode == 0
    assert mine.stdout == theirs.stdout and b"fspl-\xff\xfe.fspl\n" in mine.stdout
    status = ours("queue-status", "-q", q)
    assert status.returncode == 0 and "Error" not in status.err
    info = ours("queue-info", "-q", q, "-j", "3")
    assert info.stdout == ref("queue-info", "-q", q, "-j", "3").stdout
    result = ours("queue-process", "-q", q, "cat", timeout=SHORT)
    assert (result.returncode, result.out) == (0, "one\ntwo\nthree\n"), result.err
    assert os.listdir(q / "jobs") == []


# -- nextseq -----------------------------------------------------------------------


def test_long_nextseq_line_reads_whole(tmp_path: Path, ours: Runner, ref: Runner) -> None:
    for run, name in ((ours, "q"), (ref, "r")):
        q = make_queue(tmp_path / name)
        put_job(q, craft(0, b"zero\n"), name="j0")
        put_job(q, craft(7, b"seven\n"), name="j7")
        (q / "nextseq").write_text("0" * 100 + "7\n")
        result = run("queue-process", "-q", q, "cat", timeout=SHORT)
        assert (result.returncode, result.out) == (0, "seven\n"), result.err
        assert nextseq(q) == "8\n"


def test_nextseq_line_over_a_mebibyte_is_refused(tmp_path: Path, ours: Runner) -> None:
    q = _queue(tmp_path)
    (q / "nextseq").write_text("0" * (2 << 20) + "1\n")
    assert "exceeds 1 MiB" in one_error_line(ours("queue-process", "-q", q, "cat"))
    assert len(jobs_in(q)) == 2


# -- header corruption messages ----------------------------------------------------------


def _corrupt(kind: str) -> bytes:
    good = bytearray(craft(1, b"x"))
    if kind == "tag":
        good[0] ^= 1
    elif kind == "version":
        good[13] = 2
    elif kind == "prefix":
        good[26] ^= 1
    else:
        good[31] ^= 1
    return bytes(good)


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("tag", "Input doesn't appear to be a filespooler file"),
        ("version", "Input version 2 != 1"),
        ("prefix", "CRC-32 mismatch on file prefix"),
        ("metadata", "CRC-32 mismatch on metadata"),
    ],
)
@pytest.mark.parametrize("command", ["stdin-info", "stdin-payload"])
def test_header_error_texts(ours: Runner, ref: Runner, kind: str, text: str, command: str) -> None:
    data = _corrupt(kind)
    theirs = ref(command, input=data)
    assert theirs.returncode == 1 and text in theirs.err
    assert text in one_error_line(ours(command, input=data))


# -- -j and duplicated seqs ------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["queue-info", "-j", "1"], ["queue-payload", "-j", "1"], ["queue-info", "-j", "5"]]
)
def test_dash_j_refuses_a_duplicated_seq(
    tmp_path: Path, ours: Runner, ref: Runner, args: list[str]
) -> None:
    q = _queue(tmp_path)
    put_job(q, craft(2, b"again\n"), name="a3")
    mine, theirs = ours(*args, "-q", q), ref(*args, "-q", q)
    assert mine.returncode == theirs.returncode == 1
    assert "with seq 2, which was already seen in" in one_error_line(mine)
    assert theirs.stdout == mine.stdout == b""


@pytest.mark.parametrize("args", [["queue-ls"], ["queue-process", "true"]], ids=" ".join)
def test_scans_log_the_header_error_texts(
    tmp_path: Path, ours: Runner, ref: Runner, args: list[str]
) -> None:
    for run, name in ((ours, "q"), (ref, "r")):
        q = make_queue(tmp_path / name)
        for kind in ("tag", "version", "prefix", "metadata"):
            put_job(q, _corrupt(kind), name=kind)
        result = run("-l", "debug", *args[:1], "-q", q, *args[1:], timeout=SHORT)
        assert result.returncode == 0, result.err
        for text in ("filespooler file", "version 2 != 1", "file prefix", "on metadata"):
            assert text in result.err, (run, text)
        assert len(jobs_in(q)) == 4
