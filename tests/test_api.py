"""The Python API (spooler.api), including on queues the reference writes and reads."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import BinaryIO

import pytest
from conftest import Runner, craft, jobs_in, make_queue, nextseq, put_job

import spooler
from spooler import Command, Meta, OnError, Special, SpoolError
from spooler.errors import CommandFailed, JobNotFound
from spooler.packet import parse_header

CTIME = (1_700_000_000, 123)


# -- sending ---------------------------------------------------------------------------


def test_header_is_the_contract_byte_for_byte(tmp_path: Path) -> None:
    head = spooler.header(
        spooler.command([b"a", b"\xff"], env=[(b"K", b"v\n")]), seq=5, ctime=CTIME
    )
    assert head == craft(5, ctime=CTIME, params=[b"a", b"\xff"], env=[(b"K", b"v\n")])
    assert spooler.header(Special.NOP, seq=6, ctime=CTIME) == craft(6, ctime=CTIME, kind="NOP")
    assert spooler.header(seq=7, ctime=CTIME) == craft(7, ctime=CTIME)  # cmd None: Command()
    assert spooler.header(Special.FAIL, seqfile_path="-", ctime=CTIME) == craft(
        1, ctime=CTIME, kind="Fail"
    )


def test_header_takes_the_seq_from_a_seqfile(tmp_path: Path) -> None:
    seqfile = tmp_path / "seq"
    seqs = [parse_header(spooler.header(seqfile_path=str(seqfile))).meta.seq for _ in range(3)]
    assert seqs == [1, 2, 3]
    assert seqfile.read_text() == "4\n" and (tmp_path / "seq.lock").exists()


def test_command_saves_fspl_set_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("FSPL_SET_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FSPL_SET_ONE", "1\n2")
    monkeypatch.setenv("NOT_SAVED", "x")
    assert spooler.command([b"p"]) == Command((b"p",), ((b"ONE", b"1\n2"),))
    assert spooler.command(env=[]) == Command((), ())


def test_make_packet(tmp_path: Path) -> None:
    seqfile = str(tmp_path / "seq")
    first = spooler.make_packet(b"data", params=[b"p"], env=[(b"K", b"V")], seqfile=seqfile)
    second = spooler.make_packet(kind=Special.NOP, seqfile=seqfile)
    head = parse_header(first)
    assert head.meta.seq == 1 and head.meta.cmd == Command((b"p",), ((b"K", b"V"),))
    assert first[head.length :] == b"data"
    assert parse_header(second).meta == Meta(2, *parse_header(second).meta[1:3], Special.NOP)
    assert (tmp_path / "seq").read_text() == "3\n"
    assert parse_header(spooler.make_packet(seq=9)).meta.seq == 9


@pytest.mark.parametrize("kind", ["bytes", "path", "pathlike", "stream", "raw-file", "none"])
@pytest.mark.parametrize("target", ["file", "fd"])
def test_write_packet_payload_kinds(tmp_path: Path, kind: str, target: str) -> None:
    payload = os.urandom(200_000)
    source = tmp_path / "payload"
    source.write_bytes(payload)
    raw = open(source, "rb", buffering=0)  # noqa: SIM115 - closed below
    value = {
        "bytes": payload,
        "path": str(source),
        "pathlike": source,
        "stream": io.BytesIO(payload),
        "raw-file": raw,
        "none": None,
    }[kind]
    out = tmp_path / "packet"
    head = spooler.header(seq=9, ctime=CTIME)
    try:
        if target == "file":
            with open(out, "wb") as fh:
                spooler.write_packet(fh, head, value)
        else:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                spooler.write_packet(fd, head, value)
            finally:
                os.close(fd)
    finally:
        raw.close()
    assert out.read_bytes() == head + (b"" if kind == "none" else payload)


# -- queues ----------------------------------------------------------------------------


def test_open_queue_listing_find_status(tmp_path: Path) -> None:
    q = spooler.open_queue(str(tmp_path / "q"))
    q.init()
    assert sorted(p.name for p in (tmp_path / "q").iterdir()) == ["jobs", "nextseq", "nextseq.lock"]
    with pytest.raises(OSError):
        q.init()  # it exists
    names = {n: q.write(spooler.make_packet(b"%d" % n, seq=n)) for n in (3, 1, 4)}
    put_job(tmp_path / "q", b"junk", name="junk")
    assert q.find(3).name == names[3]
    with pytest.raises(JobNotFound, match="not found"):
        q.find(7)
    q.write(io.BytesIO(spooler.make_packet(seq=4)))  # a stream, and a duplicate seq
    assert all(name.startswith("fspl-") and name.endswith(".fspl") for name in names.values())
    assert [job.meta.seq for job in q.listing()] == [1, 3, 4, 4]
    with pytest.raises(SpoolError, match="with seq 4, which was already seen"):
        q.find(3)  # a duplicate anywhere refuses every lookup, as the reference
    status = q.status()
    assert (status.next_seq, status.seqs, status.duplicates) == (1, [1, 3, 4, 4], [4])
    assert status.unparsable == ["fspl-junk.fspl"]
    assert not status.stalled and not status.locked and not status.append_only
    (tmp_path / "q" / "nextseq").write_text("2\n")
    assert q.status().stalled


def test_append_only_queue_status(tmp_path: Path) -> None:
    q = spooler.open_queue(str(tmp_path / "ao"))
    q.init(append_only=True)
    q.write(spooler.make_packet(seq=1))
    status = q.status()
    assert status.append_only and status.next_seq is None and status.seqs == [1]
    with pytest.raises(SpoolError, match="append-only"):
        spooler.process(q, command=["true"])


# -- processing ------------------------------------------------------------------------


def test_process_with_a_command(tmp_path: Path) -> None:
    q = spooler.open_queue(str(tmp_path / "q"))
    q.init()
    for n in (2, 1):
        q.write(spooler.make_packet(b"payload %d\n" % n, seq=n, params=[b"job%d" % n], env=[]))
    out = tmp_path / "out"
    script = f'printf "%s %s " "$FSPL_SEQ" "$*" >> {out}; cat >> {out}'
    ran = spooler.process(q, command=["sh", "-c", script, "sh", "fixed"], allow_job_params=True)
    assert ran == 2
    assert out.read_text() == "1 fixed job1 payload 1\n2 fixed job2 payload 2\n"
    assert jobs_in(tmp_path / "q") == [] and nextseq(tmp_path / "q") == "3\n"


def test_callback_gets_meta_and_the_payload_stream(tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    big = os.urandom(3 * 1024 * 1024)
    put_job(queue, craft(1, big))
    put_job(queue, craft(2, b"small", params=[b"x"]))
    put_job(queue, craft(3, b"never read", kind="NOP"))
    seen: list[tuple[int, tuple[bytes, ...], int, bytes]] = []

    def callback(meta: Meta, payload: BinaryIO) -> None:
        chunks = []
        while chunk := payload.read(65536):  # a stream, read piecewise
            chunks.append(chunk)
        data = b"".join(chunks)
        seen.append((meta.seq, meta.cmd.params, len(data), data[:5]))

    assert spooler.process(str(queue), callback=callback) == 3  # NOP counts, runs nothing
    assert seen == [(1, (), len(big), big[:5]), (2, (b"x",), 5, b"small")]
    assert jobs_in(queue) == [] and nextseq(queue) == "4\n"


@pytest.mark.parametrize("failure", ["false", "raise"])
def test_callback_failure(tmp_path: Path, failure: str) -> None:
    queue = make_queue(tmp_path / "q")
    for n in (1, 2):
        put_job(queue, craft(n, b"%d" % n))
    calls: list[int] = []

    def callback(meta: Meta, payload: BinaryIO) -> bool:
        calls.append(meta.seq)
        if failure == "raise":
            raise ValueError("boom")
        return False

    with pytest.raises(CommandFailed, match="job 1"):
        spooler.process(str(queue), callback=callback)
    assert calls == [1] and nextseq(queue) == "1\n" and len(jobs_in(queue)) == 2
    assert spooler.process(str(queue), callback=callback, on_error=OnError.LEAVE) == 2
    assert nextseq(queue) == "3\n" and len(jobs_in(queue)) == 2
    (queue / "nextseq").write_text("1\n")
    assert spooler.process(str(queue), callback=callback, on_error="Delete", maxjobs=1) == 1
    assert nextseq(queue) == "2\n" and len(jobs_in(queue)) == 1


def test_callback_true_none_and_timestamp_order(tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    put_job(queue, craft(1, ctime=(30, 0)))
    put_job(queue, craft(2, ctime=(10, 0)))
    put_job(queue, craft(3, ctime=(20, 0)))
    order: list[int] = []
    results = iter([True, None, 1])

    def callback(meta: Meta, payload: BinaryIO) -> object:
        order.append(meta.seq)
        return next(results)

    assert spooler.process(str(queue), callback=callback, order_by="Timestamp") == 3
    assert order == [2, 3, 1] and jobs_in(queue) == [] and nextseq(queue) == "1\n"


def test_process_needs_exactly_one_runner(tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    with pytest.raises(SpoolError):
        spooler.process(str(queue), command=["true"], callback=lambda m, d: True)
    with pytest.raises(SpoolError):
        spooler.process(str(queue))
    with pytest.raises(SpoolError):
        spooler.process(str(queue), command=[])


def test_move(tmp_path: Path) -> None:
    src, dst = (spooler.open_queue(str(tmp_path / n)) for n in ("a", "b"))
    src.init()
    dst.init(append_only=True)
    for n in (1, 2, 3):
        src.write(spooler.make_packet(seq=n))
    assert spooler.move(src, dst, maxjobs=2) == 2
    assert [j.meta.seq for j in dst.listing()] == [1, 2]
    assert [j.meta.seq for j in src.listing()] == [3]


def test_the_api_closes_the_queues_it_opens_and_only_those(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed: list[str] = []
    monkeypatch.setattr(spooler.Queue, "close", lambda self: closed.append(self.location))
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    mine = spooler.open_queue(a)
    mine.init()
    spooler.open_queue(b).init(append_only=True)
    mine.write(spooler.make_packet(seq=1))
    assert spooler.process(a, command=["true"]) == 1
    assert closed == [a]
    mine.write(spooler.make_packet(seq=2))
    assert spooler.move(mine, b) == 1
    assert closed == [a, b]  # the caller's queue stays open
    spooler.process(mine, command=["true"])
    assert closed == [a, b]
    with spooler.open_queue(a) as q:
        assert q.location == a
    assert closed == [a, b, a]


def test_spooler_move_stays_the_function_once_moves_ran(tmp_path: Path) -> None:
    # A submodule named like a lazy export would replace it on first import.
    import spooler.transfer

    assert callable(spooler.move) and callable(spooler.process) and callable(spooler.watch)


# -- with the reference ------------------------------------------------------------------


def test_process_a_queue_the_reference_wrote(ref: Runner, tmp_path: Path) -> None:
    queue = tmp_path / "q"
    assert ref("queue-init", "-q", queue).returncode == 0
    seqfile = tmp_path / "seq"
    packets = [
        ref("prepare", "-s", seqfile, "-i", "-", "--", f"arg{n}", input=b"line %d\n" % n).stdout
        for n in (1, 2, 3)
    ]
    packets.append(ref("prepare-nop", "-s", seqfile).stdout)
    for packet in (packets[2], packets[0], packets[3], packets[1]):
        assert ref("queue-write", "-q", queue, input=packet).returncode == 0
    q = spooler.open_queue(str(queue))
    assert [job.meta.seq for job in q.listing()] == [1, 2, 3, 4]
    seen = []
    assert (
        spooler.process(q, maxjobs=2, callback=lambda m, d: seen.append((m.cmd.params, d.read())))
        == 2
    )
    assert seen == [((b"arg1",), b"line 1\n"), ((b"arg2",), b"line 2\n")]
    out = tmp_path / "out"
    assert spooler.process(str(queue), command=["sh", "-c", f"cat >> {out}"]) == 2
    assert out.read_bytes() == b"line 3\n"
    assert ref("queue-get-next", "-q", queue).out == "5\n"
    assert ref("queue-ls", "-q", queue).out.count("\n") == 1


def test_the_reference_processes_a_queue_the_api_wrote(ref: Runner, tmp_path: Path) -> None:
    q = spooler.open_queue(str(tmp_path / "q"))
    q.init()
    seqfile = str(tmp_path / "seq")
    for n in (1, 2):
        q.write(
            spooler.make_packet(
                b"<%d>" % n, params=[b"p%d" % n], env=[(b"E", b"e\n")], seqfile=seqfile
            )
        )
    q.write(spooler.make_packet(kind=Special.FAIL, seqfile=seqfile))
    result = ref(
        "queue-process",
        "-q",
        tmp_path / "q",
        "--allow-job-params",
        "sh",
        "--",
        "-c",
        'printf "%s%s" "$1" "$FSPL_SET_E"; cat',
        "sh",
    )
    assert result.returncode == 1  # the Fail packet, under Retry
    assert result.stdout == b"p1e\n<1>p2e\n<2>"
    assert q.status().next_seq == 3 and [j.meta.seq for j in q.listing()] == [3]
