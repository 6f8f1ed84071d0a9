"""fsspec URL chaining (``PROTOCOL::URL``) reaches fsspec, not the local transport."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from conftest import Runner, craft
from fixtures_s3 import S3Server

from spooler.registry import open_transport, resolve_spec


@pytest.mark.parametrize("location", ["simplecache::s3://b/q", "blockcache::memory://q"])
def test_chained_urls_go_to_fsspec(location: str) -> None:
    assert resolve_spec(location).name == "fsspec"


@pytest.mark.parametrize("location", ["a::b", "./x::y", "/srv/q::1"])
def test_paths_with_double_colons_stay_local(location: str) -> None:
    assert resolve_spec(location).name == "local"


def test_a_chained_memory_queue_works() -> None:
    pytest.importorskip("fsspec")
    transport = open_transport("simplecache::memory://chained/q")
    assert type(transport.fs).__name__ == "SimpleCacheFileSystem"  # type: ignore[attr-defined]
    transport.init(append_only=True)
    name = transport.deliver(io.BytesIO(craft(1, b"payload")))
    assert name in transport.list_names()


def test_simplecache_over_s3(
    ours: Runner, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    queue = f"s3://{bucket}/q"
    assert ours("queue-init", "-q", queue).returncode == 0
    assert ours("queue-write", "-q", queue, input=craft(1, b"through the cache")).returncode == 0
    chained = f"simplecache::{queue}"
    listing = ours("queue-ls", "-q", chained)
    assert listing.returncode == 0 and "fspl-" in listing.out, listing.err
    payload = ours("queue-payload", "-q", chained, "-j", "1")
    assert payload.stdout == b"through the cache", payload.err
