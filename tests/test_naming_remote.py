"""On S3 a listing alone answers queue-ls of jobs we named: requests are
counted at the server (a counting WSGI layer around moto's application).

The server runs in this process, so all but the first job are stored straight
into moto's backend (2,000 PUTs over HTTP took 40 s); the first goes through
the API, which shows where the queue keeps its jobs and that it names them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import Runner
from fixtures_s3 import Counting, start_counted_moto

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
