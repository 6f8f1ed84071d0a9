"""A real S3 API (moto's server) on 127.0.0.1, one per test session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from spooler.testing import free_port


@dataclass
class S3Server:
    endpoint: str
    env: dict[str, str]

    def client(self):
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        )

    def new_bucket(self) -> str:
        name = f"fspl-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, started once per session.
    It changes no environment: :func:`s3_server` does, per test."""
    pytest.importorskip("moto.server", reason="moto[s3,server] is not installed")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    try:
        yield S3Server(env["AWS_ENDPOINT_URL"], env)
    finally:
        server.stop()


@pytest.fixture
def s3_server(moto_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The moto server, with its credentials and endpoint in the environment
    for this test only (in-process clients and ``fspl`` subprocesses alike)."""
    for key, value in moto_server.env.items():
        monkeypatch.setenv(key, value)
    # This machine points AWS_CA_BUNDLE at a bundle; the plain-http server needs none.
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return moto_server


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    """A fresh, empty bucket (state never leaks between tests)."""
    return s3_server.new_bucket()
