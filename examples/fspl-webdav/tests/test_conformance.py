"""fspl-webdav passes filespooler's transport conformance kit against a real
WebDAV server (wsgidav) on 127.0.0.1: the whole kit anonymously, and the
areas where credentials matter on a server that demands them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from spooler.testing import (
    DeliveryTests,
    ReadingTests,
    SequenceTests,
    TransportSuite,
    free_port,
    wait_for_port,
)

pytest.importorskip("fspl_webdav", reason="pip install -e examples/fspl-webdav")


def start_wsgidav(root: Path, *args: str) -> tuple[subprocess.Popen[bytes], int]:
    """wsgidav serving ``root`` on a free loopback port, once it listens."""
    wsgidav = shutil.which("wsgidav") or str(Path(sys.executable).with_name("wsgidav"))
    port = free_port()
    argv = [wsgidav, "-H", "127.0.0.1", "-p", str(port), "-r", str(root), "-q", *args]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
    except RuntimeError as exc:
        proc.kill()
        pytest.fail(str(exc))
    return proc, port


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="session")
def webdav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """wsgidav serving a temporary directory; yields its base URL (webdav://)."""
    proc, port = start_wsgidav(
        tmp_path_factory.mktemp("davroot"), "--auth", "anonymous", "--no-config"
    )
    try:
        yield f"webdav://127.0.0.1:{port}"
    finally:
        stop(proc)


#: The one account of the authenticating server.
USER, PASSWORD = "alice", "s3cret"


@pytest.fixture(scope="session")
def webdav_auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """wsgidav that refuses anonymous requests and accepts USER:PASSWORD
    (HTTP Basic); yields its base URL, without credentials."""
    work = tmp_path_factory.mktemp("davauth")
    config = work / "wsgidav.json"
    config.write_text(
        json.dumps(
            {
                "http_authenticator": {
                    "domain_controller": None,
                    "accept_basic": True,
                    "accept_digest": False,
                    "default_to_digest": False,
                },
                "simple_dc": {"user_mapping": {"*": {USER: {"password": PASSWORD}}}},
            }
        )
    )
    (work / "root").mkdir()
    proc, port = start_wsgidav(work / "root", "-c", str(config))
    try:
        yield f"webdav://127.0.0.1:{port}"
    finally:
        stop(proc)


class TestWebDAV(TransportSuite):
    """The whole kit; every capability the transport declares is verified
    (create-only, concurrent-headers, process, lease)."""

    @pytest.fixture
    def queue_location(self, webdav_server: str) -> str:
        return f"{webdav_server}/q-{uuid.uuid4().hex[:12]}"


class TestWebDAVWithCredentials(DeliveryTests, ReadingTests, SequenceTests):
    """The areas where every request must carry the credentials (the kit's
    mixins taken one by one), with them given as ``-o`` options."""

    @pytest.fixture
    def queue_location(self, webdav_auth_server: str) -> str:
        return f"{webdav_auth_server}/q-{uuid.uuid4().hex[:12]}"

    @pytest.fixture
    def transport_options(self) -> dict[str, str]:
        return {"user": USER, "password": PASSWORD}


def test_missing_credentials_are_one_error_line(webdav_auth_server: str) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "spooler", "queue-init", "-q", f"{webdav_auth_server}/anon"],
        capture_output=True,
        timeout=60,
    )
    assert refused.returncode == 1 and refused.stderr.count(b"\n") == 1
    assert refused.stderr.startswith(b"Error: ") and b"401" in refused.stderr


def test_cli_end_to_end(webdav_server: str) -> None:
    url = f"{webdav_server}/e2e-{uuid.uuid4().hex[:8]}"

    def fspl(*args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [sys.executable, "-m", "spooler", *args], input=data, capture_output=True, timeout=60
        )

    assert fspl("queue-init", "-q", url).returncode == 0
    for n in (2, 1):
        packet = fspl("prepare", "-s", "-", "-i", "-", data=b"dav %d\n" % n).stdout
        assert fspl("queue-write", "-q", url, data=packet).returncode == 0
    listing = fspl("queue-ls", "-q", url)
    assert listing.returncode == 0 and listing.stdout.count(b"\n") == 3
    done = fspl("queue-process", "-q", url, "--order-by", "timestamp", "cat")
    assert done.returncode == 0 and done.stdout == b"dav 2\ndav 1\n"
    refused = fspl("queue-ls", "-q", "webdav://127.0.0.1:1/nothing")
    assert refused.returncode == 1 and refused.stderr.startswith(b"Error: ")
