"""The rclone transport with Debian's real rclone: local, SFTP and S3 remotes,
and a real rclone FUSE mount."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import BinaryIO

import pytest
from conftest import Runner
from helpers import one_error_line
from spooler_plugins.rclone.mounted import RcloneMountTransport

from spooler.api import open_queue, process
from spooler.errors import LockError
from spooler.testing import (
    DeliveryTests,
    ReadingTests,
    SequenceTests,
    TransportSuite,
    build_packet,
)
from spooler.testing.base import read_all

FAST_LOCK = {"lock_settle": "0.1"}


class TestRcloneLocal(TransportSuite):
    @pytest.fixture
    def queue_location(self, rclone_local: dict[str, str], tmp_path: Path) -> str:
        return f"rclone:localr:{tmp_path}/q"

    @pytest.fixture
    def transport_options(self) -> dict[str, str]:
        return FAST_LOCK

    @pytest.fixture
    def cli_env(self, rclone_local: dict[str, str]) -> dict[str, str]:
        return rclone_local


class RcloneBackendTests(DeliveryTests, ReadingTests, SequenceTests):
    """What depends on the remote's backend, for the remotes other than local.

    The rclone transport is one code path whatever the backend: each
    operation is an rclone command (``lsjson``, ``rcat``, ``cat``,
    ``moveto``, ``deletefile``) and only what the backend does with it
    differs.  So the full kit runs once, on the local remote
    (:class:`TestRcloneLocal`), and SFTP and S3 run only the tests whose
    outcome rests on the backend:

    - listing an empty queue (S3 has no directories): ``init_then_empty``;
    - rename semantics, no-clobber and visibility (S3's ``moveto`` is a copy
      and a delete): ``deliver_never_replaces_an_existing_name``,
      ``nothing_visible_until_complete``, ``failed_delivery_leaves_no_job``;
    - ranged and streamed reads, and how a missing object is reported
      (each backend words it its own way): ``read_prefixes``,
      ``payload_streams_after_header``, ``delete``;
    - the lock files on the backend: create-only contention, modification
      times (the storage clock), overwriting ``nextseq`` and fencing:
      ``lock_contention_and_release``, ``lock_age_comes_from_the_storage_clock``,
      ``sequence_starts_at_one_and_persists``, ``sequence_writes_are_fenced``.

    Not repeated (a test set to None is not collected): the engine's rules,
    the same on any store (names, locations, header parsing, the lease's
    staleness rules, diagnostics); and what is the same rclone command on
    every backend once the above hold (a second ``init``, the append-only
    marker, a plain round trip, ``.out`` files, the lock through
    ``lock_sequence`` and its document in ``lock_store``)."""

    # The engine's own rules.
    test_capabilities_are_known = None
    test_names_are_unique = None
    test_job_location = None
    test_large_header_is_scanned = None
    test_unparsable_files_are_ignored = None
    test_stale_lock_is_broken_by_observation_whatever_the_wall_clock = None
    test_live_lock_is_never_broken = None
    test_dead_holder_on_this_host_is_broken_at_once = None
    test_diagnostics_do_not_touch_a_held_lock = None
    # The same rclone commands as the tests kept above.
    test_init_twice_fails = None
    test_append_only_queue = None
    test_deliver_round_trip = None
    test_output_file = None
    test_lock_is_exclusive = None
    test_lease_claim_locks_through_lock_store = None


class TestRcloneSFTP(RcloneBackendTests):
    @pytest.fixture
    def queue_location(self, rclone_sftp: dict[str, str], tmp_path: Path) -> str:
        return f"rclone:sshr:{tmp_path}/q"

    @pytest.fixture
    def transport_options(self) -> dict[str, str]:
        return FAST_LOCK


class TestRcloneS3(RcloneBackendTests):
    @pytest.fixture
    def queue_location(self, rclone_s3: dict[str, str], bucket: str) -> str:
        return f"rclone:s3r:{bucket}/q"

    @pytest.fixture
    def transport_options(self) -> dict[str, str]:
        return FAST_LOCK


def test_commands_and_reference_interop(
    ours: Runner, ref: Runner, rclone_local: dict[str, str], tmp_path: Path
) -> None:
    local = tmp_path / "q"
    url = f"rclone:localr:{local}"
    assert ours("queue-init", "-q", url).returncode == 0
    seq = tmp_path / "seq"
    for i in (2, 1):
        ours("prepare-set-next", "-s", seq, str(i))
        packet = ours("prepare", "-s", seq, "-i", "-", input=b"job %d\n" % i).stdout
        assert ours("queue-write", "-q", url, input=packet).returncode == 0
    assert ours("queue-ls", "-q", url).out == ref("queue-ls", "-q", local).out
    assert ours("queue-payload", "-q", url, "-j", "1").stdout == b"job 1\n"
    assert "FSPL_SEQ=2" in ours("queue-info", "-q", url, "-j", "2").out
    # The reference, where the files are, processes what we delivered through rclone.
    assert ref("queue-process", "-q", local, "-n", "1", "cat").stdout == b"job 1\n"
    done = ours("queue-process", "-q", url, "cat")
    assert done.returncode == 0 and done.stdout == b"job 2\n"
    assert (local / "nextseq").read_text() == "3\n"


def test_clear_errors(ours: Runner, rclone_local: dict[str, str], tmp_path: Path) -> None:
    unknown = ours("queue-ls", "-q", "rclone:nosuchremote:/q")
    assert unknown.returncode == 1
    assert 'no remote named "nosuchremote"' in unknown.err
    assert "RCLONE_CONFIG_NOSUCHREMOTE_TYPE" in unknown.err
    bad_ttl = ours("queue-ls", "-q", f"rclone:localr:{tmp_path}", "-o", "lock_ttl=soon")
    assert bad_ttl.returncode == 2 and "-o lock_ttl=soon: expected a number" in bad_ttl.err
    missing = ours("queue-ls", "-q", f"rclone:localr:{tmp_path}/none")
    no_binary = ours("queue-ls", "-q", f"rclone:localr:{tmp_path}", env={"PATH": "/nonexistent"})
    assert no_binary.returncode == 1 and "rclone is not installed" in no_binary.err
    for result in (unknown, bad_ttl, missing, no_binary):
        one_error_line(result, status=None)


@pytest.mark.parametrize(
    ("args", "useful"),
    [
        (["-vv", "rcat", "localr:/proc/nope/x"], "Failed to rcat: mkdir /proc/nope"),
        (["-vv", "lsjson", "localr:/nonexistent/x"], "Failed to lsjson"),
        (["lsjson", "--no-such-flag", "localr:/"], "Fatal error: unknown flag: --no-such-flag"),
    ],
)
def test_useful_line_of_real_rclone_output(
    rclone_local: dict[str, str], args: list[str], useful: str
) -> None:
    """rclone's own stderr, DEBUG lines and all: its summary, no timestamp."""
    import subprocess

    from spooler_plugins.rclone.command import last_error

    proc = subprocess.run(["rclone", *args], input=b"x", capture_output=True, check=False)
    assert proc.returncode != 0
    line = last_error(proc.stderr)
    assert line.startswith(useful), (line, proc.stderr)
    assert not line[:1].isdigit()


