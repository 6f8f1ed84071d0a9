"""Remote listing: ``queue-ls`` of jobs we wrote, on S3 (moto) and SFTP (sshd).

There is no reference to compare with (the reference has no remote
transports), so these report the number of requests one ``queue-ls`` sends
and the median time of a few runs.  Both servers are the test suite's
fixtures, on 127.0.0.1: moto's application behind a request counter
(tests/fixtures_s3.py) and a throwaway OpenSSH sshd (tests/fixtures_sftp.py).
The jobs are written by the library of the fspl under test
(benchmarks/fill_queue.py), so they carry their header in their names.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from measure import Sample, measure, run_once

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from fixtures_s3 import start_counted_moto  # noqa: E402 - the tests' fixtures as a library
from fixtures_sftp import start_sshd, stop_sshd  # noqa: E402

FILL = str(HERE / "fill_queue.py")
COUNT_SFTP = str(HERE / "count_sftp.py")


@dataclass(frozen=True)
class Listing:
    transport: str
    jobs: int
    requests: int
    sample: Sample


def s3_listing(ours: str, python: str, jobs: int, runs: int) -> Listing:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # a line per request otherwise
    server = start_counted_moto()
    try:
        env = {**os.environ, **server.env}
        # This machine points AWS_CA_BUNDLE at a bundle; plain http needs none.
        for key in ("AWS_CA_BUNDLE", "AWS_PROFILE"):
            env.pop(key, None)
        server.client().create_bucket(Bucket="fspl-bench")
        url = "s3://fspl-bench/q"
        subprocess.run([python, FILL, url, str(jobs)], env=env, check=True)
        listing = [ours, "queue-ls", "-q", url]
        server.counting.count = 0
        run_once(listing, env=env)
        requests = server.counting.count
        return Listing("S3 (moto)", jobs, requests, measure(listing, runs, env=env))
    finally:
        server.stop()


def sftp_listing(ours: str, python: str, jobs: int, runs: int, work: Path) -> Listing:
    """The jobs are written into the served directory directly (the same
    names and bytes an SFTP delivery makes, without its round trips)."""
    (work / "sshd").mkdir()
    server = start_sshd(work / "sshd")
    try:
        env = {**os.environ, "FSPL_SSH_CONFIG": str(server.write_config(work / "ssh_config"))}
        local = work / "q"
        subprocess.run([python, FILL, str(local), str(jobs)], check=True)
        url = server.url(str(local))
        counted = subprocess.run(
            [python, COUNT_SFTP, "queue-ls", "-q", url],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=True,
        )
        match = re.search(r"sftp-requests: (\d+)\s*$", counted.stderr)
        if not match:
            raise RuntimeError(f"no request count in: {counted.stderr[-2000:]}")
        listing = [ours, "queue-ls", "-q", url]
        return Listing("SFTP (sshd)", jobs, int(match[1]), measure(listing, runs, env=env))
    finally:
        stop_sshd(server)
