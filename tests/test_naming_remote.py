"""On S3, SFTP and rclone a listing alone answers queue-ls of jobs we named.

On S3 requests are counted at the server (a counting WSGI layer around
moto's application).  Over SFTP and rclone the named jobs' files are emptied
before the listing: a scan that read them would leave them out.

The server runs in this process, so all but the first job are stored straight
into moto's backend (2,000 PUTs over HTTP took 40 s); the first goes through
the API, which shows where the queue keeps its jobs and that it names them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Result, Runner
from fixtures_s3 import Counting, start_counted_moto
from fixtures_sftp import SFTPQueue

from spooler import api
from spooler.naming import job_name, parse_name
from spooler.packet import Meta, Special, encode_header

#: More than one listing page (1,000 keys), so paging is part of the count.
JOBS = 2000


@pytest.fixture
def counting_s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counting]:
    pytest.importorskip("moto.server", reason="moto[s3,server] is not installed")
    server = start_counted_moto()
    for key, value in server.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield server.counting
    finally:
        server.stop()


def nop(seq: int) -> bytes:
    return encode_header(Meta(seq, 1_651_970_311, seq, Special.NOP))


def test_queue_ls_of_named_jobs_is_a_listing(counting_s3_server: Counting, ours: Runner) -> None:
    import boto3
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="named")
    location = "s3://named/q"
    with api.open_queue(location) as queue:
        queue.init()
        queue.write(nop(1))
    (first,) = [
        o["Key"] for o in client.list_objects_v2(Bucket="named")["Contents"] if "/fspl-" in o["Key"]
    ]
    jobs, name = first.rsplit("/", 1)
    assert parse_name(name) is not None, f"the API wrote an unnamed job: {name}"
    backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
    for seq in range(2, JOBS + 1):
        backend.put_object("named", f"{jobs}/{job_name(seq, 1_651_970_311, seq)}", nop(seq))
    counting_s3_server.count = 0
    result = ours("queue-ls", "-q", location)
    assert result.returncode == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == JOBS + 1
    assert [int(line.split()[0]) for line in lines[1:]] == list(range(1, JOBS + 1))
    assert counting_s3_server.count <= 5, counting_s3_server.count


def _empty_the_named_jobs(jobs_dir: Path, count: int) -> list[str]:
    """The named jobs' files emptied in place: a scan that read them would
    find no header and leave them out, so only a listing can show them."""
    named = sorted(n for n in os.listdir(jobs_dir) if parse_name(n) is not None)
    assert len(named) == count, os.listdir(jobs_dir)
    for name in named:
        (jobs_dir / name).write_bytes(b"")
    return named


def _listed(result: Result) -> list[tuple[int, str]]:
    assert result.returncode == 0, result.err
    return [(int(line.split()[0]), line.split()[-1]) for line in result.out.splitlines()[1:]]


def test_sftp_queue_ls_of_named_jobs_is_a_listing(
    ours: Runner, sftp_queue: SFTPQueue, ssh_env: dict[str, str]
) -> None:
    for seq in (1, 2, 3):
        written = ours("queue-write", "-q", sftp_queue.url, input=nop(seq), env=ssh_env)
        assert written.returncode == 0, written.err
    named = _empty_the_named_jobs(sftp_queue.local / "jobs", 3)
    listed = _listed(ours("queue-ls", "-q", sftp_queue.url, env=ssh_env))
    assert sorted(listed) == [(parse_name(n).seq, n) for n in named]  # type: ignore[union-attr]


def test_rclone_queue_ls_of_named_jobs_is_a_listing(
    ours: Runner, rclone_local: dict[str, str], tmp_path: Path
) -> None:
    location = f"rclone:localr:{tmp_path / 'q'}"
    assert ours("queue-init", "-q", location).returncode == 0
    for seq in (1, 2, 3):
        assert ours("queue-write", "-q", location, input=nop(seq)).returncode == 0
    named = _empty_the_named_jobs(tmp_path / "q" / "jobs", 3)
    listed = _listed(ours("queue-ls", "-q", location))
    assert sorted(listed) == [(parse_name(n).seq, n) for n in named]  # type: ignore[union-attr]
