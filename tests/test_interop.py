"""Ours and the reference fspl 1.2.2, in both directions, on shared files.

Most scenarios build two identical queues, one per implementation, each at
``q`` relative to its own working directory, so that every output (the
FSPL_JOB_* paths included) can be compared byte for byte.
"""

from __future__ import annotations

import gzip
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import (
    DECODING_CASES,
    OURS_ARGV,
    REFERENCE,
    Result,
    Runner,
    craft,
    frame,
    jobs_in,
    make_queue,
    nextseq,
    put_job,
)
from helpers import wait_until

from spooler.packet import parse_header

SAVED = {
    "FSPL_SET_FOO": "bar",
    "FSPL_SET_MULTI": "line one\nline two\n",
    "FSPL_SET_RAW": "caf\udce9=x",  # a non-UTF-8 byte (0xe9) via surrogateescape
}
SAVED_BYTES = [(b"FOO", b"bar"), (b"MULTI", b"line one\nline two\n"), (b"RAW", b"caf\xe9=x")]


def ok(result: Result) -> Result:
    assert result.returncode == 0, result.err
    return result


# -- packets -----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["prepare", "prepare-nop", "prepare-fail"])
def test_packets_read_identically_by_both(
    impl: Runner, ours: Runner, ref: Runner, tmp_path: Path, kind: str
) -> None:
    """A packet from either sender: same stdin-info and stdin-payload from both readers."""
    seqfile = tmp_path / "seq"
    ok(ref("prepare-set-next", "-s", seqfile, "41"))
    args = ["-i", "-", "--", "p1", "p 2", "\u00e9"] if kind == "prepare" else []
    packet = ok(impl(kind, "-s", seqfile, *args, input=b"DATA\x00\xff\n", env=SAVED)).stdout
    assert seqfile.read_text() == "42\n"
    info = ok(ours("stdin-info", input=packet)).stdout
    assert info == ok(ref("stdin-info", input=packet)).stdout
    assert info.startswith(b"FSPL_SEQ=41\nFSPL_CTIME_SECS=")
    payload = ok(ours("stdin-payload", input=packet)).stdout
    assert payload == ok(ref("stdin-payload", input=packet)).stdout
    if kind == "prepare":
        assert payload == b"DATA\x00\xff\n"
        assert info.endswith(
            b"FSPL_PARAM_1=p1\nFSPL_PARAM_2=p 2\nFSPL_PARAM_3=\xc3\xa9\n"
            b"FSPL_SET_FOO=bar\nFSPL_SET_MULTI=line one\nline two\n\nFSPL_SET_RAW=caf\xe9=x\n"
        )
    else:
        assert payload == b""
        assert b"FSPL_PARAM" not in info and b"FSPL_SET" not in info


def test_our_non_utf8_params_reach_the_reference(ours: Runner, ref: Runner) -> None:
    # The reference refuses non-UTF-8 arguments on its own command line (clap,
    # exit 2); we accept them, and the packet is valid for it.
    packet = ok(ours("prepare", "-s", "-", "--", b"a\xffb")).stdout
    assert ok(ref("stdin-info", input=packet)).stdout.endswith(b"FSPL_PARAM_1=a\xffb\n")
    done = ok(ref("stdin-process", "--allow-job-params", "printf", "--", "%s", input=packet))
    assert done.stdout == b"a\xffb"


@pytest.mark.parametrize("sender", ["ours", "ref"])
def test_saved_variables_reach_the_command(
    ours: Runner, ref: Runner, tmp_path: Path, sender: str
) -> None:
    """FSPL_SET_* with newlines and non-UTF-8 bytes, set again for the command."""
    packet = ok((ours if sender == "ours" else ref)("prepare", "-s", "-", env=SAVED)).stdout
    for run in (ours, ref):
        out = ok(
            run("stdin-process", "printenv", "--", "FSPL_SET_MULTI", "FSPL_SET_RAW", input=packet)
        )
        assert out.stdout == b"line one\nline two\n\ncaf\xe9=x\n", run.name  # type: ignore[attr-defined]


def test_reference_agrees_with_the_decoding_table(ref: Runner) -> None:
    """The table test_packet holds us to is what the reference really does."""
    wrong = {}
    for name, (block, accepted) in DECODING_CASES.items():
        result = ref("stdin-info", input=frame(block))
        if (result.returncode == 0) != accepted:
            wrong[name] = (result.returncode, result.err)
    assert not wrong


def test_queue_ls_skips_and_accepts_the_same_encodings(
    ours: Runner, ref: Runner, tmp_path: Path
) -> None:
    queue = make_queue(tmp_path / "q")
    for index, (block, _) in enumerate(DECODING_CASES.values()):
        put_job(queue, frame(block), name=f"{index:03d}")
    listing = ok(ours("queue-ls", "-q", queue)).stdout
    assert listing == ok(ref("queue-ls", "-q", queue)).stdout
    accepted = sum(accepted for _, accepted in DECODING_CASES.values())
    assert listing.count(b"\n") == 1 + accepted


