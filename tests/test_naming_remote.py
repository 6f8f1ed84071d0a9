"""On S3 a listing alone answers queue-ls of jobs we named: requests are
counted at the server (a counting WSGI layer around moto's application)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from conftest import Runner

from spooler import api
from spooler.packet import Meta, Special, encode_header
from spooler.testing import free_port

JOBS = 2000


class Counting:
    """WSGI middleware counting the requests that reach moto."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.count = 0
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self.lock:
            self.count += 1
        return self.app(environ, start_response)


@pytest.fixture
def counting_s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counting]:
    pytest.importorskip("moto.server", reason="moto[s3,server] is not installed")
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    counting = Counting(DomainDispatcherApplication(create_backend_app))
    port = free_port()
    server = make_server("127.0.0.1", port, counting, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield counting
    finally:
        server.shutdown()


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
