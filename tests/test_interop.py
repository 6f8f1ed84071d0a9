"""Ours and the reference fspl 1.2.2, in both directions, on shared files."""

from __future__ import annotations

import gzip
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REFERENCE, Runner, jobs_in

from spooler.packet import encode_header, parse_header

SAVED = {"FSPL_SET_FOO": "bar", "FSPL_SET_MULTI": "line one\nline two"}


def write_jobs(run: Runner, queue: Path, seqfile: Path, payloads: list[bytes]) -> None:
    for payload in payloads:
        packet = run("prepare", "-s", seqfile, "-i", "-", input=payload)
        assert packet.returncode == 0, packet.err
        assert run("queue-write", "-q", queue, input=packet.stdout).returncode == 0


# -- packets ------------------------------------------------------------------


def test_reference_packets_reencode_byte_for_byte(ref: Runner, tmp_path: Path) -> None:
    seq = tmp_path / "seq"
    for args in (
        ["prepare", "-s", seq, "-i", "-", "--", "a", "b c", "\u00e9"],
        ["prepare-nop", "-s", seq],
        ["prepare-fail", "-s", seq],
    ):
        packet = ref(*args, input=b"payload", env=SAVED).stdout
        header = parse_header(packet)
        assert encode_header(header.meta) == packet[: header.length]


@pytest.mark.parametrize("kind", ["prepare", "prepare-nop", "prepare-fail"])
def test_our_packets_read_by_reference(
    ours: Runner, ref: Runner, tmp_path: Path, kind: str
) -> None:
    args = ["-i", "-", "--", "p1", "p 2"] if kind == "prepare" else []
    packet = ours(kind, "-s", tmp_path / "seq", *args, input=b"DATA\x00\xff", env=SAVED).stdout
    assert ours("stdin-info", input=packet).stdout == ref("stdin-info", input=packet).stdout
    assert ref("stdin-payload", input=packet).stdout == (b"DATA\x00\xff" if args else b"")
    if kind == "prepare":
        info = ref("stdin-info", input=packet).out
        assert "FSPL_PARAM_2=p 2\n" in info
        assert "FSPL_SET_MULTI=line one\nline two\n" in info