@pytest.mark.parametrize(
    "data",
    [
        b"",
        craft(1)[:11],
        craft(1)[:29],
        craft(1)[:30],
        craft(1)[:-1],
        frame(b"\x80", length=2**63),
        frame(b"\x80", tag=b"*FILESPOOLEX"),
        frame(b"\x80", version=2),
        frame(b"\x80", head_crc=0),
        frame(b"\x80", meta_crc=0),
    ],
    ids=[
        "empty",
        "cut-in-tag",
        "cut-in-crc",
        "no-metadata",
        "cut-in-metadata",
        "absurd-length",
        "tag",
        "version",
        "header-crc",
        "metadata-crc",
    ],
)
def test_bad_headers_fail_in_both(impl: Runner, data: bytes) -> None:
    result = impl("stdin-payload", input=data + b"PAYLOAD")
    if impl.name == "ref" and data[14:22] == (2**63).to_bytes(8, "big"):  # type: ignore[attr-defined]
        # The reference tries to allocate the 2^63 bytes and aborts (SIGABRT);
        # we refuse the length (test_packet checks that nothing is allocated).
        assert result.returncode != 0
    else:
        assert result.returncode == 1
    assert result.stdout == b""  # not one byte of a payload behind a bad header
    assert "Traceback" not in result.err


# -- time formatting -------------------------------------------------------------------

ODD_TIMES = [
    (1_651_970_311, 425_412_511),  # an ordinary moment
    (0, 0),
    (-1, 999_999_999),
    (-3_000_000_000, 0),  # 1874: local mean time, offsets with seconds
    (253_402_300_799, 0),  # 9999-12-31T23:59:59Z: year 10000 east of Greenwich
    (253_402_300_800, 0),  # year 10000
    (-62_167_219_201, 0),  # year -1
    (59, 1_500_000_000),  # nanos >= 1e9: chrono's leap-second form
    (5, 1_000_000_000),
]


@pytest.mark.parametrize("tz", ["America/Chicago", "UTC", "Asia/Kolkata", "Africa/Monrovia"])
def test_times_format_identically(ours: Runner, ref: Runner, tmp_path: Path, tz: str) -> None:
    queue = make_queue(tmp_path / "q")
    for seq, ctime in enumerate(ODD_TIMES, 1):
        put_job(queue, craft(seq, ctime=ctime), name=f"{seq:02d}")
    env = {"TZ": tz}
    listing = ok(ours("queue-ls", "-q", queue, env=env)).stdout
    assert listing == ok(ref("queue-ls", "-q", queue, env=env)).stdout
    assert listing.count(b"\n") == 1 + len(ODD_TIMES)
    for seq in (6, 8):
        packet = (queue / "jobs" / f"fspl-{seq:02d}.fspl").read_bytes()
        mine = ok(ours("stdin-info", input=packet, env=env)).stdout
        assert mine == ok(ref("stdin-info", input=packet, env=env)).stdout


def test_known_time_strings(ours: Runner) -> None:
    packet = craft(1, ctime=(1_651_970_311, 0))
    chicago = ours("stdin-info", input=packet, env={"TZ": "America/Chicago"}).out
    assert "FSPL_CTIME_RFC3339_UTC=2022-05-08T00:38:31Z\n" in chicago
    assert "FSPL_CTIME_RFC3339_LOCAL=2022-05-07T19:38:31-05:00\n" in chicago
    utc = ours("stdin-info", input=packet, env={"TZ": "UTC"}).out
    assert "FSPL_CTIME_RFC3339_LOCAL=2022-05-08T00:38:31+00:00\n" in utc


# -- sequence files ---------------------------------------------------------------------


def test_shared_sender_seqfile(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    seq = tmp_path / "seq"
    seqs = [
        parse_header(ok(run("prepare-nop", "-s", seq)).stdout).meta.seq
        for run in (ours, ref, ours, ref)
    ]
    assert seqs == [1, 2, 3, 4]
    ok(ref("prepare-set-next", "-s", seq, "10"))
    assert ok(ours("prepare-get-next", "-s", seq)).out == "10\n"
    ok(ours("prepare-set-next", "-s", seq, "20"))
    assert ok(ref("prepare-get-next", "-s", seq)).out == "20\n"
    assert seq.read_text() == "20\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq", "seq.lock"]


def test_dash_is_no_seqfile_for_prepare_but_a_file_name_for_get_set(
    impl: Runner, tmp_path: Path
) -> None:
    for kind in ("prepare", "prepare-nop", "prepare-fail"):
        packet = ok(impl(kind, "-s", "-", cwd=tmp_path)).stdout
        assert parse_header(packet).meta.seq == 1
    assert list(tmp_path.iterdir()) == []
    ok(impl("prepare-set-next", "-s", "-", "5", cwd=tmp_path))
    assert (tmp_path / "-").read_text() == "5\n"
    assert ok(impl("prepare-get-next", "-s", "-", cwd=tmp_path)).out == "5\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["-", "-.lock"]


def test_sequence_numbers_wrap_at_2_64(impl: Runner, tmp_path: Path) -> None:
    top = str(2**64 - 1)
    seqfile = tmp_path / "seq"
    ok(impl("prepare-set-next", "-s", seqfile, top))
    assert parse_header(ok(impl("prepare-nop", "-s", seqfile)).stdout).meta.seq == 2**64 - 1
    assert seqfile.read_text() == "0\n"
    queue = make_queue(tmp_path / "q")
    (queue / "nextseq").write_text(top + "\n")
    put_job(queue, craft(2**64 - 1, kind="NOP"))
    put_job(queue, craft(0, kind="NOP"))
    ok(impl("queue-process", "-q", queue, "true"))
    assert nextseq(queue) == "1\n" and jobs_in(queue) == []
    assert impl("prepare-set-next", "-s", seqfile, str(2**64)).returncode == 2


