"""fspl-webdav passes filespooler's transport conformance kit against a real
WebDAV server (wsgidav) on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from spooler.testing import TransportSuite, free_port, wait_for_port

pytest.importorskip("fspl_webdav", reason="pip install -e examples/fspl-webdav")


@pytest.fixture(scope="session")
def webdav_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """wsgidav serving a temporary directory; yields its base URL (webdav://)."""
    wsgidav = shutil.which("wsgidav") or str(Path(sys.executable).with_name("wsgidav"))
    root = tmp_path_factory.mktemp("davroot")
    port = free_port()
    proc = subprocess.Popen(
        [
            wsgidav,
            "-H",
            "127.0.0.1",
            "-p",
            str(port),
            "-r",
            str(root),
            "--auth",
            "anonymous",
            "--no-config",
            "-q",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc)
    except RuntimeError as exc:
        proc.kill()
        pytest.fail(str(exc))
    try:
        yield f"webdav://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


class TestWebDAV(TransportSuite):
    @pytest.fixture
    def queue_location(self, webdav_server: str) -> str:
        return f"{webdav_server}/q-{uuid.uuid4().hex[:12]}"


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
