"""The Python API, including on queues the reference wrote."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import Runner

import spooler
from spooler import OnError, Special, SpoolError
from spooler.packet import parse_header


def test_make_packet_and_header(tmp_path: Path) -> None:
    seqfile = str(tmp_path / "seq")
    first = spooler.make_packet(b"data", params=[b"p"], env=[(b"K", b"V")], seqfile=seqfile)
    second = spooler.make_packet(kind=Special.NOP, seqfile=seqfile)
    head = parse_header(first)
    assert head.meta.seq == 1 and head.meta.cmd.params == (b"p",)
    assert first[head.length :] == b"data"
    assert parse_header(second).meta.seq == 2
    assert (tmp_path / "seq").read_text() == "3\n"


@pytest.mark.parametrize("kind", ["bytes", "path", "stream"])
def test_write_packet_payload_kinds(tmp_path: Path, kind: str) -> None:
    payload = b"x" * 100_000
    source = tmp_path / "payload"
    source.write_bytes(payload)
    value = {"bytes": payload, "path": str(source), "stream": io.BytesIO(payload)}[kind]
    out = tmp_path / "packet"
    head = spooler.header(seq=9)
    with open(out, "wb") as fh:
        spooler.write_packet(fh, head, value)
    data = out.read_bytes()
    assert data == head + payload


def test_queue_round_trip(tmp_path: Path) -> None:
    q = spooler.open_queue(str(tmp_path / "q"))
    q.init()
    names = [q.write(spooler.make_packet(b"%d" % n, seq=n)) for n in (2, 1)]
    assert [job.meta.seq for job in q.listing()] == [1, 2]
    assert q.find(2).name == names[0]
    with pytest.raises(SpoolError, match="not found"):
        q.find(7)
    seen: list[bytes] = []
    assert spooler.process(q, callback=lambda meta, data: seen.append(data.read())) == 2
    assert seen == [b"1", b"2"]
    assert q.status().next_seq == 3


def test_callback_failure_semantics(tmp_path: Path) -> None:
    q = spooler.open_queue(str(tmp_path / "q"))
    q.init()
    q.write(spooler.make_packet(b"", seq=1))
    with pytest.raises(SpoolError):
        spooler.process(q, callback=lambda meta, data: False)
    with pytest.raises(SpoolError):
        spooler.process(q, callback=lambda meta, data: 1 / 0)
    assert len(q.listing()) == 1
    assert spooler.process(q, callback=lambda m, d: False, on_error=OnError.LEAVE) == 1
    assert len(q.listing()) == 1 and q.status().next_seq == 2


def test_process_command_on_reference_queue(ref: Runner, tmp_path: Path) -> None:
    queue = tmp_path / "q"
    ref("queue-init", "-q", queue)
    for n in (1, 2):
        packet = ref("prepare", "-s", tmp_path / "seq", "-i", "-", input=b"line %d\n" % n)
        ref("queue-write", "-q", queue, input=packet.stdout)
    out = tmp_path / "out"
    ran = spooler.process(str(queue), command=["sh", "-c", f"cat >> {out}"])
    assert ran == 2
    assert out.read_bytes() == b"line 1\nline 2\n"
    assert ref("queue-get-next", "-q", queue).out == "3\n"


def test_move(tmp_path: Path) -> None:
    src, dst = (spooler.open_queue(str(tmp_path / n)) for n in ("a", "b"))
    src.init()
    dst.init(append_only=True)
    for n in (1, 2, 3):
        src.write(spooler.make_packet(seq=n))
    assert spooler.move(src, dst, maxjobs=2) == 2
    assert [j.meta.seq for j in dst.listing()] == [1, 2]
    assert [j.meta.seq for j in src.listing()] == [3]


def test_process_needs_exactly_one_runner(tmp_path: Path) -> None:
    with pytest.raises(SpoolError):
        spooler.process(str(tmp_path), command=["true"], callback=lambda m, d: True)
