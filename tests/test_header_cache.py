"""The local transport's header cache (plugins/local/headercache.py): a warm
scan reads no job file, a replaced file is read again, an edited one stops
processing and drops the cache, and a broken or missing cache is no error."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import msgpack
import pytest
from conftest import CTIME, Runner, craft, jobs_in, make_queue, put_job
from helpers import one_error_line
from spooler_plugins.local import headercache
from spooler_plugins.local.headercache import WRITE_THRESHOLD, LocalHeaderCache
from spooler_plugins.local.transport import LocalTransport

from spooler.naming import parse_name
from spooler.queue import PREFIX_READ, CachedMeta, Queue

#: Enough jobs for a scan to write the cache.
COUNT = WRITE_THRESHOLD + 3


class CountingTransport(LocalTransport):
    """The local transport, recording which jobs a scan read (every header
    read goes through ``read_prefixes``, with the cache or without)."""

    def __init__(self, location: str) -> None:
        super().__init__(location)
        self.read: list[str] = []

    def read_prefixes(
        self, names: Iterable[str], size: int, inodes: dict[str, int] | None = None
    ) -> Iterator[tuple[str, bytes | OSError]]:
        todo = list(names)
        self.read.extend(todo)
        return super().read_prefixes(todo, size, inodes)


def uuid_queue(path: Path, count: int = COUNT) -> tuple[Path, list[str]]:
    """A queue of ``count`` jobs under reference-style UUID names, seq 1…count
    (each a second later than the one before)."""
    make_queue(path)
    names = [
        put_job(path, craft(seq, ctime=(CTIME[0] + seq, CTIME[1])), name=str(uuid.uuid4()))
        for seq in range(1, count + 1)
    ]
    return path, names


def cache_file(queue: Path) -> Path:
    cache = LocalTransport(str(queue)).header_cache()
    assert isinstance(cache, LocalHeaderCache)
    return Path(cache.path)


def rewrite_in_place(path: Path, data: bytes) -> None:
    """New contents, same inode (as ``dd conv=notrunc`` or a shell ``>``)."""
    inode = path.stat().st_ino
    with open(path, "r+b") as handle:
        handle.write(data)
        handle.truncate()
    assert path.stat().st_ino == inode


def listed(result_out: str) -> list[tuple[str, str, str]]:
    """queue-ls rows as (seq, time, name)."""
    return [tuple(line.split()[:3]) for line in result_out.splitlines()[1:]]  # type: ignore[misc]


def test_a_warm_scan_reads_no_job_file(tmp_path: Path) -> None:
    queue, names = uuid_queue(tmp_path / "q")
    transport = CountingTransport(str(queue))
    cold = Queue(transport).rows()
    assert sorted(transport.read) == sorted(names)
    assert cache_file(queue).is_file()
    transport.read.clear()
    warm = Queue(transport).rows()
    assert transport.read == []
    assert warm == cold == [(s, CTIME[0] + s, CTIME[1], n) for s, n in enumerate(names, 1)]
    jobs = Queue(transport).scan()
    assert transport.read == []
    assert {type(job.meta) for job in jobs} == {CachedMeta}


def test_a_header_longer_than_the_prefix_read_is_cached(tmp_path: Path) -> None:
    queue, _ = uuid_queue(tmp_path / "q")
    big = put_job(queue, craft(COUNT + 1, params=[b"x" * PREFIX_READ]), name=str(uuid.uuid4()))
    transport = CountingTransport(str(queue))
    cold = Queue(transport).rows()
    assert cold[-1] == (COUNT + 1, *CTIME, big) and len(cold) == COUNT + 1
    transport.read.clear()
    assert Queue(transport).rows() == cold and transport.read == []


def test_new_jobs_are_added_and_gone_ones_dropped(tmp_path: Path) -> None:
    queue, names = uuid_queue(tmp_path / "q")
    transport = CountingTransport(str(queue))
    Queue(transport).rows()
    for name in names[:5]:
        (queue / "jobs" / name).unlink()
    added = [put_job(queue, craft(seq), name=str(uuid.uuid4())) for seq in range(100, 140)]
    transport.read.clear()
    rows = Queue(transport).rows()
    assert sorted(transport.read) == sorted(added)  # the cached ones were not read
    assert [row[0] for row in rows] == [*range(6, COUNT + 1), *range(100, 140)]
    transport.read.clear()
    assert Queue(transport).rows() == rows and transport.read == []
    doc = msgpack.unpackb(cache_file(queue).read_bytes())
    assert sorted(doc[2]) == sorted([*names[5:], *added])


def test_rclone_mounts_have_no_cache(tmp_path: Path) -> None:
    """Objects overwritten on the remote keep their inode on the mount."""
    from spooler_plugins.rclone.mounted import RcloneMountTransport

    queue, names = uuid_queue(tmp_path / "q")
    Queue(RcloneMountTransport(str(queue))).rows()
    rewrite_in_place(queue / "jobs" / names[0], craft(70))
    assert Queue(RcloneMountTransport(str(queue))).rows()[-1] == (70, *CTIME, names[0])
    assert not cache_file(queue).exists()


def test_fewer_reads_than_the_threshold_write_no_cache(tmp_path: Path) -> None:
    queue, _ = uuid_queue(tmp_path / "q", WRITE_THRESHOLD - 1)
    Queue(LocalTransport(str(queue))).rows()
    assert not cache_file(queue).exists()


def test_a_file_replaced_by_rename_is_read_again(tmp_path: Path, ours: Runner) -> None:
    queue, names = uuid_queue(tmp_path / "q")
    assert ours("queue-ls", "-q", queue).returncode == 0  # writes the cache
    target = queue / "jobs" / names[0]
    temp = queue / "jobs" / "incoming.tmp"
    temp.write_bytes(craft(100))
    os.rename(temp, target)  # as Syncthing and editors replace a file: a new inode
    transport = CountingTransport(str(queue))
    rows = Queue(transport).rows()
    assert transport.read == [names[0]]
    assert rows[-1] == (100, *CTIME, names[0])


@pytest.mark.parametrize("order", ["sequence", "timestamp"])
def test_a_job_edited_in_place_stops_processing_and_drops_the_cache(
    tmp_path: Path, ours: Runner, order: str
) -> None:
    """The cache says what the job said when it was cached; the header
    (rewritten with another ctime, same inode) is the truth."""
    queue, names = uuid_queue(tmp_path / "q")
    edited = queue / "jobs" / names[0]
    original = edited.read_bytes()
    before = ours("queue-ls", "-q", queue).out

    def cache_then_edit() -> None:
        rewrite_in_place(edited, original)
        assert ours("queue-ls", "-q", queue).out == before  # read now if it was dropped
        rewrite_in_place(edited, craft(1, ctime=(CTIME[0] + 1000, CTIME[1])))
        # queue-ls trusts the cache (it reads nothing): it still shows the old time.
        assert ours("queue-ls", "-q", queue).out == before

    out = tmp_path / "out"
    script = f'echo "$FSPL_SEQ" >> {out}'
    process = ("queue-process", "-q", queue, "--order-by", order, "sh", "--", "-c", script)
    for command in (
        ("queue-info", "-q", queue, "-j", "1"),
        ("queue-payload", "-q", queue, "-j", "1"),
        process,
    ):
        cache_then_edit()
        line = one_error_line(ours(*command))
        assert f'"{names[0]}" does not match the header cache' in line
        assert not cache_file(queue).exists()
    assert f"ctime {CTIME[0] + 1}.{CTIME[1]:09d}; the header says" in line
    assert not out.exists() and len(jobs_in(queue)) == COUNT  # nothing ran
    assert (queue / "nextseq").read_text() == "1\n"
    # The next run reads the headers again: the new time, everything runs.
    after = listed(ours("queue-ls", "-q", queue).out)
    assert after[0][1] != listed(before)[0][1] and after[1:] == listed(before)[1:]
    result = ours(*process)
    assert result.returncode == 0, result.err
    expected = range(1, COUNT + 1) if order == "sequence" else [*range(2, COUNT + 1), 1]
    assert out.read_text().split() == [str(seq) for seq in expected]


@pytest.mark.parametrize(
    "contents",
    [
        b"",
        b"\xc1",
        b"not msgpack at all",
        msgpack.packb(["fspl-header-cache", 2, [], [], [], [], []]),  # another version
        msgpack.packb({"fspl-header-cache": 1}),
        "truncated",
        "seq-as-text",
        "seq-out-of-range",
        "columns-of-other-lengths",
    ],
)
def test_a_broken_cache_file_is_ignored(tmp_path: Path, ours: Runner, contents: object) -> None:
    queue, names = uuid_queue(tmp_path / "q")
    expected = ours("queue-ls", "-q", queue).out
    path = cache_file(queue)
    good = msgpack.unpackb(path.read_bytes())
    # Each variant lies about seq 1 (99) where it parses at all.
    good[4][good[2].index(names[0])] = 99
    variants = {
        "truncated": msgpack.packb(good)[:-7],
        "seq-as-text": msgpack.packb([*good[:4], [str(s) for s in good[4]], *good[5:]]),
        "seq-out-of-range": msgpack.packb([*good[:4], [-1, *good[4][1:]], *good[5:]]),
        "columns-of-other-lengths": msgpack.packb([*good[:6], good[6][1:]]),
    }
    path.write_bytes(variants[contents] if isinstance(contents, str) else contents)  # type: ignore[index,arg-type]
    result = ours("queue-ls", "-q", queue)
    assert (result.returncode, result.out, result.err) == (0, expected, "")
    rewritten = msgpack.unpackb(path.read_bytes())  # from the headers
    assert rewritten[4][rewritten[2].index(names[0])] == 1


def test_a_cache_file_over_the_size_bound_is_ignored_and_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue, _ = uuid_queue(tmp_path / "q")
    transport = CountingTransport(str(queue))
    Queue(transport).rows()
    size = cache_file(queue).stat().st_size
    monkeypatch.setattr(headercache, "MAX_BYTES", size - 1)
    transport.read.clear()
    Queue(transport).rows()
    assert len(transport.read) == COUNT  # ignored: everything read again
    cache_file(queue).unlink()
    Queue(transport).rows()
    assert not cache_file(queue).exists()  # too big to write


def test_the_cache_can_be_turned_off(tmp_path: Path, ours: Runner) -> None:
    queue, names = uuid_queue(tmp_path / "q")
    off = {"FSPL_NO_HEADER_CACHE": "1"}
    assert ours("queue-ls", "-q", queue, env=off).returncode == 0
    assert not cache_file(queue).exists()
    assert ours("queue-ls", "-q", queue).returncode == 0
    rewrite_in_place(queue / "jobs" / names[0], craft(70))
    # Off, and behind a decoder, every header is read: seq 70 is seen.
    for extra, env in (((), off), (("-d", "cat"), {})):
        rows = listed(ours("queue-ls", "-q", queue, *extra, env=env).out)
        assert (rows[-1][0], rows[-1][2]) == ("70", names[0])
    assert listed(ours("queue-ls", "-q", queue).out)[0][2] == names[0]  # on: the cache's word


def test_an_unwritable_cache_directory_is_no_cache(
    tmp_path: Path, ours: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root can write anywhere chmod forbids, so the cache home is a file."""
    home = tmp_path / "not-a-directory"
    home.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    queue, _ = uuid_queue(tmp_path / "q")
    runs = [ours("queue-ls", "-q", queue) for _ in range(2)]
    assert [(r.returncode, r.err) for r in runs] == [(0, ""), (0, "")]
    assert runs[0].out == runs[1].out and len(listed(runs[0].out)) == COUNT
    result = ours("queue-process", "-q", queue, "true")
    assert result.returncode == 0, result.err
    assert jobs_in(queue) == []


