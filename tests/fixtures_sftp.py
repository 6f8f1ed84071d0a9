"""A real OpenSSH sshd on 127.0.0.1 with its own keys, config and known_hosts."""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from helpers import require, wait_until

from spooler.testing import free_port, wait_for_port

SSHD = "/usr/sbin/sshd"


@dataclass
class SSHServer:
    host: str
    port: int
    user: str
    client_key: Path
    known_hosts: Path
    host_key_pub: Path
    dir: Path
    process: subprocess.Popen[bytes]

    def write_config(self, path: Path, alias: str = "backupsrv") -> Path:
        """An ssh config with a Host alias pointing at this server."""
        path.write_text(
            f"Host {alias}\n"
            f"  HostName {self.host}\n"
            f"  Port {self.port}\n"
            f"  User {self.user}\n"
            f"  IdentityFile {self.client_key}\n"
            f"  UserKnownHostsFile {self.known_hosts}\n"
        )
        return path

    def url(self, path: str, alias: str = "backupsrv") -> str:
        return f"sftp://{alias}{path}"

    def children(self) -> list[int]:
        """PIDs of the per-connection sshd processes."""
        out = subprocess.run(
            ["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True
        ).stdout
        return [int(pid) for pid in out.split()]


def start_sshd(work: Path) -> SSHServer:
    """Start sshd on a free loopback port with fresh keys under ``work``."""
    host_key, client_key = work / "host_ed25519", work / "client_ed25519"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    (work / "authorized_keys").write_text((work / "client_ed25519.pub").read_text())
    port = free_port()
    config = work / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {work}/authorized_keys\nPidFile {work}/sshd.pid\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PermitRootLogin prohibit-password\nSubsystem sftp internal-sftp\nLogLevel ERROR\n"
        # rclone opens a connection per call, several at once for headers: the
        # default (10:30:100) randomly drops connections past 10 handshakes.
        "MaxStartups 100\n"
    )
    os.makedirs("/run/sshd", exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
    try:
        wait_for_port(port, proc, timeout=15)
    except RuntimeError as exc:
        err = proc.stderr.read().decode() if proc.stderr and proc.poll() is not None else ""
        raise RuntimeError(f"{exc}: {err}") from None
    known = work / "known_hosts"
    pub = (work / "host_ed25519.pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{port} {pub[0]} {pub[1]}\n")
    return SSHServer(
        "127.0.0.1",
        port,
        getpass.getuser(),
        client_key,
        known,
        work / "host_ed25519.pub",
        work,
        proc,
    )


def stop_sshd(server: SSHServer) -> None:
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(10)


@pytest.fixture(scope="session")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    available = os.path.exists(SSHD) and shutil.which("ssh-keygen") is not None
    require(available, "openssh-server", "apt-get install openssh-server")
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    try:
        yield server
    finally:
        stop_sshd(server)


@pytest.fixture
def ssh_env(sshd: SSHServer, tmp_path: Path) -> dict[str, str]:
    """Environment for fspl: an ssh config naming the server as 'backupsrv'."""
    config = sshd.write_config(tmp_path / "ssh_config")
    return {"FSPL_SSH_CONFIG": str(config)}


@pytest.fixture
def sftp_queue(ours: Any, sshd: SSHServer, ssh_env: dict[str, str], tmp_path: Path) -> SFTPQueue:
    """A fresh queue made with queue-init over SFTP, and where its files are."""
    local = tmp_path / "q"
    url = sshd.url(str(local))
    assert ours("queue-init", "-q", url, env=ssh_env).returncode == 0
    return SFTPQueue(local, url)


class SFTPQueue(NamedTuple):
    local: Path
    url: str


def upload_in_progress(
    queue: SFTPQueue, env: dict[str, str], payload_size: int
) -> subprocess.Popen[bytes]:
    """A ``queue-write`` over SFTP whose packet is sent but whose stdin is still
    open, returned once its temporary file exists on the server."""
    import sys

    from spooler.testing import build_packet

    writer = subprocess.Popen(
        [sys.executable, "-m", "spooler", "queue-write", "-q", queue.url],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
    )
    assert writer.stdin is not None
    writer.stdin.write(build_packet(1, b"x" * payload_size))
    writer.stdin.flush()
    jobs = queue.local / "jobs"
    wait_until(lambda: any(n.startswith("tmp-") for n in os.listdir(jobs)), "the upload")
    return writer