def test_lock_contention(ours: Runner, rclone_local: dict[str, str], tmp_path: Path) -> None:
    url = f"rclone:localr:{tmp_path}/q"
    ours("queue-init", "-q", url)
    with open_queue(url, options=FAST_LOCK).transport.lock_sequence():
        blocked = ours("queue-process", "-q", url, "true")
        assert blocked.returncode == 1 and "being processed" in blocked.err
        with pytest.raises(LockError), open_queue(url).transport.lock_sequence():
            pass
    assert ours("queue-get-next", "-q", url).out == "1\n"


def rclone_downloads(name: str) -> list[int]:
    """PIDs of this process's ``rclone cat`` children reading job ``name``
    (by argv: a worker may have other rclone children, such as a mount)."""
    pids: list[int] = []
    for task in os.listdir("/proc/self/task"):
        with open(f"/proc/self/task/{task}/children") as children:
            pids += map(int, children.read().split())
    wanted = []
    for pid in pids:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if (
            Path(argv[0].decode()).name == "rclone"
            and b"cat" in argv
            and any(arg.endswith(name.encode()) for arg in argv)
        ):
            wanted.append(pid)
    return wanted


def test_truncated_download_fails_the_job(rclone_local: dict[str, str], tmp_path: Path) -> None:
    """``rclone cat`` dying part-way through a job: the command saw a short
    payload, so the job must fail, stay queued and keep its number."""
    queue = open_queue(f"rclone:localr:{tmp_path}/q", options=FAST_LOCK)
    queue.init()
    payload = os.urandom(4 << 20)  # far more than a pipe holds: rclone is mid-copy
    name = queue.write(build_packet(1, payload))
    received: list[int] = []

    def cut_short(meta: object, stream: BinaryIO) -> bool:
        (download,) = rclone_downloads(name)
        os.kill(download, signal.SIGKILL)
        received.append(len(read_all(stream)))
        return True  # the command itself did not notice

    with pytest.raises(OSError, match=f"rclone cat rclone:localr:\\S*/jobs/{name} failed"):
        process(queue, callback=cut_short)
    assert 0 <= received[0] < len(payload), "the download was not cut"
    assert queue.job_names() == [name]
    assert queue.transport.peek_sequence().next_seq == 1
    assert process(queue, callback=lambda meta, stream: len(read_all(stream)) == len(payload)) == 1