def assert_same_on_both(
    ours: Runner, ref: Runner, tmp_path: Path, check: Callable[[Runner, Path], object]
) -> None:
    """Run ``check`` on a fresh queue of each implementation; same results."""
    results = [check(run, make_queue(tmp_path / name)) for name, run in (("o", ours), ("r", ref))]
    assert results[0] == results[1]


@pytest.mark.parametrize(
    "content",
    [
        "5",
        " 5\n",
        "5\n\n",
        "5\r\n",
        "+5\n",
        "\n5\n",
        "",
        "5 6\n",
        "18446744073709551616\n",
    ],
)
def test_nextseq_content_is_read_like_the_reference(
    ours: Runner, ref: Runner, tmp_path: Path, content: str
) -> None:
    def get_next(run: Runner, queue: Path) -> tuple[int, bytes]:
        (queue / "nextseq").write_text(content)
        got = run("queue-get-next", "-q", queue)
        return got.returncode, got.stdout

    assert_same_on_both(ours, ref, tmp_path, get_next)


@pytest.mark.parametrize("value", ["+5", " 5", "-0", "18446744073709551615"])
def test_set_next_values_like_the_reference(
    ours: Runner, ref: Runner, tmp_path: Path, value: str
) -> None:
    def set_next(run: Runner, queue: Path) -> tuple[int, str]:
        return run("queue-set-next", "-q", queue, value).returncode, nextseq(queue)

    assert_same_on_both(ours, ref, tmp_path, set_next)


def test_shared_queue_seq(ours: Runner, ref: Runner, queue: Path) -> None:
    ok(ref("queue-set-next", "-q", queue, "5"))
    assert ok(ours("queue-get-next", "-q", queue)).out == "5\n"
    ok(ours("queue-set-next", "-q", queue, "6"))
    assert ok(ref("queue-get-next", "-q", queue)).out == "6\n"
    assert nextseq(queue) == "6\n"


def test_missing_nextseq_is_created_under_the_lock(impl: Runner, tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    (queue / "nextseq").unlink()
    assert ok(impl("queue-get-next", "-q", queue)).out == "1\n"
    assert nextseq(queue) == "1\n"
    (queue / "nextseq").unlink()
    put_job(queue, craft(1, kind="NOP"))
    ok(impl("queue-process", "-q", queue, "true"))
    assert nextseq(queue) == "2\n" and jobs_in(queue) == []


# -- locks ------------------------------------------------------------------------------

WAIT_FOR_RELEASE = 'touch "$STARTED"; i=0; while [ ! -e "$RELEASE" ] && [ $i -lt 400 ]; do sleep 0.025; i=$((i+1)); done'  # noqa: E501


class Holder:
    """A process holding a lock until released: a processor running a job, or flock(1)."""

    def __init__(self, argv: list[str], tmp: Path) -> None:
        self.started, self.release = tmp / "started", tmp / "release"
        env = {**os.environ, "STARTED": str(self.started), "RELEASE": str(self.release)}
        self.proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL)
        wait_until(lambda: self.started.exists() or self.proc.poll() is not None, "the holder")
        assert self.proc.poll() is None, "the holder exited before holding the lock"

    def finish(self) -> int:
        self.release.touch()
        return self.proc.wait(15)


def hold_queue(holder: str, queue: Path, tmp: Path) -> Holder:
    if holder == "flock":
        return Holder(
            ["flock", "-n", str(queue / "nextseq.lock"), "sh", "-c", WAIT_FOR_RELEASE], tmp
        )
    put_job(queue, craft(1))
    argv = [REFERENCE] if holder == "ref" else OURS_ARGV
    return Holder(
        [*argv, "queue-process", "-q", str(queue), "sh", "--", "-c", WAIT_FOR_RELEASE], tmp
    )


@pytest.mark.parametrize("holder", ["ref", "ours", "flock"])
def test_queue_lock_excludes_the_other(
    impl: Runner, ref: Runner, tmp_path: Path, holder: str
) -> None:
    queue = make_queue(tmp_path / "q")
    held = hold_queue(holder, queue, tmp_path)
    try:
        for args in (
            ["queue-process", "-q", queue, "true"],
            ["queue-get-next", "-q", queue],
            ["queue-set-next", "-q", queue, "9"],
        ):
            blocked = impl(*args)
            assert blocked.returncode == 1, (args, blocked.err)
        # Listing and delivery take no lock.
        assert ok(impl("queue-ls", "-q", queue)).out.count("\n") == (1 if holder == "flock" else 2)
        ok(impl("queue-write", "-q", queue, input=craft(2, kind="NOP")))
    finally:
        assert held.finish() == 0
    if holder != "flock":
        assert nextseq(queue) == "2\n"  # the holder's job ran to completion, undisturbed
    ok(ref("queue-process", "-q", queue, "--order-by", "timestamp", "true"))  # free again
    assert jobs_in(queue) == []


