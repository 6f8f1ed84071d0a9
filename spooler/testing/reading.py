"""Conformance tests of reading a queue: listings, header prefixes, payload
streams, ``.out`` files and deletion, and the ``local-fd`` and
``concurrent-headers`` claims."""

from __future__ import annotations

import io
import os

import pytest

from ..packet import Command, Meta
from ..queue import Queue
from ..streams import raw_fd
from ..transport import Capability, Transport
from .base import TransportFixtures, build_packet, jobs, needs, read_all


class ReadingTests(TransportFixtures):
    """Reading jobs back (``list_names``, ``read_prefixes``, ``open_job``,
    ``open_output``, ``delete``)."""

    def test_read_prefixes(self, transport: Transport) -> None:
        first = transport.deliver(io.BytesIO(build_packet(1, b"a" * 10_000)))
        second = transport.deliver(io.BytesIO(build_packet(2)))
        got = dict(transport.read_prefixes([first, second, "fspl-missing.fspl"], 64))
        assert got[first] == build_packet(1, b"a" * 10_000)[:64]
        assert got[second] == build_packet(2)[:64]
        assert isinstance(got["fspl-missing.fspl"], OSError)

    def test_payload_streams_after_header(self, transport: Transport) -> None:
        payload = os.urandom(3 * 1024 * 1024 + 17)
        name = transport.deliver(io.BytesIO(build_packet(5, payload)))
        with Queue(transport).open(name) as source:
            assert source.header.meta.seq == 5
            received = bytearray()
            while chunk := os.read(source.fd, 1 << 20):
                received += chunk
        assert bytes(received) == payload

    def test_large_header_is_scanned(self, transport: Transport) -> None:
        params = tuple(b"p" * 1000 for _ in range(10))  # metadata well past one read
        transport.deliver(io.BytesIO(build_packet(1, b"", params)))
        (job,) = Queue(transport).scan()
        assert isinstance(job.meta, Meta) and isinstance(job.meta.cmd, Command)
        assert job.meta.cmd.params == params

    def test_unparsable_files_are_ignored(self, transport: Transport) -> None:
        good = transport.deliver(io.BytesIO(build_packet(1)))
        transport.deliver(io.BytesIO(b"not a packet at all"))
        assert [job.name for job in Queue(transport).scan()] == [good]

    def test_delete(self, transport: Transport) -> None:
        name = transport.deliver(io.BytesIO(build_packet(1)))
        transport.delete(name)
        assert jobs(transport) == []
        with pytest.raises(FileNotFoundError):
            transport.open_job(name)

    def test_output_file(self, transport: Transport) -> None:
        name = transport.deliver(io.BytesIO(build_packet(1)))
        with transport.open_output(name + ".out") as out:
            os.write(out.fileno(), b"captured output\n")
        assert name + ".out" in transport.list_names()
        with transport.open_job(name + ".out") as stream:
            assert read_all(stream) == b"captured output\n"

    def test_job_location(self, transport: Transport) -> None:
        assert transport.job_location("fspl-x.fspl").endswith("/jobs/fspl-x.fspl")

    # -- capability claims ---------------------------------------------------------
    @needs(Capability.LOCAL_FD)
    def test_local_fd_claim_hands_a_raw_descriptor(self, transport: Transport) -> None:
        """``local-fd``: the stream of ``open_job`` has a descriptor, and reading
        that descriptor (not the stream) gives exactly the job's bytes."""
        data = build_packet(1, os.urandom(300_000))
        name = transport.deliver(io.BytesIO(data))
        with transport.open_job(name) as stream:
            fd = stream.fileno()
            assert raw_fd(stream) == fd, "the descriptor is not declared raw (streams.raw_fd)"
            received = bytearray()
            while chunk := os.read(fd, 1 << 16):
                received += chunk
        assert bytes(received) == data

    @needs(Capability.CONCURRENT_HEADERS)
    def test_concurrent_headers_claim(self, transport: Transport) -> None:
        """``concurrent-headers``: ``read_prefixes`` is the transport's own (the
        inherited one opens each job in turn) and is right for many jobs at once,
        missing ones included."""
        assert type(transport).read_prefixes is not Transport.read_prefixes, (
            "claims concurrent-headers but keeps the one-at-a-time read_prefixes"
        )
        packets = {transport.deliver(io.BytesIO(p)): p for p in map(build_packet, range(1, 25))}
        missing = [f"fspl-missing-{i}.fspl" for i in range(3)]
        got = dict(transport.read_prefixes([*packets, *missing], 40))
        assert set(got) == {*packets, *missing}
        assert all(got[name] == packet[:40] for name, packet in packets.items())
        assert all(isinstance(got[name], OSError) for name in missing)
