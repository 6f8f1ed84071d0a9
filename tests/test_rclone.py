"""The rclone transport with Debian's real rclone: local, SFTP and S3 remotes,
and a real rclone FUSE mount."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import Runner
from spooler_plugins.rclone.mounted import RcloneMountTransport

from spooler.api import open_queue
from spooler.errors import LockError
from spooler.testing import TransportSuite

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


class TestRcloneSFTP(TransportSuite):
    @pytest.fixture
    def queue_location(self, rclone_sftp: dict[str, str], tmp_path: Path) -> str:
        return f"rclone:sshr:{tmp_path}/q"

    @pytest.fixture
    def transport_options(self) -> dict[str, str]:
        return FAST_LOCK

    @pytest.fixture
    def cli_env(self, rclone_sftp: dict[str, str]) -> dict[str, str]:
        return rclone_sftp


class TestRcloneS3(TransportSuite):
    @pytest.fixture
    def queue_location(self, rclone_s3: dict[str, str], bucket: str) -> str:
        return f"rclone:s3r:{bucket}/q"

    @pytest.fixture
    def transport_options(self) -> dict[str, str]:
        return FAST_LOCK

    @pytest.fixture
    def cli_env(self, rclone_s3: dict[str, str]) -> dict[str, str]:
        return rclone_s3


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
    assert bad_ttl.returncode == 1 and "-o lock_ttl=soon: expected a number" in bad_ttl.err
    missing = ours("queue-ls", "-q", f"rclone:localr:{tmp_path}/none")
    assert missing.returncode == 1 and missing.err.startswith("Error: ")
    no_binary = ours("queue-ls", "-q", f"rclone:localr:{tmp_path}", env={"PATH": "/nonexistent"})
    assert no_binary.returncode == 1 and "rclone is not installed" in no_binary.err
    for result in (unknown, bad_ttl, missing, no_binary):
        assert result.err.count("\n") == 1 and "Traceback" not in result.err


def test_lock_contention(ours: Runner, rclone_local: dict[str, str], tmp_path: Path) -> None:
    url = f"rclone:localr:{tmp_path}/q"
    ours("queue-init", "-q", url)
    with open_queue(url, options=FAST_LOCK).transport.lock_sequence():
        blocked = ours("queue-process", "-q", url, "true")
        assert blocked.returncode == 1 and "being processed" in blocked.err
        with pytest.raises(LockError), open_queue(url).transport.lock_sequence():
            pass
    assert ours("queue-get-next", "-q", url).out == "1\n"


def test_truncated_download_fails_the_job(rclone_local: dict[str, str], tmp_path: Path) -> None:
    url = f"rclone:localr:{tmp_path}/q"
    queue = open_queue(url, options=FAST_LOCK)
    queue.init()
    name = queue.write(b"not even a header")
    with pytest.raises(Exception), queue.open(name):  # noqa: B017 - never a success
        pass
    with pytest.raises(FileNotFoundError):
        queue.transport.open_job("fspl-missing.fspl")


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
