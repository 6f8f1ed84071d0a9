"""Conformance tests of queue creation and delivery: a job appears whole or
not at all, under a unique name, and never replaces another."""

from __future__ import annotations

import io
import re
import threading
from typing import Any, BinaryIO, cast

import pytest

from ..errors import SpoolError
from ..transport import Capability, Transport, is_job_name
from .base import Connect, TransportFixtures, build_packet, jobs, needs, read_all

UUID_NAME = r"^fspl-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.fspl$"

#: Every capability name the engine knows (a misspelt claim is a false claim).
KNOWN_CAPABILITIES = frozenset(
    value for key, value in vars(Capability).items() if key.isupper() and isinstance(value, str)
)


class FailingStream(io.RawIOBase):
    """Yields ``good`` bytes, then raises: a connection cut mid-delivery."""

    def __init__(self, good: bytes) -> None:
        self._good = good

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if not self._good:
            raise OSError("simulated transport failure")
        n = min(len(buffer), len(self._good))
        buffer[:n] = self._good[:n]
        self._good = self._good[n:]
        return n


class GatedStream(io.RawIOBase):
    """Yields ``first``, then blocks until ``gate`` is set, then ``rest``."""

    def __init__(self, first: bytes, rest: bytes, gate: threading.Event) -> None:
        self._parts = [first, rest]
        self._gate = gate
        self.reached_gate = threading.Event()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while self._parts and not self._parts[0]:
            self._parts.pop(0)
            if len(self._parts) == 1:
                self.reached_gate.set()
                self._gate.wait(30)
        if not self._parts:
            return 0
        chunk = self._parts[0][: len(buffer)]
        buffer[: len(chunk)] = chunk
        self._parts[0] = self._parts[0][len(chunk) :]
        return len(chunk)


def gated(data: bytes, gate: threading.Event) -> GatedStream:
    """A stream of ``data`` that stops half-way until ``gate`` opens."""
    half = len(data) // 2
    return GatedStream(data[:half], data[half:], gate)


class DeliveryTests(TransportFixtures):
    """Queue creation and delivery (``init``, ``deliver``)."""

    # -- structure ----------------------------------------------------------------
    def test_capabilities_are_known(self, transport: Transport) -> None:
        assert transport.capabilities <= KNOWN_CAPABILITIES, "unknown capability names"

    def test_init_then_empty(self, transport: Transport) -> None:
        assert jobs(transport) == []
        assert not transport.is_append_only()

    def test_init_twice_fails(self, transport: Transport, connect: Connect) -> None:
        with pytest.raises((SpoolError, OSError)):
            connect().init()

    def test_append_only_queue(self, connect: Connect) -> None:
        transport = connect()
        transport.init(append_only=True)
        assert transport.is_append_only()
        name = transport.deliver(io.BytesIO(build_packet(1)))
        assert jobs(transport) == [name]
        with pytest.raises(SpoolError, match="append-only"), transport.lock_sequence():
            pass

    # -- delivery -----------------------------------------------------------------
    def test_deliver_round_trip(self, transport: Transport) -> None:
        data = build_packet(1, b"payload bytes\x00\xff")
        name = transport.deliver(io.BytesIO(data))
        assert is_job_name(name)
        assert re.match(UUID_NAME, name)
        assert jobs(transport) == [name]
        with transport.open_job(name) as stream:
            assert read_all(stream) == data

    def test_names_are_unique(self, transport: Transport) -> None:
        names = {transport.deliver(io.BytesIO(build_packet(i))) for i in range(1, 7)}
        assert len(names) == 6
        assert set(jobs(transport)) == names

    def test_deliver_never_replaces_an_existing_name(self, transport: Transport) -> None:
        first = build_packet(1, b"the original")
        name = transport.deliver(io.BytesIO(first))
        with pytest.raises(FileExistsError):
            transport.deliver(io.BytesIO(build_packet(2, b"an impostor")), name=name)
        assert jobs(transport) == [name]
        with transport.open_job(name) as stream:
            assert read_all(stream) == first

    def test_failed_delivery_leaves_no_job(self, transport: Transport) -> None:
        with pytest.raises((OSError, SpoolError), match="simulated"):
            transport.deliver(cast(BinaryIO, FailingStream(build_packet(1, b"x" * 300_000))))
        assert jobs(transport) == []
        name = transport.deliver(io.BytesIO(build_packet(2)))  # the queue still works
        assert jobs(transport) == [name]

    def test_nothing_visible_until_complete(self, transport: Transport) -> None:
        gate = threading.Event()
        stream = gated(build_packet(1, b"y" * 200_000), gate)
        result: list[str] = []
        worker = threading.Thread(
            target=lambda: result.append(transport.deliver(cast(BinaryIO, stream)))
        )
        worker.start()
        try:
            assert stream.reached_gate.wait(30)
            assert jobs(transport) == [], "a job name appeared before the job was complete"
        finally:
            gate.set()
            worker.join(60)
        assert jobs(transport) == result

    # -- the create-only claim ----------------------------------------------------
    @needs(Capability.CREATE_ONLY)
    def test_create_only_claim_holds_in_a_race(
        self, transport: Transport, connect: Connect
    ) -> None:
        """Two senders (two connections) delivering one name, both past any
        existence check before either completes: with ``create-only`` exactly
        one may win, and the job is the winner's, whole."""
        senders = [connect(), connect()]
        name = "fspl-00000000-0000-4000-8000-00000000cafe.fspl"
        gate = threading.Event()
        packets = [build_packet(seq, bytes([64 + seq]) * 150_000) for seq in (1, 2)]
        streams = [gated(packet, gate) for packet in packets]
        outcomes: dict[int, BaseException | str] = {}

        def deliver(index: int) -> None:
            try:
                stream = cast(BinaryIO, streams[index])
                outcomes[index] = senders[index].deliver(stream, name=name)
            except BaseException as exc:  # judged below, in the main thread
                outcomes[index] = exc

        workers = [threading.Thread(target=deliver, args=(i,)) for i in (0, 1)]
        for worker in workers:
            worker.start()
        try:
            for gated_stream in streams:
                assert gated_stream.reached_gate.wait(30), "a delivery never started streaming"
        finally:
            gate.set()
            for worker in workers:
                worker.join(60)
        assert not any(worker.is_alive() for worker in workers), "a delivery hung"
        winners = [i for i, outcome in outcomes.items() if outcome == name]
        losers = [o for o in outcomes.values() if isinstance(o, FileExistsError)]
        assert len(winners) == 1 and len(losers) == 1, outcomes
        assert jobs(transport) == [name]
        with transport.open_job(name) as job:
            assert read_all(job) == packets[winners[0]]