def test_saved_environment_bytes_survive(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    env = {"FSPL_SET_RAW": "caf\udce9"}  # a non-UTF-8 byte (0xe9) via surrogateescape
    for sender in (ours, ref):
        packet = sender("prepare", "-s", "-", env=env).stdout
        for reader in (ours, ref):
            assert b"FSPL_SET_RAW=caf\xe9\n" in reader("stdin-info", input=packet).stdout


def test_reference_rejects_what_we_reject(ref: Runner) -> None:
    from test_packet import build, meta_doc

    bad = build(meta_doc({"Command": {"params": [b"bin"], "env": []}}))
    assert ref("stdin-info", input=bad).returncode != 0


# -- sequence files and locks -----------------------------------------------------


def test_shared_sender_seqfile(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    seq = tmp_path / "seq"
    seqs = []
    for run in (ours, ref, ours, ref):
        seqs.append(parse_header(run("prepare-nop", "-s", seq).stdout).meta.seq)
    assert seqs == [1, 2, 3, 4]
    assert ref("prepare-set-next", "-s", seq, "10").returncode == 0
    assert ours("prepare-get-next", "-s", seq).out == "10\n"
    assert ours("prepare-set-next", "-s", seq, "20").returncode == 0
    assert ref("prepare-get-next", "-s", seq).out == "20\n"
    assert seq.read_text() == "20\n"


def test_shared_queue_seq(ours: Runner, ref: Runner, queue: Path) -> None:
    assert ref("queue-set-next", "-q", queue, "5").returncode == 0
    assert ours("queue-get-next", "-q", queue).out == "5\n"
    assert ours("queue-set-next", "-q", queue, "6").returncode == 0
    assert ref("queue-get-next", "-q", queue).out == "6\n"


def _hold(run_argv: list[str], queue: Path, seq: Path) -> subprocess.Popen[bytes]:
    """Start a processor whose job sleeps, so it holds the queue lock."""
    import sys

    subprocess.run(
        [sys.executable, "-m", "spooler", "prepare", "-s", seq],
        stdout=open(queue / "jobs" / "fspl-hold.fspl", "wb"),  # noqa: SIM115
        check=True,
    )
    proc = subprocess.Popen([*run_argv, "queue-process", "-q", queue, "sleep", "--", "3"])
    deadline = time.monotonic() + 10
    while (queue / "nextseq").read_text() == "1\n" and time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.05)  # wait until the job is running (it only advances after)
        if (queue / "jobs" / "fspl-hold.fspl").exists():
            time.sleep(0.3)
            break
    return proc


@pytest.mark.parametrize("holder", ["ref", "ours"])
def test_locks_interlock(
    ours: Runner, ref: Runner, queue: Path, tmp_path: Path, holder: str
) -> None:
    import sys

    holder_argv = [REFERENCE] if holder == "ref" else [sys.executable, "-m", "spooler"]
    other = ours if holder == "ref" else ref
    proc = _hold(holder_argv, queue, tmp_path / "seq")
    try:
        assert proc.poll() is None, "the holder should still be running its job"
        blocked = other("queue-process", "-q", queue, "true")
        assert blocked.returncode == 1
        assert other("queue-get-next", "-q", queue).returncode == 1
        assert other("queue-set-next", "-q", queue, "9").returncode == 1
    finally:
        assert proc.wait(30) == 0
    assert (queue / "nextseq").read_text() == "2\n"


def test_sender_lock_interlocks(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    seq = tmp_path / "seq"
    assert ours("prepare-get-next", "-s", seq).returncode == 0
    holder = subprocess.Popen(["flock", f"{seq}.lock", "sleep", "3"])
    try:
        time.sleep(0.3)
        for run in (ours, ref):
            assert run("prepare-nop", "-s", seq).returncode == 1
    finally:
        holder.wait()
    assert ours("prepare-nop", "-s", seq).returncode == 0


# -- queues written by one, read and processed by the other ------------------------------


@pytest.fixture
def mixed_queue(ours: Runner, ref: Runner, tmp_path: Path) -> Path:
    """A queue with jobs 1..4 from both senders, delivered out of order."""
    queue = tmp_path / "q"
    assert ref("queue-init", "-q", queue).returncode == 0
    seq = tmp_path / "seq"
    packets = []
    for i, run in enumerate((ours, ref, ours, ref), 1):
        packets.append(
            run(
                "prepare",
                "-s",
                seq,
                "-i",
                "-",
                "--",
                f"arg{i}",
                input=b"payload %d\n" % i,
                env=SAVED,
            ).stdout
        )
    for index in (2, 0, 3, 1):
        writer = ref if index % 2 else ours
        assert writer("queue-write", "-q", queue, input=packets[index]).returncode == 0
    return queue


@pytest.mark.parametrize("tz", ["America/Chicago", "UTC", "Asia/Kolkata"])
def test_listing_and_info_identical(ours: Runner, ref: Runner, mixed_queue: Path, tz: str) -> None:
    env = {"TZ": tz}
    listing = ours("queue-ls", "-q", mixed_queue, env=env)
    assert listing.returncode == 0
    assert listing.stdout == ref("queue-ls", "-q", mixed_queue, env=env).stdout
    assert [row.split()[0] for row in listing.out.splitlines()[1:]] == ["1", "2", "3", "4"]
    for job in ("1", "4"):
        for command in ("queue-info", "queue-payload"):
            mine = ours(command, "-q", mixed_queue, "-j", job, env=env)
            theirs = ref(command, "-q", mixed_queue, "-j", job, env=env)
            assert mine.returncode == theirs.returncode == 0
            assert mine.stdout == theirs.stdout


def test_missing_job_id(ours: Runner, ref: Runner, mixed_queue: Path) -> None:
    for run in (ours, ref):
        result = run("queue-info", "-q", mixed_queue, "-j", "99")
        assert result.returncode == 1
        assert "Job 99 not found in directory" in result.err


@pytest.mark.parametrize("processor", ["ours", "ref"])
def test_process_in_sequence_order(
    ours: Runner, ref: Runner, mixed_queue: Path, tmp_path: Path, processor: str
) -> None:
    run = ours if processor == "ours" else ref
    log = tmp_path / "log"
    script = 'printf "%s %s %s " "$FSPL_SEQ" "$1" "$FSPL_SET_FOO" >> "$LOG"; cat >> "$LOG"'
    result = run(
        "queue-process",
        "-q",
        mixed_queue,
        "--allow-job-params",
        "sh",
        "--",
        "-c",
        script,
        "sh",
        env={"LOG": str(log)},
    )
    assert result.returncode == 0, result.err
    assert log.read_text() == "".join(f"{i} arg{i} bar payload {i}\n" for i in range(1, 5))
    assert jobs_in(mixed_queue) == []
    assert (mixed_queue / "nextseq").read_text() == "5\n"


def test_command_environment_matches(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    envs = {}
    packet = ref("prepare", "-s", "-", "--", "x", env=SAVED).stdout
    for name, run in (("ours", ours), ("ref", ref)):
        queue = tmp_path / name
        run("queue-init", "-q", queue)
        (queue / "jobs" / "fspl-same.fspl").write_bytes(packet)
        result = run("queue-process", "-q", queue, "--never-delete", "env", env={"TZ": "UTC"})
        assert result.returncode == 0
        lines = [line for line in result.out.splitlines() if line.startswith("FSPL_")]
        envs[name] = sorted(line.replace(str(queue), "Q") for line in lines)
    assert envs["ours"] == envs["ref"]


# -- failure handling, compared with the reference --------------------------------------


def _failure_queue(run: Runner, ref: Runner, tmp: Path) -> Path:
    tmp.mkdir()
    queue = tmp / "q"
    assert run("queue-init", "-q", queue).returncode == 0
    seq = tmp / "seq"
    for args in (["prepare", "-s", seq], ["prepare-fail", "-s", seq], ["prepare", "-s", seq]):
        (queue / "jobs" / f"fspl-{len(list((queue / 'jobs').iterdir()))}.fspl").write_bytes(
            ref(*args).stdout
        )
    return queue


@pytest.mark.parametrize("on_error", ["Retry", "Delete", "Leave"])
@pytest.mark.parametrize("extra", [[], ["--never-delete"]], ids=["delete", "never-delete"])
def test_on_error_matches_reference(
    ours: Runner, ref: Runner, tmp_path: Path, on_error: str, extra: list[str]
) -> None:
    outcomes = {}
    for name, run in (("ours", ours), ("ref", ref)):
        queue = _failure_queue(run, ref, tmp_path / name)
        result = run("queue-process", "-q", queue, "--on-error", on_error, *extra, "true")
        outcomes[name] = (result.returncode, (queue / "nextseq").read_text(), jobs_in(queue))
    assert outcomes["ours"] == outcomes["ref"]


def test_failing_command_matches_reference(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    outcomes = {}
    for name, run in (("ours", ours), ("ref", ref)):
        queue = _failure_queue(run, ref, tmp_path / name)
        first = run("queue-process", "-q", queue, "false")
        second = run("queue-process", "-q", queue, "--on-error", "delete", "-n", "2", "false")
        outcomes[name] = (
            first.returncode,
            second.returncode,
            (queue / "nextseq").read_text(),
            jobs_in(queue),
        )
    assert outcomes["ours"] == outcomes["ref"]


def test_duplicates_and_timestamp_order(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    outcomes = {}
    for name, run in (("ours", ours), ("ref", ref)):
        queue = tmp_path / name
        run("queue-init", "-q", queue)
        for sender in ("a", "a", "b"):
            packet = ref(
                "prepare", "-s", tmp_path / f"{name}-{sender}", "-i", "-", input=sender.encode()
            ).stdout
            run("queue-write", "-q", queue, input=packet)
            time.sleep(0.01)
        refused = run("queue-process", "-q", queue, "cat")
        listed = run("queue-ls", "-q", queue)
        done = run("queue-process", "-q", queue, "--order-by", "timestamp", "cat")
        outcomes[name] = (
            refused.returncode,
            len(listed.out.splitlines()),
            done.returncode,
            done.out,
            jobs_in(queue),
        )
    assert outcomes["ours"] == outcomes["ref"]
    assert outcomes["ours"][0] == 1 and outcomes["ours"][3] == "aab"


def test_save_both_output(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    contents = {}
    for name, run in (("ours", ours), ("ref", ref)):
        queue = tmp_path / name
        run("queue-init", "-q", queue)
        (queue / "jobs" / "fspl-x.fspl").write_bytes(
            ref("prepare", "-s", "-", "-i", "-", input=b"in\n").stdout
        )
        result = run(
            "queue-process",
            "-q",
            queue,
            "--output-to",
            "saveboth",
            "sh",
            "--",
            "-c",
            "cat; echo err >&2",
        )
        assert result.returncode == 0 and result.stdout == b""
        contents[name] = (
            sorted(p.name for p in (queue / "jobs").iterdir()),
            (queue / "jobs" / "fspl-x.fspl.out").read_bytes(),
        )
    assert contents["ours"] == contents["ref"]
    assert contents["ours"][1] == b"in\nerr\n"


def test_maxjobs_and_never_delete(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    outcomes = {}
    for name, run in (("ours", ours), ("ref", ref)):
        queue = tmp_path / name
        run("queue-init", "-q", queue)
        write_jobs(ref, queue, tmp_path / f"{name}.seq", [b"1", b"2", b"3"])
        result = run("queue-process", "-q", queue, "-n", "2", "--never-delete", "cat")
        outcomes[name] = (
            result.returncode,
            result.out,
            (queue / "nextseq").read_text(),
            len(jobs_in(queue)),
        )
    assert outcomes["ours"] == outcomes["ref"] == (0, "12", "3\n", 3)


def test_decoders(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    queue = tmp_path / "q"
    ref("queue-init", "-q", queue)
    for i in (1, 2):
        packet = ref("prepare", "-s", tmp_path / "seq", "-i", "-", input=b"zipped %d" % i).stdout
        ours("queue-write", "-q", queue, input=gzip.compress(packet))
    assert ours("queue-ls", "-q", queue).out.count("\n") == 1  # undecoded: ignored
    for decoder in ("zcat", "gzip -dc"):
        mine = ours("queue-ls", "-q", queue, "-d", decoder)
        assert mine.stdout == ref("queue-ls", "-q", queue, "-d", decoder).stdout
        assert mine.out.count("\n") == 3
    payload = ours("queue-payload", "-q", queue, "-j", "2", "-d", "zcat")
    assert payload.stdout == b"zipped 2"
    info = ours("queue-info", "-q", queue, "-j", "1", "-d", "zcat")
    assert info.stdout == ref("queue-info", "-q", queue, "-j", "1", "-d", "zcat").stdout
    done = ours("queue-process", "-q", queue, "-d", "zcat", "cat")
    assert done.returncode == 0 and done.stdout == b"zipped 1zipped 2"


def test_append_only_queue(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    for init, use in ((ours, ref), (ref, ours)):
        queue = tmp_path / f"ao-{id(init)}"
        assert init("queue-init", "-q", queue, "--append-only").returncode == 0
        assert sorted(p.name for p in queue.iterdir()) == ["jobs"]
        packet = use("prepare-nop", "-s", "-").stdout
        assert use("queue-write", "-q", queue, input=packet).returncode == 0
        assert use("queue-ls", "-q", queue).out.count("\n") == 2
        refused = use("queue-process", "-q", queue, "true")
        assert refused.returncode == 1 and "append-only" in refused.err


def test_stdin_process(ours: Runner, ref: Runner, tmp_path: Path) -> None:
    packet = ref("prepare", "-s", "-", "-i", "-", "--", "x", input=b"body").stdout
    for run in (ours, ref):
        done = run(
            "stdin-process",
            "--allow-job-params",
            "sh",
            "--",
            "-c",
            'printf "%s|%s|" "$1" "${FSPL_JOB_FILENAME-unset}"; cat',
            "sh",
            input=packet,
        )
        assert done.returncode == 0 and done.stdout == b"x|unset|body"
        assert run("stdin-process", "false", input=packet).returncode != 0
        fail = ref("prepare-fail", "-s", "-").stdout
        assert run("stdin-process", "true", input=fail).returncode != 0


def test_queue_init_on_existing_dir_fails(impl: Runner, queue: Path) -> None:
    result = impl("queue-init", "-q", queue)
    assert result.returncode == 1
    assert "File exists" in result.err
