"""The SFTP transport against a real OpenSSH sshd on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import Result, Runner, jobs_in
from fixtures_sftp import SFTPQueue, SSHServer, upload_in_progress
from helpers import one_error_line

from spooler.api import open_queue
from spooler.errors import LockError
from spooler.testing import TransportSuite

pytest.importorskip("paramiko")


class TestSFTPConformance(TransportSuite):
    @pytest.fixture
    def queue_location(self, sshd: SSHServer, tmp_path: Path) -> str:
        return sshd.url(str(tmp_path / "q"))

    @pytest.fixture
    def transport_options(self, sshd: SSHServer, tmp_path: Path) -> dict[str, str]:
        return {"ssh_config": str(sshd.write_config(tmp_path / "ssh_config"))}

    @pytest.fixture
    def cli_env(self, ssh_env: dict[str, str]) -> dict[str, str]:
        return ssh_env


def test_every_command_over_sftp(
    ours: Runner, ref: Runner, sshd: SSHServer, ssh_env: dict[str, str], tmp_path: Path
) -> None:
    local = tmp_path / "srv" / "q"
    local.parent.mkdir()
    url = sshd.url(str(local))

    def run(*args: object, **kw: object) -> object:
        return ours(*args, env=ssh_env, **kw)  # type: ignore[arg-type]

    assert run("queue-init", "-q", url).returncode == 0
    assert run("queue-init", "-q", url).returncode == 1
    seq = tmp_path / "seq"
    packets = [
        ours("prepare", "-s", seq, "-i", "-", "--", f"a{i}", input=b"%d\n" % i).stdout
        for i in (1, 2, 3)
    ]
    for packet in (packets[1], packets[2], packets[0]):
        assert run("queue-write", "-q", url, input=packet).returncode == 0
    assert not [n for n in os.listdir(local / "jobs") if n.startswith("tmp-")]
    # What we wrote over SFTP is an ordinary queue on the server: identical listings.
    assert run("queue-ls", "-q", url).out == ref("queue-ls", "-q", local).out
    info = run("queue-info", "-q", url, "-j", "2").out
    assert "FSPL_PARAM_1=a2\n" in info and f"FSPL_JOB_FULLPATH={url}/jobs/" in info
    assert run("queue-payload", "-q", url, "-j", "3").stdout == b"3\n"
    assert run("queue-get-next", "-q", url).out == "1\n"
    assert "jobs: 3" in run("queue-status", "-q", url).out
    done = run("queue-process", "-q", url, "-n", "1", "cat")
    assert done.returncode == 0 and done.stdout == b"1\n"
    # The reference, on the server, processes the rest of the queue we wrote.
    assert ref("queue-process", "-q", local, "cat").stdout == b"2\n3\n"
    # And we process, over SFTP, a queue the reference wrote.
    for i in (5, 4):
        ref(
            "queue-write",
            "-q",
            local,
            input=ref("prepare", "-s", seq, "-i", "-", input=b"r%d\n" % i).stdout,
        )
    assert run("queue-process", "-q", url, "--output-to", "saveboth", "cat").returncode == 0
    assert (local / "nextseq").read_text() == "6\n"
    # Only the two jobs' saved output is left, written over SFTP.
    left = sorted(os.listdir(local / "jobs"))
    assert len(left) == 2 and all(n.endswith(".fspl.out") for n in left), left
    assert sorted((local / "jobs" / n).read_bytes() for n in left) == [b"r4\n", b"r5\n"]


def test_explicit_url_and_options(ours: Runner, sshd: SSHServer, tmp_path: Path) -> None:
    url = f"sftp://{sshd.user}@{sshd.host}:{sshd.port}{tmp_path}/q"
    opts = [
        "-o",
        f"identity_file={sshd.client_key}",
        "-o",
        f"known_hosts={sshd.known_hosts}",
        "-o",
        "ssh_config=/dev/null",
    ]
    assert ours("queue-init", "-q", url, *opts).returncode == 0
    assert (tmp_path / "q" / "nextseq").read_text() == "1\n"


def test_unknown_host_key_is_refused_then_accepted(
    ours: Runner, sshd: SSHServer, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    config = sshd.write_config(tmp_path / "cfg")
    config.write_text(config.read_text().replace(str(sshd.known_hosts), str(empty)))
    env = {"FSPL_SSH_CONFIG": str(config)}
    refused = ours("queue-init", "-q", sshd.url(str(tmp_path / "q")), env=env)
    line = one_error_line(refused)
    assert "unknown host key" in line and "ssh-keyscan" in line
    assert not (tmp_path / "q").exists()
    accepted = ours(
        "queue-init",
        "-q",
        sshd.url(str(tmp_path / "q")),
        "-o",
        "strict_host_key_checking=accept-new",
        env=env,
    )
    assert accepted.returncode == 0, accepted.err
    assert sshd.host_key_pub.read_text().split()[1] in empty.read_text()
    assert ours("queue-ls", "-q", sshd.url(str(tmp_path / "q")), env=env).returncode == 0


def test_changed_host_key_is_refused(ours: Runner, sshd: SSHServer, tmp_path: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    wrong = tmp_path / "known_hosts"
    wrong.write_text(
        f"[127.0.0.1]:{sshd.port} {' '.join(Path(f'{other}.pub').read_text().split()[:2])}\n"
    )
    config = sshd.write_config(tmp_path / "cfg")
    config.write_text(config.read_text().replace(str(sshd.known_hosts), str(wrong)))
    for extra in ([], ["-o", "strict_host_key_checking=accept-new"]):
        result = ours(
            "queue-ls", "-q", sshd.url(str(tmp_path)), *extra, env={"FSPL_SSH_CONFIG": str(config)}
        )
        assert result.returncode == 1 and "CHANGED" in result.err and "ssh-keygen -R" in result.err


def test_unreachable_and_missing(
    ours: Runner, sshd: SSHServer, ssh_env: dict[str, str], tmp_path: Path
) -> None:
    closed = ours("queue-ls", "-q", f"sftp://127.0.0.1:1{tmp_path}", "-o", "ssh_config=/dev/null")
    assert "cannot connect" in one_error_line(closed)
    one_error_line(ours("queue-ls", "-q", sshd.url(str(tmp_path / "nope")), env=ssh_env))


def test_missing_file_names_the_queue(sftp_queue: SFTPQueue, ssh_env: dict[str, str]) -> None:
    """paramiko's "No such file" names no path: the queue URL is the file
    (the contract's FileNotFoundError, so the one line says where)."""
    transport = open_queue(sftp_queue.url, options={"ssh_config": ssh_env["FSPL_SSH_CONFIG"]})
    with pytest.raises(FileNotFoundError) as caught:
        transport.transport.open_job("fspl-nope.fspl")
    assert caught.value.filename == sftp_queue.url
    transport.transport.close()


def test_cut_connection_mid_upload_leaves_no_job(
    ours: Runner, sshd: SSHServer, ssh_env: dict[str, str], sftp_queue: SFTPQueue
) -> None:
    local, url = sftp_queue
    before = set(sshd.children())
    writer = upload_in_progress(sftp_queue, ssh_env, 4 * 1024 * 1024)
    for pid in set(sshd.children()) - before:
        os.kill(pid, signal.SIGKILL)  # the server side of the session dies
    writer.stdin.close()
    status = writer.wait(30)
    err = writer.stderr.read() if writer.stderr else b""
    line = one_error_line(Result(status, b"", err))
    assert "backupsrv" in line and "connection dropped" in line, line
    assert jobs_in(local) == []
    # Only the temporary name docs/reliability.md allows may remain.
    assert all(n.startswith("tmp-") for n in os.listdir(local / "jobs"))
    # A leftover temporary file never confuses any command, and processing
    # removes it once it is old.
    for name in os.listdir(local / "jobs"):
        os.utime(local / "jobs" / name, (0, 0))
    assert ours("queue-ls", "-q", url, env=ssh_env).out.count("\n") == 1
    assert ours("queue-process", "-q", url, "true", env=ssh_env).returncode == 0
    assert os.listdir(local / "jobs") == []


def test_lock_contention_and_stale_lock(
    ours: Runner, sshd: SSHServer, ssh_env: dict[str, str], sftp_queue: SFTPQueue
) -> None:
    local, url = sftp_queue
    options = {"ssh_config": ssh_env["FSPL_SSH_CONFIG"]}
    holder = open_queue(url, options=options)
    with holder.transport.lock_sequence():
        assert (local / "nextseq.sftp-lock").exists()
        blocked = ours("queue-process", "-q", url, "true", env=ssh_env)
        assert blocked.returncode == 1 and "being processed" in blocked.err
        with pytest.raises(LockError), open_queue(url, options=options).transport.lock_sequence():
            pass
    assert not (local / "nextseq.sftp-lock").exists()
    # A lock left by a dead processor goes stale and is broken.
    (local / "nextseq.sftp-lock").write_text('{"host": "gone", "pid": 1}')
    os.utime(local / "nextseq.sftp-lock", (0, 0))
    assert ours("queue-get-next", "-q", url, env=ssh_env).out == "1\n"


def test_one_transport_shared_by_threads(sftp_queue: SFTPQueue, ssh_env: dict[str, str]) -> None:
    """Two threads delivering and listing through one transport at once
    (paramiko's SFTPClient breaks when shared: each thread gets a session)."""
    import io
    import threading

    from spooler.testing import build_packet

    queue = open_queue(sftp_queue.url, options={"ssh_config": ssh_env["FSPL_SSH_CONFIG"]})
    transport = queue.transport
    errors: list[BaseException] = []

    def deliver(seq: int) -> None:
        try:
            for _ in range(5):
                transport.deliver(io.BytesIO(build_packet(seq, b"x" * 1_000_000)))
                transport.list_names()
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    workers = [threading.Thread(target=deliver, args=(n,), daemon=True) for n in (1, 2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not any(w.is_alive() for w in workers), "a thread hangs"
    assert errors == []
    assert len(jobs_in(sftp_queue.local)) == 10
    assert sorted(job.meta.seq for job in queue.scan()) == [1] * 5 + [2] * 5
    transport.close()