def test_sender_lock_excludes_both(impl: Runner, tmp_path: Path) -> None:
    seq = tmp_path / "seq"
    ok(impl("prepare-get-next", "-s", seq))
    held = Holder(["flock", "-n", f"{seq}.lock", "sh", "-c", WAIT_FOR_RELEASE], tmp_path)
    try:
        for args in (
            ["prepare-nop", "-s", seq],
            ["prepare", "-s", seq],
            ["prepare-get-next", "-s", seq],
            ["prepare-set-next", "-s", seq, "7"],
        ):
            blocked = impl(*args)
            assert blocked.returncode == 1, args
            assert blocked.stdout == b""
    finally:
        assert held.finish() == 0
    assert seq.read_text() == "1\n"
    assert parse_header(ok(impl("prepare-nop", "-s", seq)).stdout).meta.seq == 1


# -- queues written by one, processed by the other ----------------------------------------

LOG_JOB = 'printf "%s %s %s|" "$FSPL_SEQ" "$1" "$(cat)" >> "$LOG"'


@pytest.mark.parametrize("processor", ["ours", "ref"])
@pytest.mark.parametrize("writer", ["ours", "ref"])
@pytest.mark.parametrize("initialiser", ["ours", "ref"])
def test_init_write_process_across(
    ours: Runner, ref: Runner, tmp_path: Path, initialiser: str, writer: str, processor: str
) -> None:
    runs = {"ours": ours, "ref": ref}
    init, write, process = runs[initialiser], runs[writer], runs[processor]
    queue = tmp_path / "q"
    ok(init("queue-init", "-q", queue))
    assert sorted(p.name for p in queue.iterdir()) == ["jobs", "nextseq", "nextseq.lock"]
    assert nextseq(queue) == "1\n"
    seqfile = tmp_path / "seq"
    packets = [
        ok(write("prepare", "-s", seqfile, "-i", "-", "--", f"arg{n}", input=b"p%d" % n)).stdout
        for n in (1, 2)
    ]
    for packet in reversed(packets):  # delivered out of order: 2, 1
        ok(write("queue-write", "-q", queue, input=packet))
    listing = ok(process("queue-ls", "-q", queue)).stdout
    assert [line.split()[0] for line in listing.splitlines()[1:]] == [b"1", b"2"]
    log = tmp_path / "log"
    args = ["--allow-job-params", "sh", "--", "-c", LOG_JOB, "sh"]
    ok(process("queue-process", "-q", queue, *args, env={"LOG": str(log)}))
    assert log.read_text() == "1 arg1 p1|2 arg2 p2|"
    assert jobs_in(queue) == [] and nextseq(queue) == "3\n"


@pytest.mark.parametrize("tz", ["America/Chicago", "UTC"])
def test_inspection_outputs_identical(ours: Runner, ref: Runner, tmp_path: Path, tz: str) -> None:
    queue = make_queue(tmp_path / "q")
    seq = tmp_path / "seq"
    put_job(
        queue,
        ok(ref("prepare", "-s", seq, "-i", "-", "--", "x", input=b"one\x00", env=SAVED)).stdout,
    )
    put_job(
        queue,
        ok(
            ours("prepare", "-s", seq, "-i", "-", "--", b"\xff", "", input=b"two", env=SAVED)
        ).stdout,
    )
    put_job(queue, ok(ref("prepare-fail", "-s", seq)).stdout)
    put_job(queue, b"not a packet")
    env = {"TZ": tz}

    def same(*args: str) -> bytes:
        mine = ok(ours(*args, env=env, cwd=tmp_path)).stdout
        assert mine == ok(ref(*args, env=env, cwd=tmp_path)).stdout, args
        return mine

    assert same("queue-ls", "-q", "q").count(b"\n") == 4
    for job in ("1", "2", "3"):
        # FSPL_JOB_QUEUEDIR and FSPL_JOB_FULLPATH keep -q verbatim.
        info = same("queue-info", "-q", "./q/", "-j", job)
        assert b"FSPL_JOB_QUEUEDIR=./q/\nFSPL_JOB_FULLPATH=./q//jobs/fspl-t000" in info
        if tz == "UTC":  # payloads do not depend on the zone
            assert (
                same("queue-payload", "-q", "q", "-j", job)
                == [b"one\x00", b"two", b""][int(job) - 1]
            )


@pytest.mark.parametrize("job", ["4", "+1"])
def test_job_ids_parse_alike(ours: Runner, ref: Runner, tmp_path: Path, job: str) -> None:
    queue = make_queue(tmp_path / "q")
    put_job(queue, craft(1))
    mine, theirs = (
        ours("queue-info", "-q", queue, "-j", job),
        ref("queue-info", "-q", queue, "-j", job),
    )
    assert (mine.returncode, mine.stdout) == (theirs.returncode, theirs.stdout)


