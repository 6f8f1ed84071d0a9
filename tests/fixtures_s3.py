"""A real S3 API (moto's server) on 127.0.0.1: one per test session, and
one that counts the requests reaching it (tests and benchmarks/ use it)."""

from __future__ import annotations

import http.server
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from spooler.testing import free_port


@dataclass
class S3Server:
    endpoint: str
    env: dict[str, str]

    def client(self) -> Any:
        import boto3  # type: ignore[import-untyped]

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


def server_env(port: int) -> dict[str, str]:
    """Credentials and endpoint for a moto server on 127.0.0.1:``port``."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }


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


@dataclass
class CountedS3Server(S3Server):
    """A moto server in this process whose ``counting.count`` is the number
    of HTTP requests it has received; ``stop()`` shuts it down."""

    counting: Counting
    stop: Callable[[], None]


def start_counted_moto() -> CountedS3Server:
    """moto's application behind :class:`Counting`, served on a free
    loopback port from a thread of this process."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import make_server

    counting = Counting(DomainDispatcherApplication(create_backend_app))
    port = free_port()
    server = make_server("127.0.0.1", port, counting, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = server_env(port)
    return CountedS3Server(env["AWS_ENDPOINT_URL"], env, counting, server.shutdown)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[S3Server]:
    """moto's S3 server on a free loopback port, started once per session.
    It changes no environment: :func:`s3_server` does, per test."""
    pytest.importorskip("moto.server", reason="moto[s3,server] is not installed")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = server_env(port)
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


class _Refusing(http.server.BaseHTTPRequestHandler):
    """Answers every request as S3 does a bad signature or unknown key."""

    code = "SignatureDoesNotMatch"

    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{self.server.code}</Code>"  # type: ignore[attr-defined]
            "<Message>The request signature we calculated does not match the signature "
            "you provided.</Message><RequestId>0</RequestId></Error>"
        ).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(0 if self.command == "HEAD" else len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _refuse

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(params=["SignatureDoesNotMatch", "InvalidAccessKeyId"])
def s3_refusing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A loopback endpoint refusing every request with S3's 403 and the
    parametrised error code (moto checks no signature); yields the code."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), _Refusing)
    server.code = request.param  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    try:
        yield request.param
    finally:
        server.shutdown()
        server.server_close()