def test_delivery_into_an_rclone_mount(
    ours: Runner, ref: Runner, rclone_mount: tuple[Path, Path], tmp_path: Path
) -> None:
    remote, point = rclone_mount
    # Filespooler's own advice: an append-only sender queue whose jobs/ is the mount.
    sender = tmp_path / "outbox"
    sender.mkdir()
    os.symlink(point, sender / "jobs")
    assert isinstance(open_queue(str(sender)).transport, RcloneMountTransport)
    for i in (1, 2):
        packet = ours("prepare", "-s", tmp_path / "seq", "-i", "-", input=b"m%d\n" % i).stdout
        assert ours("queue-write", "-q", sender, input=packet).returncode == 0
    assert (remote / ".fspl-keep").exists()
    assert len([n for n in os.listdir(remote) if n.endswith(".fspl")]) == 2
    assert not [n for n in os.listdir(remote) if n.startswith("tmp-")]
    # The receiving side: a queue whose jobs/ is the remote directory.
    receiver = tmp_path / "inbox"
    ref("queue-init", "-q", receiver)
    os.rmdir(receiver / "jobs")
    os.symlink(remote, receiver / "jobs")
    assert ours("queue-process", "-q", receiver, "cat").stdout == b"m1\nm2\n"
    # And processing through the mount itself works too.
    packet = ours("prepare", "-s", tmp_path / "seq", "-i", "-", input=b"m3\n").stdout
    ours("queue-write", "-q", sender, input=packet)
    through_mount = tmp_path / "via-mount"
    ours("queue-init", "-q", through_mount)
    os.rmdir(through_mount / "jobs")
    os.symlink(point, through_mount / "jobs")
    ours("queue-set-next", "-q", through_mount, "3")
    assert ours("queue-process", "-q", through_mount, "cat").stdout == b"m3\n"
    # The remote itself is the truth; the mount's directory cache may lag.
    assert sorted(os.listdir(remote)) == [".fspl-keep"]


def test_missing_job_names_where(rclone_local: dict[str, str], tmp_path: Path) -> None:
    """The contract's FileNotFoundError, naming the job's location."""
    url = f"rclone:localr:{tmp_path}/q"
    transport = open_queue(url).transport
    transport.init()
    with pytest.raises(FileNotFoundError) as caught:
        transport.open_job("fspl-nope.fspl").read(1)
    assert caught.value.filename == f"rclone:localr:{tmp_path}/q/jobs/fspl-nope.fspl"
