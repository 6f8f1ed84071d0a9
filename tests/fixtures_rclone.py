"""rclone remotes defined by RCLONE_CONFIG_* variables: local, SFTP and S3."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import poll_until, require


def require_rclone() -> None:
    require(shutil.which("rclone") is not None, "rclone", "apt-get install rclone")


@pytest.fixture
def rclone_local(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A remote 'localr' of type local."""
    require_rclone()
    env = {"RCLONE_CONFIG_LOCALR_TYPE": "local"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def rclone_sftp(monkeypatch: pytest.MonkeyPatch, sshd) -> dict[str, str]:
    """A remote 'sshr' of type sftp, on the test sshd."""
    require_rclone()
    env = {
        "RCLONE_CONFIG_SSHR_TYPE": "sftp",
        "RCLONE_CONFIG_SSHR_HOST": sshd.host,
        "RCLONE_CONFIG_SSHR_PORT": str(sshd.port),
        "RCLONE_CONFIG_SSHR_USER": sshd.user,
        "RCLONE_CONFIG_SSHR_KEY_FILE": str(sshd.client_key),
        "RCLONE_CONFIG_SSHR_KNOWN_HOSTS_FILE": str(sshd.known_hosts),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def rclone_s3(monkeypatch: pytest.MonkeyPatch, s3_server, bucket: str) -> dict[str, str]:
    """A remote 's3r' of type s3 on the moto server (AWS_CA_BUNDLE unset)."""
    require_rclone()
    env = {
        "RCLONE_CONFIG_S3R_TYPE": "s3",
        "RCLONE_CONFIG_S3R_PROVIDER": "Other",
        "RCLONE_CONFIG_S3R_ENDPOINT": s3_server.endpoint,
        "RCLONE_CONFIG_S3R_ACCESS_KEY_ID": s3_server.env["AWS_ACCESS_KEY_ID"],
        "RCLONE_CONFIG_S3R_SECRET_ACCESS_KEY": s3_server.env["AWS_SECRET_ACCESS_KEY"],
        "RCLONE_CONFIG_S3R_REGION": "us-east-1",
        # moto rejects rclone's streamed multipart uploads: stay single-part.
        "RCLONE_STREAMING_UPLOAD_CUTOFF": "64M",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    return env


@pytest.fixture
def rclone_mount(rclone_local: dict[str, str], tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(remote directory, mount point): a real ``rclone mount`` through FUSE."""
    if not os.path.exists("/dev/fuse") or shutil.which("fusermount3") is None:
        pytest.skip("FUSE is not available here (/dev/fuse or fusermount3 missing)")
    remote, point = tmp_path / "remote", tmp_path / "mnt"
    remote.mkdir()
    point.mkdir()
    proc = subprocess.Popen(
        ["rclone", "mount", f"localr:{remote}", str(point), "--vfs-cache-mode", "off"],
        stderr=subprocess.PIPE,
    )
    poll_until(lambda: os.path.ismount(point) or proc.poll() is not None, 15)
    if not os.path.ismount(point):
        err = proc.stderr.read().decode() if proc.stderr and proc.poll() is not None else ""
        proc.kill()
        pytest.skip(f"rclone mount failed here: {err.strip()[-200:]}")
    try:
        yield remote, point
    finally:
        subprocess.run(["fusermount3", "-u", str(point)], check=False)
        proc.wait(15)