def test_a_mixed_queue_matches_the_reference(tmp_path: Path, ours: Runner, ref: Runner) -> None:
    """Jobs written by ours (named), by the reference (UUID names; cached
    after the first listing) and one it could not parse: listed as the
    reference lists them, processed in seq order, cold and warm."""
    queue = tmp_path / "q"
    assert ref("queue-init", "-q", queue).returncode == 0
    seqfile = tmp_path / "seq"
    for seq in range(1, COUNT + 6):
        packet = ref("prepare", "-s", seqfile, "--", f"p{seq}").stdout
        writer = ours if seq % 5 == 0 else ref
        assert writer("queue-write", "-q", queue, input=packet).returncode == 0
    put_job(queue, b"not a packet", name="broken")
    kinds = [parse_name(n) is not None for n in jobs_in(queue)]
    assert kinds.count(True) == (COUNT + 5) // 5 and kinds.count(False) > WRITE_THRESHOLD
    expected = ref("queue-ls", "-q", queue).out
    assert not cache_file(queue).exists()
    assert ours("queue-ls", "-q", queue).out == expected  # cold: reads, writes the cache
    assert cache_file(queue).exists()
    assert ours("queue-ls", "-q", queue).out == expected  # warm
    assert f"jobs: {COUNT + 5} (seq 1–{COUNT + 5})" in ours("queue-status", "-q", queue).out
    info = ("queue-info", "-q", queue, "-j", "7")
    assert ours(*info).out == ref(*info).out
    out = tmp_path / "out"
    script = f'echo "$FSPL_PARAM_1" >> {out}'
    result = ours("queue-process", "-q", queue, "--allow-job-params", "sh", "--", "-c", script)
    assert result.returncode == 0, result.err
    assert out.read_text().split() == [f"p{seq}" for seq in range(1, COUNT + 6)]
    assert jobs_in(queue) == ["fspl-broken.fspl"]


def test_duplicate_seqs_among_cached_jobs_are_the_references_error(
    tmp_path: Path, ours: Runner, ref: Runner
) -> None:
    queue, _ = uuid_queue(tmp_path / "q")
    put_job(queue, craft(3), name=str(uuid.uuid4()))
    expected = one_error_line(ref("queue-process", "-q", queue, "true"))
    assert ours("queue-ls", "-q", queue).returncode == 0  # the cache holds all of them
    assert "already seen in" in expected
    assert one_error_line(ours("queue-process", "-q", queue, "true")) == expected
    assert len(jobs_in(queue)) == COUNT + 1