def test_duplicate_job_ids_are_refused_by_both(impl: Runner, tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    put_job(queue, craft(1, b"a"))
    put_job(queue, craft(1, b"b"))
    assert impl("queue-ls", "-q", queue).out.count("\n") == 3
    for command in ("queue-info", "queue-payload"):
        result = impl(command, "-q", queue, "-j", "1")
        assert result.returncode == 1 and result.stdout == b""


def fspl_env(stdout: bytes) -> list[bytes]:
    """FSPL_* entries of `env -0` output (values may hold newlines)."""
    return sorted(e for e in stdout.split(b"\0") if e.startswith(b"FSPL_"))


def test_environment_the_command_sees(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    put_job(queue, craft(4, params=[b"a b", b"\n", b"\xff"], env=SAVED_BYTES), name="env")
    outer = {"FSPL_SET_FOO": "outer", "FSPL_PARAM_9": "stale", "TZ": "Asia/Kolkata"}
    seen = {}
    for run in (ours, ref):
        # Timestamp order neither reads nor writes nextseq; --never-delete keeps the job.
        result = run(
            "queue-process",
            "-q",
            "q/",
            "--order-by",
            "timestamp",
            "--never-delete",
            "env",
            "--",
            "-0",
            cwd=tmp_path,
            env=outer,
        )
        seen[run.name] = fspl_env(ok(result).stdout)  # type: ignore[attr-defined]
    assert seen["ours"] == seen["ref"]
    assert b"FSPL_SET_FOO=bar" in seen["ours"]  # the job's value wins
    assert b"FSPL_PARAM_9=stale" in seen["ours"]  # inherited, as the reference does
    assert b"FSPL_JOB_FULLPATH=q//jobs/fspl-env.fspl" in seen["ours"]
    assert b"FSPL_SET_MULTI=line one\nline two\n" in seen["ours"]
    assert nextseq(queue) == "1\n" and jobs_in(queue) == ["fspl-env.fspl"]


# -- processing semantics, compared ---------------------------------------------------------

Setup = Callable[[Path], None]


def outcome(run: Runner, workdir: Path, args: list, input: bytes | None = None) -> tuple:
    """(status, stdout, nextseq, files in jobs/ with .out contents) after a run."""
    result = run(*args, cwd=workdir, input=input)
    queue = workdir / "q"
    state = nextseq(queue) if (queue / "nextseq").exists() else None
    files = {}
    for path in sorted((queue / "jobs").iterdir()):
        files[path.name] = path.read_bytes() if path.name.endswith(".out") else None
    return result.returncode, result.stdout, state, files


def compare(
    ours: Runner,
    ref: Runner,
    tmp_path: Path,
    jobs: list[tuple[str, bytes]],
    args: list,
    setup: Setup | None = None,
    input: bytes | None = None,
) -> tuple:
    """Run ``args`` (with ``-q q``) on two identical queues; both outcomes must match."""
    results = {}
    for run in (ours, ref):
        workdir = tmp_path / run.name  # type: ignore[attr-defined]
        queue = make_queue(workdir / "q")
        for name, data in jobs:
            put_job(queue, data, name=name)
        if setup is not None:
            setup(queue)
        results[run.name] = outcome(run, workdir, args, input)  # type: ignore[attr-defined]
    assert results["ours"] == results["ref"]
    return results["ours"]


def three_jobs(failing: str) -> list[tuple[str, bytes]]:
    middle = craft(2, kind="Fail") if failing == "fail-packet" else craft(2)
    return [("a", craft(1)), ("b", middle), ("c", craft(3))]


FAIL_SECOND = ["sh", "--", "-c", 'echo "ran $FSPL_SEQ"; test "$FSPL_SEQ" != 2']


@pytest.mark.parametrize("never_delete", [False, True], ids=["delete", "never-delete"])
@pytest.mark.parametrize("failing", ["command", "fail-packet"])
@pytest.mark.parametrize("on_error", ["Retry", "Delete", "Leave"])
def test_on_error(
    ours: Runner, ref: Runner, tmp_path: Path, on_error: str, failing: str, never_delete: bool
) -> None:
    extra = ["--never-delete"] if never_delete else []
    status, out, seq, files = compare(
        ours,
        ref,
        tmp_path,
        three_jobs(failing),
        ["queue-process", "-q", "q", "--on-error", on_error, *extra, *FAIL_SECOND],
    )
    ran = ["ran 1", "ran 2", "ran 3"] if failing == "command" else ["ran 1", "ran 3"]
    if on_error == "Retry":
        assert status == 1 and seq == "2\n"
        assert out.decode().split("\n")[:-1] == ran[: 2 if failing == "command" else 1]
        assert "fspl-b.fspl" in files
    else:
        assert status == 0 and seq == "4\n"
        assert out.decode().split("\n")[:-1] == ran
        kept = never_delete or on_error == "Leave"
        assert ("fspl-b.fspl" in files) == kept
        assert ("fspl-a.fspl" in files) == never_delete


def test_out_of_order_delivery_runs_in_seq_order(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    jobs = [("a", craft(3)), ("b", craft(2)), ("c", craft(1)), ("d", craft(5))]
    status, out, seq, files = compare(
        ours, ref, tmp_path, jobs, ["queue-process", "-q", "q", "printenv", "--", "FSPL_SEQ"]
    )
    assert (status, out, seq, list(files)) == (0, b"1\n2\n3\n", "4\n", ["fspl-d.fspl"])


def test_stale_jobs_below_next_are_left(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    jobs = [("a", craft(1)), ("b", craft(3))]
    result = compare(
        ours,
        ref,
        tmp_path,
        jobs,
        ["queue-process", "-q", "q", "printenv", "--", "FSPL_SEQ"],
        setup=lambda q: (q / "nextseq").write_text("3\n"),
    )
    assert result == (0, b"3\n", "4\n", {"fspl-a.fspl": None})


@pytest.mark.parametrize("order", ["sequence", "Timestamp"])
def test_duplicate_seqs(ours: Runner, ref: Runner, tmp_path: Path, order: str) -> None:
    jobs = [
        ("a", craft(1, ctime=(10, 0))),
        ("b", craft(2, ctime=(30, 0))),
        ("c", craft(2, ctime=(20, 0))),
    ]
    status, out, seq, files = compare(
        ours,
        ref,
        tmp_path,
        jobs,
        ["queue-process", "-q", "q", "--order-by", order, "printenv", "--", "FSPL_SEQ"],
    )
    if order == "sequence":  # refused before anything runs
        assert (status, out, seq, len(files)) == (1, b"", "1\n", 3)
    else:  # fine in timestamp order, which never touches nextseq
        assert (status, out, seq, files) == (0, b"1\n2\n2\n", "1\n", {})


def test_timestamp_order(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    jobs = [
        ("a", craft(1, ctime=(200, 5))),
        ("b", craft(2, ctime=(300, 0))),
        ("c", craft(3, ctime=(200, 1))),
        ("d", craft(4, ctime=(-50, 0))),
    ]
    result = compare(
        ours,
        ref,
        tmp_path,
        jobs,
        ["queue-process", "-q", "q", "--order-by", "TIMESTAMP", "printenv", "--", "FSPL_SEQ"],
        setup=lambda q: (q / "nextseq").write_text("7\n"),
    )
    assert result == (0, b"4\n3\n1\n2\n", "7\n", {})


def test_equal_timestamps_run_in_the_same_order(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    jobs = [(name, craft(seq, ctime=(100, 1))) for seq, name in enumerate("kbqazm", 1)]
    status, out, _, _ = compare(
        ours,
        ref,
        tmp_path,
        jobs,
        ["queue-process", "-q", "q", "--order-by", "timestamp", "printenv", "--", "FSPL_SEQ"],
    )
    assert status == 0 and sorted(out.split()) == [b"1", b"2", b"3", b"4", b"5", b"6"]


@pytest.mark.parametrize(
    ("order", "maxjobs"),
    [("sequence", "0"), ("sequence", "2"), ("sequence", "+9"), ("timestamp", "2")],
)
def test_maxjobs(ours: Runner, ref: Runner, tmp_path: Path, order: str, maxjobs: str) -> None:
    jobs = [(c, craft(n, ctime=(10 - n, 0))) for n, c in ((1, "a"), (2, "b"), (3, "c"))]
    status, out, _, files = compare(
        ours,
        ref,
        tmp_path,
        jobs,
        f"queue-process -q q --order-by {order} -n {maxjobs} printenv -- FSPL_SEQ".split(),
    )
    expected = {"0": 0, "2": 2, "+9": 3}[maxjobs]
    assert status == 0 and len(out.split()) == expected and len(files) == 3 - expected


SAVEBOTH = "queue-process -q q --output-to saveboth --on-error leave sh -- -c"


def test_save_both(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    jobs = [
        ("a", craft(1, b"in\n")),
        ("b", craft(2, kind="NOP")),
        ("c", craft(3, kind="Fail")),
        ("d", craft(4, b"x")),
    ]

    def stale_out(queue: Path) -> None:
        (queue / "jobs" / "fspl-d.fspl.out").write_bytes(b"old, longer content\n" * 10)

    result = compare(
        ours,
        ref,
        tmp_path,
        jobs,
        [
            *SAVEBOTH.split(),
            "cat; echo err >&2",
        ],
        setup=stale_out,
    )
    assert result == (
        0,
        b"",
        "5\n",
        {
            "fspl-a.fspl.out": b"in\nerr\n",
            "fspl-b.fspl.out": b"",
            "fspl-c.fspl": None,
            "fspl-c.fspl.out": b"",
            "fspl-d.fspl.out": b"xerr\n",
        },
    )


@pytest.mark.parametrize("allow", [True, False], ids=["allowed", "ignored"])
def test_job_params_come_after_command_params(
    ours: Runner, ref: Runner, tmp_path: Path, allow: bool
) -> None:
    jobs = [("a", craft(1, params=[b"c", b"d d"]))]
    flag = ["--allow-job-params"] if allow else []
    status, out, _, _ = compare(
        ours,
        ref,
        tmp_path,
        jobs,
        ["queue-process", "-q", "q", *flag, "printf", "--", "<%s>", "a", "b"],
    )
    assert (status, out) == (0, b"<a><b><c><d d>" if allow else b"<a><b>")


def test_ignore_payload(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    jobs = [("a", craft(1, b"PAYLOAD"))]
    args = ["queue-process", "-q", "q", "--ignore-payload", "cat"]
    assert compare(ours, ref, tmp_path, jobs, args, input=b"STDIN")[:2] == (0, b"STDIN")
    for run in (ours, ref):
        result = run("stdin-process", "--ignore-payload", "cat", input=craft(1, b"PAYLOAD"))
        assert (result.returncode, result.stdout) == (0, b"PAYLOAD"), run.name  # type: ignore[attr-defined]
        result = run("stdin-process", "cat", input=craft(1, b"PAYLOAD"))
        assert (result.returncode, result.stdout) == (0, b"PAYLOAD")


def test_payload_streams_through_unchanged(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 2048  # 512 KiB
    status, out, _, _ = compare(
        ours, ref, tmp_path, [("a", craft(1, payload))], ["queue-process", "-q", "q", "sha256sum"]
    )
    import hashlib

    assert status == 0 and out.split()[0].decode() == hashlib.sha256(payload).hexdigest()


def test_unparsable_and_foreign_files_are_ignored(
    ours: Runner, ref: Runner, tmp_path: Path
) -> None:
    jobs = [("a", craft(1, b"A")), ("x", b"garbage"), ("y", b""), ("z", craft(2)[:-1])]

    def extras(queue: Path) -> None:
        (queue / "jobs" / "fspl-dir.fspl").mkdir()
        (queue / "jobs" / "tmp-fspl-1.fspl.tmp").write_bytes(craft(2, b"T"))
        (queue / "jobs" / "fspl-b.fsplx").write_bytes(craft(2, b"X"))
        (queue / "jobs" / "FSPL-c.fspl").write_bytes(craft(2, b"C"))
        (queue / "other").write_bytes(b"ignored too")

    status, out, seq, files = compare(
        ours, ref, tmp_path, jobs, ["queue-process", "-q", "q", "cat"], setup=extras
    )
    assert (status, out, seq) == (0, b"A", "2\n")
    assert "fspl-a.fspl" not in files and "fspl-x.fspl" in files and "fspl-dir.fspl" in files


@pytest.mark.parametrize("decoder", ["zcat", "gzip -dc"])
def test_decoders(ours: Runner, ref: Runner, tmp_path: Path, decoder: str) -> None:
    jobs = [
        (n, gzip.compress(craft(int(n), b"zipped %s" % n.encode(), params=[n.encode()]), mtime=0))
        for n in ("2", "1")
    ]
    queue = make_queue(tmp_path / "q")
    for name, data in jobs:
        put_job(queue, data, name=name)
    assert ours("queue-ls", "-q", queue).stdout.count(b"\n") == 1  # undecoded: not packets
    listing = ok(ours("queue-ls", "-q", queue, "-d", decoder)).stdout
    assert listing == ok(ref("queue-ls", "-q", queue, "-d", decoder)).stdout
    assert listing.count(b"\n") == 3
    for command in ("queue-info", "queue-payload"):
        mine = ok(ours(command, "-q", queue, "-j", "2", "-d", decoder)).stdout
        assert mine == ok(ref(command, "-q", queue, "-j", "2", "-d", decoder)).stdout
    assert ours("queue-payload", "-q", queue, "-j", "2", "-d", decoder).stdout == b"zipped 2"
    args = [
        "queue-process",
        "-q",
        "q",
        "-d",
        decoder,
        "--allow-job-params",
        "sh",
        "--",
        "-c",
        'printf "$1:"; cat',
        "sh",
    ]
    assert compare(ours, ref, tmp_path, jobs, args) == (0, b"1:zipped 12:zipped 2", "3\n", {})


def test_decoder_runs_under_shell(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    put_job(queue, craft(1, b"A"))
    env = {"SHELL": "/bin/bash"}
    for run in (ours, ref):
        result = ok(
            run(
                "queue-payload",
                "-q",
                queue,
                "-j",
                "1",
                "-d",
                'echo "$BASH_VERSION" >&2; cat',
                env=env,
            )
        )
        assert result.stdout == b"A" and result.err.strip()  # bash, not sh, ran it


@pytest.mark.parametrize("initialiser", ["ours", "ref"])
def test_append_only_queue(ours: Runner, ref: Runner, tmp_path: Path, initialiser: str) -> None:
    init, other = (ours, ref) if initialiser == "ours" else (ref, ours)
    queue = tmp_path / "ao"
    ok(init("queue-init", "-q", queue, "--append-only"))
    assert [p.name for p in queue.iterdir()] == ["jobs"]
    for run in (other, init):
        ok(run("queue-write", "-q", queue, input=craft(1, kind="NOP")))
        assert ok(run("queue-ls", "-q", queue)).out.count("\n") >= 2
        for args in (
            ["queue-process", "-q", queue, "true"],
            ["queue-process", "-q", queue, "--order-by", "timestamp", "true"],
            ["queue-get-next", "-q", queue],
            ["queue-set-next", "-q", queue, "3"],
        ):
            assert run(*args).returncode == 1, args
    assert len(jobs_in(queue)) == 2
    assert [p.name for p in queue.iterdir()] == ["jobs"]


def test_timeout(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    jobs = [("a", craft(1)), ("b", craft(2))]
    script = 'if [ "$FSPL_SEQ" = 1 ]; then exec sleep 5; fi; echo done $FSPL_SEQ'
    slow_first = ["sh", "--", "-c", script]
    started = time.monotonic()
    args = ["queue-process", "-q", "q", "--timeout", "1", "--on-error", "delete", *slow_first]
    assert compare(ours, ref, tmp_path, jobs, args) == (0, b"done 2\n", "3\n", {})
    assert time.monotonic() - started < 8  # (Retry after a timeout: test_cli)


def test_unrunnable_command_aborts_even_under_delete(
    ours: Runner, ref: Runner, tmp_path: Path
) -> None:
    jobs = [("a", craft(1)), ("b", craft(2))]
    for on_error in ("retry", "delete"):
        result = compare(
            ours,
            ref,
            tmp_path / on_error,
            jobs,
            ["queue-process", "-q", "q", "--on-error", on_error, "/nonexistent/command"],
        )
        assert result == (1, b"", "1\n", {"fspl-a.fspl": None, "fspl-b.fspl": None})


def test_stdin_process(impl: Runner) -> None:
    packet = craft(1, b"body", params=[b"x"])
    done = impl(
        "stdin-process",
        "--allow-job-params",
        "sh",
        "--",
        "-c",
        'printf "%s|%s|%s|" "$1" "$FSPL_SEQ" "${FSPL_JOB_FILENAME-unset}"; cat',
        "sh",
        input=packet,
    )
    assert (done.returncode, done.stdout) == (0, b"x|1|unset|body")
    assert impl("stdin-process", "false", input=packet).returncode == 1
    assert impl("stdin-process", "true", input=craft(1, kind="Fail")).returncode == 1
    nop = impl("stdin-process", "false", input=craft(1, b"ignored", kind="NOP"))
    assert (nop.returncode, nop.stdout) == (0, b"")


def test_queue_init_refuses_existing_or_orphan_dirs(impl: Runner, tmp_path: Path) -> None:
    existing = make_queue(tmp_path / "q")
    assert impl("queue-init", "-q", existing).returncode == 1
    assert impl("queue-init", "-q", tmp_path / "no" / "parent").returncode == 1
    plain = tmp_path / "plain"
    plain.mkdir()
    assert impl("queue-init", "-q", plain).returncode == 1
    assert list(plain.iterdir()) == []


@pytest.mark.parametrize("timeout", ["0", "+1", "0.5", " 1", "1e1", "-1"])
def test_option_values_parse_alike(ours: Runner, ref: Runner, tmp_path: Path, timeout: str) -> None:
    args = ["queue-process", "-q", "q", "--timeout", timeout, "sleep", "--", "0.1"]
    status, _, _, _ = compare(ours, ref, tmp_path, [("a", craft(1))], args)
    assert status == {"0": 1, "+1": 0}.get(timeout, 2)


@pytest.mark.parametrize("option", [["--timeout", "1.5"], ["--timeout", "-1"], ["-n", "0x10"]])
def test_whole_number_options_are_refused_like_the_reference(
    ours: Runner, ref: Runner, tmp_path: Path, option: list[str]
) -> None:
    def run(runner: Runner, queue: Path) -> tuple[int, bool]:
        result = runner("queue-process", "-q", queue, *option, "true")
        return result.returncode, bool(result.err)

    assert_same_on_both(ours, ref, tmp_path, run)


#: A job command reporting what it inherited: its ignored and blocked
#: signals, and whether it shares its parent's process group.
SIGNAL_REPORT = """#!/bin/sh
# Shell built-ins only: a fork would change the mask it reads.
while read -r key value; do
  case $key in SigIgn:|SigBlk:) echo "$key $value";; esac
done < /proc/$$/status
read -r line < /proc/$$/stat; set -- $line; mine=$5
read -r line < /proc/$PPID/stat; set -- $line; parent=$5
if [ "$mine" = "$parent" ]; then echo same process group; else echo own process group; fi
"""


@pytest.mark.parametrize("ignored", ["", "INT HUP", "INT QUIT TERM USR1"])
def test_commands_inherit_signals_and_group_as_from_the_reference(
    ours: Runner, ref: Runner, tmp_path: Path, ignored: str
) -> None:
    # The processor runs with some signals ignored (as under nohup): a
    # command must see what the reference's commands see, nothing reset
    # differently, nothing blocked, the same process group.
    script = tmp_path / "report"
    script.write_text(SIGNAL_REPORT)
    script.chmod(0o755)
    reports = []
    for runner in (ours, ref):
        where = tmp_path / runner.name  # type: ignore[attr-defined]
        where.mkdir()
        assert runner("queue-init", "-q", "q", cwd=where).returncode == 0
        packet = runner("prepare", "-s", "-").stdout
        assert runner("queue-write", "-q", "q", input=packet, cwd=where).returncode == 0
        argv = [*runner.argv0, "queue-process", "-q", "q", str(script)]  # type: ignore[attr-defined]
        shell = f"trap '' {ignored}; exec \"$@\"" if ignored else 'exec "$@"'
        proc = subprocess.run(
            ["sh", "-c", shell, "sh", *argv], cwd=where, capture_output=True, check=False
        )
        assert proc.returncode == 0, proc.stderr
        reports.append(proc.stdout)
    assert b"same process group" in reports[1]
    assert b"SigBlk:" in reports[1]
    assert reports[0] == reports[1]


@pytest.mark.parametrize("maxjobs", ["0", "2"])
@pytest.mark.parametrize("order", ["Sequence", "Timestamp"])
def test_maxjobs_runs_that_many_in_order(
    impl: Runner, tmp_path: Path, order: str, maxjobs: str
) -> None:
    """``-n`` stops after exactly that many jobs, each run before the next
    starts, the sequence advanced (sequence order only) and each job removed."""
    queue = make_queue(tmp_path / "q")
    for seq in (1, 2, 3):
        # ctime descending against seq: the two orders pick different jobs.
        put_job(queue, craft(seq, ctime=(1_700_000_000 - seq, 0)))
    log = tmp_path / "log"
    script = f'echo "$FSPL_SEQ" >> {log}'
    args = ("queue-process", "-q", queue, "--order-by", order, "-n", maxjobs, "sh", "--", "-c")
    ok(impl(*args, script))
    ran = log.read_text().split() if log.exists() else []
    expected = ["1", "2"] if order == "Sequence" else ["3", "2"]
    assert ran == expected[: int(maxjobs)]
    assert len(jobs_in(queue)) == 3 - int(maxjobs)
    assert nextseq(queue) == (f"{1 + int(maxjobs)}\n" if order == "Sequence" else "1\n")
