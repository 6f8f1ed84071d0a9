"""Remote faults: connections cut mid-processing, holders killed, retries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import Runner, jobs_in
from fixtures_s3 import S3Server
from fixtures_sftp import SFTPQueue, SSHServer
from helpers import wait_until

FSPL = [sys.executable, "-m", "spooler"]


def test_sftp_connection_cut_mid_processing(
    ours: Runner, sshd: SSHServer, ssh_env: dict[str, str], sftp_queue: SFTPQueue
) -> None:
    local, url = sftp_queue
    ours(
        "queue-write",
        "-q",
        url,
        env=ssh_env,
        input=ours("prepare", "-s", "-", "-i", "-", input=b"payload").stdout,
    )
    before = set(sshd.children())
    proc = subprocess.Popen(
        [*FSPL, "queue-process", "-q", url, "-o", "lock_ttl=2", "sh", "--", "-c", "sleep 2; cat"],
        env={**os.environ, **ssh_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(1.0)
    for pid in set(sshd.children()) - before:
        os.kill(pid, signal.SIGKILL)  # the server side of the session dies mid-job
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0 and b"Traceback" not in err
    assert len(jobs_in(local)) == 1 and (local / "nextseq").read_text() == "1\n"  # not lost
    time.sleep(2.5)  # the dead processor's lock goes stale (lock_ttl=2)
    retry = ours("queue-process", "-q", url, "-o", "lock_ttl=2", "cat", env=ssh_env)
    assert retry.returncode == 0 and retry.stdout == b"payload"
    assert jobs_in(local) == [] and (local / "nextseq").read_text() == "2\n"


def test_s3_lease_holder_killed(
    ours: Runner, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    url = f"s3://{bucket}/q"
    ours("queue-init", "-q", url)
    ours("queue-write", "-q", url, input=ours("prepare", "-s", "-", "-i", "-", input=b"x").stdout)
    log = tmp_path / "log"
    proc = subprocess.Popen(
        [
            *FSPL,
            "queue-process",
            "-q",
            url,
            "-o",
            "lease_ttl=1",
            "sh",
            "--",
            "-c",
            f"echo start >> {log}; sleep 30",
        ],
        start_new_session=True,
    )
    wait_until(log.exists, "the job to start")
    os.killpg(proc.pid, signal.SIGKILL)  # the holder and its command die together
    proc.wait()
    # The holder was on this host and its process is gone: broken at once,
    # as flock is released by the kernel when its holder dies.
    retry = ours("queue-process", "-q", url, "sh", "--", "-c", f"echo again >> {log}")
    assert retry.returncode == 0, retry.err
    assert "its process no longer exists" in retry.err
    assert log.read_text() == "start\nagain\n"  # interrupted once, then run to the end
    assert ours("queue-get-next", "-q", url).out == "2\n"
