"""The conformance tests (see the package docstring for how to use them)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

import pytest

from ..api import header, process
from ..errors import LockError, SpoolError
from ..lease import Lease, Observations, boot_id
from ..packet import Command, Special
from ..queue import OnError, Queue
from ..registry import open_transport
from ..transport import Capability, Transport, is_job_name

UUID_NAME = r"^fspl-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.fspl$"


def build_packet(seq: int, payload: bytes = b"", params: tuple[bytes, ...] = ()) -> bytes:
    """A Command packet with a fixed ctime (ordering by seq is what we test)."""
    return header(Command(params, ()), seq=seq, ctime=(1_700_000_000 + seq, 0)) + payload


class _FailingStream(io.RawIOBase):
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


class _GatedStream(io.RawIOBase):
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


def _jobs(transport: Transport) -> list[str]:
    return sorted(n for n in transport.list_names() if is_job_name(n))


class TransportSuite:
    """Mixin of conformance tests; subclass and provide ``queue_location``."""

    #: False for storage that lives inside one process (``memory://``): the
    #: command-line test, which runs ``fspl`` in a subprocess, is then skipped.
    shared_between_processes = True

    # -- fixtures a plugin provides or may override ------------------------
    @pytest.fixture
    def queue_location(self) -> str:
        raise NotImplementedError("override the queue_location fixture")

    @pytest.fixture
    def transport_options(self) -> dict[str, str]:
        return {}

    @pytest.fixture
    def cli_env(self) -> dict[str, str]:
        return {}

    # -- fixtures of the kit ------------------------------------------------
    @pytest.fixture
    def connect(self, queue_location: str, transport_options: dict[str, str]) -> Iterator[Any]:
        """Factory: a new Transport (a new connection) to the queue location."""
        opened: list[Transport] = []

        def factory() -> Transport:
            transport = open_transport(queue_location, transport_options)
            opened.append(transport)
            return transport

        yield factory
        for transport in opened:
            transport.close()

    @pytest.fixture
    def transport(self, connect: Any) -> Transport:
        transport: Transport = connect()
        transport.init()
        return transport

    @staticmethod
    def require(transport: Transport, capability: str) -> None:
        if capability not in transport.capabilities:
            pytest.skip(f"transport does not declare capability {capability!r}")

    # -- structure ------------------------------------------------------------
    def test_init_then_empty(self, transport: Transport) -> None:
        assert _jobs(transport) == []
        assert not transport.is_append_only()

    def test_init_twice_fails(self, transport: Transport, connect: Any) -> None:
        with pytest.raises((SpoolError, OSError)):
            connect().init()

    def test_append_only_queue(self, connect: Any) -> None:
        transport = connect()
        transport.init(append_only=True)
        assert transport.is_append_only()
        name = transport.deliver(io.BytesIO(build_packet(1)))
        assert _jobs(transport) == [name]
        with pytest.raises(SpoolError, match="append-only"), transport.lock_sequence():
            pass

    # -- delivery ---------------------------------------------------------------
    def test_deliver_round_trip(self, transport: Transport) -> None:
        data = build_packet(1, b"payload bytes\x00\xff")
        name = transport.deliver(io.BytesIO(data))
        assert is_job_name(name)
        assert re.match(UUID_NAME, name)
        assert _jobs(transport) == [name]
        with transport.open_job(name) as stream:
            assert _read_all(stream) == data

    def test_names_are_unique(self, transport: Transport) -> None:
        names = {transport.deliver(io.BytesIO(build_packet(i))) for i in range(1, 13)}
        assert len(names) == 12
        assert set(_jobs(transport)) == names

    def test_deliver_never_replaces_an_existing_name(self, transport: Transport) -> None:
        first = build_packet(1, b"the original")
        name = transport.deliver(io.BytesIO(first))
        with pytest.raises(FileExistsError):
            transport.deliver(io.BytesIO(build_packet(2, b"an impostor")), name=name)
        assert _jobs(transport) == [name]
        with transport.open_job(name) as stream:
            assert _read_all(stream) == first

    def test_failed_delivery_leaves_no_job(self, transport: Transport) -> None:
        with pytest.raises((OSError, SpoolError), match="simulated"):
            transport.deliver(cast(BinaryIO, _FailingStream(build_packet(1, b"x" * 300_000))))
        assert _jobs(transport) == []
        name = transport.deliver(io.BytesIO(build_packet(2)))  # the queue still works
        assert _jobs(transport) == [name]

    def test_nothing_visible_until_complete(self, transport: Transport) -> None:
        data = build_packet(1, b"y" * 200_000)
        gate = threading.Event()
        stream = _GatedStream(data[:100_000], data[100_000:], gate)
        result: list[str] = []
        worker = threading.Thread(
            target=lambda: result.append(transport.deliver(cast(BinaryIO, stream)))
        )
        worker.start()
        try:
            assert stream.reached_gate.wait(30)
            assert _jobs(transport) == [], "a job name appeared before the job was complete"
        finally:
            gate.set()
            worker.join(60)
        assert _jobs(transport) == result

    # -- reading ----------------------------------------------------------------
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
        assert isinstance(job.meta.cmd, Command)
        assert job.meta.cmd.params == params

    def test_unparsable_files_are_ignored(self, transport: Transport) -> None:
        good = transport.deliver(io.BytesIO(build_packet(1)))
        transport.deliver(io.BytesIO(b"not a packet at all"))
        assert [job.name for job in Queue(transport).scan()] == [good]

    def test_delete(self, transport: Transport) -> None:
        name = transport.deliver(io.BytesIO(build_packet(1)))
        transport.delete(name)
        assert _jobs(transport) == []
        with pytest.raises(FileNotFoundError):
            transport.open_job(name)

    def test_output_file(self, transport: Transport) -> None:
        name = transport.deliver(io.BytesIO(build_packet(1)))
        with transport.open_output(name + ".out") as out:
            os.write(out.fileno(), b"captured output\n")
        assert name + ".out" in transport.list_names()
        with transport.open_job(name + ".out") as stream:
            assert _read_all(stream) == b"captured output\n"

    def test_job_location(self, transport: Transport) -> None:
        assert transport.job_location("fspl-x.fspl").endswith("/jobs/fspl-x.fspl")

    # -- sequence state ------------------------------------------------------------
    def test_sequence_starts_at_one_and_persists(self, transport: Transport, connect: Any) -> None:
        self.require(transport, Capability.PROCESS)
        with transport.lock_sequence() as state:
            assert state.read() == 1
            state.write(42)
        with connect().lock_sequence() as state:
            assert state.read() == 42

    def test_lock_is_exclusive(self, transport: Transport, connect: Any) -> None:
        self.require(transport, Capability.PROCESS)
        other = connect()
        with transport.lock_sequence(), pytest.raises(LockError), other.lock_sequence():
            pass
        with other.lock_sequence() as state:  # released: now it works
            assert state.read() == 1

    # -- the lock protocol (transports built on spooler.lease) -------------------
    @pytest.fixture
    def lease_factory(self, transport: Transport, tmp_path: Any) -> Iterator[Any]:
        """Factory of Leases on the transport's lock store, each with its own
        fake monotonic clock and this test's observation directory."""
        self.require(transport, Capability.LEASE)
        store = transport.lock_store  # type: ignore[attr-defined]
        made: list[Lease] = []

        def factory(ttl: float = 60.0, clock: _Clock | None = None) -> Lease:
            lease = Lease(
                store,
                transport.location,
                ttl,
                clock=clock or _Clock(),
                observations=Observations(str(tmp_path / "observed")),
            )
            made.append(lease)
            return lease

        yield factory
        for lease in made:
            lease.abandon()

    def test_lock_contention_and_release(self, lease_factory: Any) -> None:
        first, second = lease_factory(), lease_factory()
        first.acquire()
        with pytest.raises(LockError, match="being processed"):
            second.acquire()
        first.release()
        second.acquire()
        second.release()
        assert second.store.read() is None

    def test_stale_lock_is_broken_by_observation_whatever_the_wall_clock(
        self, lease_factory: Any
    ) -> None:
        dead = lease_factory()
        # A holder on another host that died, whose clock was two minutes
        # ahead: its claimed expiry is still in the future, and counts for nothing.
        dead.store.create(_foreign_lock(expires=time.time() + 120 + 60))

        def almost_a_ttl() -> tuple[_Clock, Any]:
            clock = _Clock()
            breaker = lease_factory(ttl=60.0, clock=clock)
            with pytest.raises(LockError):
                breaker.acquire()  # first seen now
            clock.now += 59.0
            with pytest.raises(LockError):
                breaker.acquire()  # not yet a full TTL unchanged
            return clock, breaker

        almost_a_ttl()
        clock, breaker = almost_a_ttl()  # a second processor: its own count
        clock.now += 2.0
        breaker.acquire()  # seen unchanged for a full TTL on its own clock
        breaker.release()

    def test_live_lock_is_never_broken(self, lease_factory: Any) -> None:
        holder = lease_factory()
        holder.acquire()
        clock = _Clock()
        breaker = lease_factory(ttl=60.0, clock=clock)
        for _ in range(3):
            with pytest.raises(LockError):
                breaker.acquire()
            holder.renew()  # the holder is alive: its lock keeps changing
            clock.now += 61.0
        holder.release()

    def test_dead_holder_on_this_host_is_broken_at_once(self, lease_factory: Any) -> None:
        child = subprocess.Popen(["true"])
        child.wait()
        lease = lease_factory()
        lease.store.create(_foreign_lock(pid=child.pid, here=True))
        lease.acquire()
        lease.release()

    def test_sequence_writes_are_fenced(self, transport: Transport, connect: Any) -> None:
        self.require(transport, Capability.LEASE)
        with transport.lock_sequence() as state:
            store = transport.lock_store  # type: ignore[attr-defined]
            current = store.read()
            store.delete(current.version)  # a breaker took the lock over …
            store.create(_foreign_lock())
            with pytest.raises(SpoolError, match="lock"):
                state.write(7)  # … so the old holder must not write
        assert store.read().body == _foreign_lock()  # and its release left it alone
        assert connect().peek_sequence().next_seq == 1

    def test_diagnostics_do_not_touch_a_held_lock(self, transport: Transport) -> None:
        self.require(transport, Capability.LEASE)
        store = transport.lock_store  # type: ignore[attr-defined]
        store.create(_foreign_lock())
        before = store.read()
        peek = transport.peek_sequence()
        assert peek.holder is not None and peek.next_seq == 1
        Queue(transport).status()
        assert store.read() == before

    # -- processing ----------------------------------------------------------------
    def test_out_of_order_delivery_runs_in_order(self, transport: Transport) -> None:
        self.require(transport, Capability.PROCESS)
        for seq in (3, 1, 4, 2):
            transport.deliver(io.BytesIO(build_packet(seq, b"job %d" % seq)))
        seen: list[bytes] = []
        ran = process(Queue(transport), callback=lambda meta, stream: seen.append(stream.read()))
        assert ran == 4
        assert seen == [b"job 1", b"job 2", b"job 3", b"job 4"]
        assert _jobs(transport) == []
        with transport.lock_sequence() as state:
            assert state.read() == 5

    def test_gap_stops_processing(self, transport: Transport) -> None:
        self.require(transport, Capability.PROCESS)
        for seq in (1, 3):
            transport.deliver(io.BytesIO(build_packet(seq)))
        assert process(Queue(transport), callback=lambda meta, stream: True) == 1
        assert len(_jobs(transport)) == 1
        assert Queue(transport).status().stalled

    def test_failure_under_retry_keeps_job(self, transport: Transport) -> None:
        self.require(transport, Capability.PROCESS)
        transport.deliver(io.BytesIO(header(Special.FAIL, seq=1)))
        with pytest.raises(SpoolError):
            process(Queue(transport), callback=lambda meta, stream: True)
        assert len(_jobs(transport)) == 1
        assert process(Queue(transport), callback=lambda m, s: True, on_error=OnError.DELETE) == 1
        assert _jobs(transport) == []

    def test_command_gets_payload_and_environment(
        self, transport: Transport, tmp_path: Any
    ) -> None:
        self.require(transport, Capability.PROCESS)
        payload = b"hello through the transport\n" * 1000
        name = transport.deliver(io.BytesIO(build_packet(1, payload)))
        script = (
            "import os,sys,hashlib;"
            "d=sys.stdin.buffer.read();"
            "open(sys.argv[1],'w').write("
            "os.environ['FSPL_JOB_FILENAME']+' '+hashlib.sha256(d).hexdigest())"
        )
        out = tmp_path / "result"
        process(Queue(transport), command=[sys.executable, "-c", script, str(out)])
        assert out.read_text() == f"{name} {hashlib.sha256(payload).hexdigest()}"

    # -- command line ----------------------------------------------------------------
    def test_cli_write_ls_process(
        self, transport: Transport, queue_location: str, cli_env: dict[str, str]
    ) -> None:
        if not self.shared_between_processes:
            pytest.skip("storage is private to one process (shared_between_processes = False)")
        env = {**os.environ, **cli_env}

        def fspl(*args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                [sys.executable, "-m", "spooler", *args],
                input=data,
                capture_output=True,
                env=env,
                timeout=120,
            )

        for seq in (2, 1):
            assert fspl("queue-write", "-q", queue_location, data=build_packet(seq)).returncode == 0
        listing = fspl("queue-ls", "-q", queue_location)
        assert listing.returncode == 0, listing.stderr
        rows = listing.stdout.decode().splitlines()
        assert rows[0].startswith("ID ") and [r.split()[0] for r in rows[1:]] == ["1", "2"]
        if Capability.PROCESS in transport.capabilities:
            ran = fspl("queue-process", "-q", queue_location, "true")
            assert ran.returncode == 0, ran.stderr
            assert _jobs(transport) == []


class _Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _foreign_lock(pid: int = 4242, here: bool = False, expires: float = 0.0) -> bytes:
    """A lock document of a holder that is not running these tests."""
    doc: dict[str, Any] = {
        "owner": "someone-else",
        "host": "elsewhere.example",
        "boot": "",
        "pid": pid,
        "expires": expires,
    }
    if here:
        doc.update(host=socket.gethostname(), boot=boot_id())
    return json.dumps(doc).encode()


def _read_all(stream: Any) -> bytes:
    parts = []
    while chunk := stream.read(1 << 20):
        parts.append(chunk)
    return b"".join(parts)
