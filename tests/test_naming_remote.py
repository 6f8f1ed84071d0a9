"""On S3 a listing alone answers queue-ls of jobs we named: requests are
counted at the server (a counting WSGI layer around moto's application)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from conftest import Runner
from fixtures_s3 import Counting, start_counted_moto

from spooler import api
from spooler.packet import Meta, Special, encode_header

JOBS = 2000


@pytest.fixture
def counting_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counting]:
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


def test_queue_ls_of_named_jobs_is_a_listing(counting_s3: Counting, ours: Runner) -> None:
    import boto3

    boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="named")
    location = "s3://named/q"
    with api.open_queue(location) as queue:
        queue.init()
        for seq in range(1, JOBS + 1):
            queue.write(encode_header(Meta(seq, 1_651_970_311, seq, Special.NOP)))
    counting_s3.count = 0
    result = ours("queue-ls", "-q", location)
    assert result.returncode == 0, result.err
    lines = result.out.splitlines()
    assert len(lines) == JOBS + 1
    assert [int(line.split()[0]) for line in lines[1:]] == list(range(1, JOBS + 1))
    assert counting_s3.count <= 5, counting_s3.count
