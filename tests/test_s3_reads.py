"""Reading jobs from S3 is bounded like writing: one streamed GET per job."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import OURS_ARGV, Runner
from fixtures_s3 import S3Server

LIMIT_MIB = 96  # peak RSS of a whole fspl process, for any payload size
PAYLOAD_MIB = 200


def peak_rss_mib(args: list[str]) -> float:
    """Run our fspl with ``args`` (stdout discarded) in a fresh process; its peak RSS."""
    probe = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, *OURS_ARGV, *args], capture_output=True, check=True
    )
    return int(out.stdout) / 1024


@pytest.fixture
def big_job(ours: Runner, s3_server: S3Server, bucket: str) -> str:
    queue = f"s3://{bucket}/q"
    assert ours("queue-init", "-q", queue).returncode == 0
    make = subprocess.run(
        f"head -c {PAYLOAD_MIB << 20} /dev/zero | {sys.executable} -m spooler prepare -s - -i -"
        f" | {sys.executable} -m spooler queue-write -q {queue}",
        shell=True,
        capture_output=True,
    )
    assert make.returncode == 0, make.stderr
    return queue


def test_reading_a_large_job_stays_bounded(big_job: str) -> None:
    assert peak_rss_mib(["queue-payload", "-q", big_job, "-j", "1"]) <= LIMIT_MIB
    counted = ["sh", "--", "-c", f'[ "$(wc -c)" -eq {PAYLOAD_MIB << 20} ]']
    assert peak_rss_mib(["queue-process", "-q", big_job, *counted]) <= LIMIT_MIB


@pytest.mark.parametrize("size", [0, 5, (8 << 20) * 2 + 12345])
def test_parallel_ranged_reads_give_the_object(s3_server: S3Server, bucket: str, size: int) -> None:
    import os

    from spooler.api import open_queue

    data = os.urandom(size)
    s3_server.client().put_object(Bucket=bucket, Key="q/jobs/fspl-x.fspl", Body=data)
    for parallel in ("1", "3"):
        transport = open_queue(f"s3://{bucket}/q", options={"read_parallel": parallel}).transport
        with transport.open_job("fspl-x.fspl") as stream:
            assert stream.read() == data, parallel
