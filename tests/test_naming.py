"""Job names that carry their header (spooler.naming): round trip, scans that
read no file, the check before a job runs or is shown, mixed queues, and the
reference working on queues we wrote (and the other way round)."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest
from conftest import Runner
from helpers import one_error_line
from spooler_plugins.local.transport import LocalTransport

from spooler import api
from spooler.naming import NamedMeta, job_name, parse_name
from spooler.packet import Meta, Special, encode_header
from spooler.queue import Queue


def _packet(seq: int, secs: int = 1_651_970_311, nanos: int = 425_412_511) -> bytes:
    return encode_header(Meta(seq, secs, nanos, Special.NOP))


@pytest.mark.parametrize(
    ("seq", "secs", "nanos"), [(0, 0, 0), (2**64 - 1, -(2**63), 2**32 - 1), (7, -1, 5)]
)
def test_names_round_trip(seq: int, secs: int, nanos: int) -> None:
    name = job_name(seq, secs, nanos)
    assert name.startswith("fspl-") and name.endswith(".fspl") and len(name) <= 100
    assert parse_name(name) == NamedMeta(seq, secs, nanos)
    assert job_name(seq, secs, nanos) != name  # the random part makes each unique


@pytest.mark.parametrize(
    "name",
    [
        "fspl-5c465557-e644-4211-b641-afba2b59eca1.fspl",  # the reference's
        "fspl-1_2_3_0123456789abcdef_deadbeef.fspl",  # hand-made: wrong check
        "fspl-hello.fspl",
        "fspl-1_2_3_0123456789abcdef_deadbeef.sync-conflict-20240101.fspl",
    ],
)
def test_other_names_are_not_ours(name: str) -> None:
    assert parse_name(name) is None


def test_non_canonical_numbers_are_refused() -> None:
    good = job_name(5, 10, 20)
    forged_body = "05" + good[len("fspl-5") : -len("_12345678.fspl")]
    import zlib

    forged = f"fspl-{forged_body}_{zlib.crc32(forged_body.encode()):08x}.fspl"
    assert parse_name(forged) is None


def test_queue_write_names_jobs_and_scans_read_no_file(queue: Path, ours: Runner) -> None:
    for seq in (1, 2):
        assert ours("queue-write", "-q", queue, input=_packet(seq)).returncode == 0
    ours("queue-write", "-q", queue, input=b"not a packet")
    names = sorted(os.listdir(queue / "jobs"))
    named = [n for n in names if parse_name(n) is not None]
    assert [parse_name(n).seq for n in named] == [1, 2]  # type: ignore[union-attr]
    assert len(names) == 3  # the non-packet got a UUID name
    # Empty the named files: a scan that read them would skip them.
    for name in named:
        (queue / "jobs" / name).write_bytes(b"")
    listing = Queue(LocalTransport(str(queue))).listing()
    assert [(job.name, job.meta.seq) for job in listing] == [(n, i) for i, n in enumerate(named, 1)]


def test_mixed_queue_is_processed_in_order(queue: Path, ours: Runner, tmp_path: Path) -> None:
    """A job named by us, one by UUID, one hand-made: all run, in seq order."""
    q = Queue(LocalTransport(str(queue)))
    q.write(api.make_packet(seq=1, params=[b"a"]))
    (queue / "jobs" / "fspl-5c465557-e644-4211-b641-afba2b59eca1.fspl").write_bytes(
        api.make_packet(seq=2, params=[b"b"])
    )
    (queue / "jobs" / "fspl-by-hand.fspl").write_bytes(api.make_packet(seq=3, params=[b"c"]))
    out = tmp_path / "out"
    script = f'echo "$FSPL_PARAM_1" >> {out}'
    result = ours("queue-process", "-q", queue, "--allow-job-params", "sh", "--", "-c", script)
    assert result.returncode == 0, result.err
    assert out.read_text() == "a\nb\nc\n"


def test_a_renamed_job_stops_processing(queue: Path, ours: Runner, tmp_path: Path) -> None:
    q = Queue(LocalTransport(str(queue)))
    first = q.write(_packet(1))
    second = q.write(_packet(2))
    # Swap the two jobs' contents: each name now lies about its header.
    a, b = (queue / "jobs" / first), (queue / "jobs" / second)
    data_a, data_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(data_b)
    b.write_bytes(data_a)
    result = ours("queue-process", "-q", queue, "true")
    line = one_error_line(result)
    assert f'"{first}" does not match its header' in line
    assert sorted(os.listdir(queue / "jobs")) == sorted([first, second])  # nothing run
    assert (queue / "nextseq").read_text() == "1\n"
    for command in ("queue-info", "queue-payload"):
        assert "does not match its header" in one_error_line(ours(command, "-q", queue, "-j", "2"))


def test_reference_processes_a_queue_we_wrote(
    queue: Path, ours: Runner, ref: Runner, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    for seq in (1, 2, 3):
        packet = ref("prepare", "-s", tmp_path / "seq", "--", f"p{seq}").stdout
        assert ours("queue-write", "-q", queue, input=packet).returncode == 0
    assert all(parse_name(n) is not None for n in os.listdir(queue / "jobs"))
    assert ref("queue-ls", "-q", queue).out == ours("queue-ls", "-q", queue).out
    script = f'echo "$FSPL_PARAM_1" >> {out}'
    result = ref("queue-process", "-q", queue, "--allow-job-params", "sh", "--", "-c", script)
    assert result.returncode == 0, result.err
    assert out.read_text() == "p1\np2\np3\n"


def test_we_process_a_queue_the_reference_wrote(tmp_path: Path, ours: Runner, ref: Runner) -> None:
    queue = tmp_path / "refq"
    assert ref("queue-init", "-q", queue).returncode == 0
    out = tmp_path / "out"
    for seq in (1, 2):
        packet = ref("prepare", "-s", tmp_path / "seq", "--", f"p{seq}").stdout
        assert ref("queue-write", "-q", queue, input=packet).returncode == 0
    assert ref("queue-ls", "-q", queue).out == ours("queue-ls", "-q", queue).out
    script = f'echo "$FSPL_PARAM_1" >> {out}'
    result = ours("queue-process", "-q", queue, "--allow-job-params", "sh", "--", "-c", script)
    assert result.returncode == 0, result.err
    assert out.read_text() == "p1\np2\n"


def test_the_example_runs(tmp_path: Path) -> None:
    import subprocess

    from conftest import OURS_ARGV

    script = Path(__file__).resolve().parent.parent / "examples" / "named-jobs" / "run.sh"
    env = {**os.environ, "FSPL": " ".join(OURS_ARGV)}
    proc = subprocess.run(
        ["sh", str(script), str(tmp_path)], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    names = os.listdir(tmp_path / "queue" / "jobs")
    # The three named jobs ran and were deleted; the non-packet (a UUID name) is left.
    assert len(names) == 1 and parse_name(names[0]) is None, names
    ran = [line for line in proc.stdout.splitlines() if line.startswith("ran ")]
    assert [line.rsplit(": ", 1)[1] for line in ran] == ["payload 1", "payload 2", "payload 3"]
    assert all(parse_name(line.split()[1]) is not None for line in ran)


def test_queue_ls_of_a_mixed_queue_lists_named_jobs_without_reading_them(
    queue: Path, ours: Runner
) -> None:
    """Named jobs come from their names (emptied here, a read would skip
    them), the others from their headers; sorted by seq, one line each."""
    q = Queue(LocalTransport(str(queue)))
    named = [q.write(_packet(seq, secs=1_651_970_311 + seq)) for seq in (3, 1)]
    for name in named:
        (queue / "jobs" / name).write_bytes(b"")
    uuid = "fspl-5c465557-e644-4211-b641-afba2b59eca1.fspl"
    (queue / "jobs" / uuid).write_bytes(_packet(2))
    (queue / "jobs" / "fspl-broken.fspl").write_bytes(b"not a packet")
    result = ours("queue-ls", "-q", queue)
    assert result.returncode == 0, result.err
    rows = [line.split() for line in result.out.splitlines()[1:]]
    assert [(row[0], row[2]) for row in rows] == [("1", named[1]), ("2", uuid), ("3", named[0])]
    # Each second formatted once, still per job: seq 1 and 3 are two seconds apart.
    assert rows[0][1] != rows[2][1]
    assert [tuple(row[:3]) for row in rows] == [
        (str(job.meta.seq), rows[i][1], job.name) for i, job in enumerate(q.listing())
    ]


def test_duplicate_seqs_among_named_jobs_stop_processing(queue: Path, ours: Runner) -> None:
    q = Queue(LocalTransport(str(queue)))
    q.write(_packet(1))
    q.write(_packet(1, secs=5))
    result = ours("queue-process", "-q", queue, "true")
    assert "with seq 1, which was already seen in" in one_error_line(result)
    assert len(os.listdir(queue / "jobs")) == 2  # nothing ran


def test_a_forged_name_with_a_valid_check_is_read_from_its_header(queue: Path) -> None:
    """A leading zero, with the check value recomputed: not one of our
    names, so the scan reads the job (the header says seq 4)."""
    body = "05_1_2_0123456789abcdef"
    forged = f"fspl-{body}_{zlib.crc32(body.encode()):08x}.fspl"
    (queue / "jobs" / forged).write_bytes(_packet(4))
    (job,) = Queue(LocalTransport(str(queue))).rows()
    assert job == (4, 1_651_970_311, 425_412_511, forged)
