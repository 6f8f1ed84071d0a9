"""Conformance tests of the sequence state and its lock: the ``process``
claim (a persistent, exclusive sequence lock) and the ``lease`` claim (a
:mod:`spooler.lease` lock on ``lock_store``, with its whole protocol)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ..errors import LockError, SpoolError
from ..lease import Lease, LeaseStore, Observations, boot_id
from ..queue import Queue
from ..transport import Capability, Transport
from .base import Connect, TransportFixtures, needs

#: Makes a Lease on the transport's lock store: ``factory(ttl=60.0, clock=None)``.
LeaseFactory = Callable[..., Lease]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def foreign_lock(pid: int = 4242, here: bool = False, expires: float = 0.0) -> bytes:
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


def lock_store(transport: Transport) -> LeaseStore:
    """The ``lock_store`` a ``lease`` transport must expose."""
    store = getattr(transport, "lock_store", None)
    assert isinstance(store, LeaseStore), "a lease transport exposes a LeaseStore as lock_store"
    return store


class SequenceTests(TransportFixtures):
    """The sequence state (``lock_sequence``, ``peek_sequence``) and the lock."""

    # -- the process claim ---------------------------------------------------------
    @needs(Capability.PROCESS)
    def test_sequence_starts_at_one_and_persists(
        self, transport: Transport, connect: Connect
    ) -> None:
        with transport.lock_sequence() as state:
            assert state.read() == 1
            state.write(42)
        with connect().lock_sequence() as state:
            assert state.read() == 42
        assert connect().peek_sequence().next_seq == 42

    @needs(Capability.PROCESS)
    def test_lock_is_exclusive(self, transport: Transport, connect: Connect) -> None:
        other = connect()
        with transport.lock_sequence(), pytest.raises(LockError), other.lock_sequence():
            pass
        with other.lock_sequence() as state:  # released: now it works
            assert state.read() == 1

    # -- the lease claim and the lock protocol -------------------------------------
    @needs(Capability.LEASE)
    def test_lease_claim_locks_through_lock_store(self, transport: Transport) -> None:
        """``lease``: holding the sequence lock is a document in ``lock_store``
        that names this process, and releasing it removes it."""
        store = lock_store(transport)
        assert store.read() is None
        with transport.lock_sequence():
            held = store.read()
            assert held is not None, "lock_sequence held no lock in lock_store"
            doc = json.loads(held.body)
            assert (doc["host"], doc["pid"]) == (socket.gethostname(), os.getpid())
            assert transport.peek_sequence().holder is not None
        assert store.read() is None

    @needs(Capability.LEASE)
    def test_lock_age_comes_from_the_storage_clock(self, transport: Transport) -> None:
        """A store that reports ages (``LockCopy.age``, ``measure_age``) measures
        them on one clock: a lock just made is seconds old, not hours (a
        timezone or a client clock mixed in)."""
        store = lock_store(transport)
        store.create(foreign_lock())
        copy = store.read()
        assert copy is not None
        age = store.measure_age(copy)
        if age is None:
            pytest.skip("the lock store reports no ages (breaking is by observation only)")
        assert -1.0 <= age < 60.0, f"a new lock is {age} s old"

    @pytest.fixture
    def lease_factory(self, transport: Transport, tmp_path: Path) -> Iterator[LeaseFactory]:
        """Factory of Leases on the transport's lock store, each with its own
        fake monotonic clock and this test's observation directory."""
        self.require(transport, Capability.LEASE)
        store = lock_store(transport)
        made: list[Lease] = []

        def factory(ttl: float = 60.0, clock: Clock | None = None) -> Lease:
            lease = Lease(
                store,
                transport.location,
                ttl,
                clock=clock or Clock(),
                observations=Observations(str(tmp_path / "observed")),
            )
            made.append(lease)
            return lease

        yield factory
        for lease in made:
            lease.abandon()

    @needs(Capability.LEASE)
    def test_lock_contention_and_release(self, lease_factory: LeaseFactory) -> None:
        first, second = lease_factory(), lease_factory()
        first.acquire()
        with pytest.raises(LockError, match="being processed"):
            second.acquire()
        first.release()
        second.acquire()
        second.release()
        assert second.store.read() is None

    @needs(Capability.LEASE)
    def test_stale_lock_is_broken_by_observation_whatever_the_wall_clock(
        self, lease_factory: LeaseFactory
    ) -> None:
        dead = lease_factory()
        # A holder on another host that died, whose clock was two minutes
        # ahead: its claimed expiry is still in the future, and counts for nothing.
        dead.store.create(foreign_lock(expires=time.time() + 120 + 60))

        def almost_a_ttl() -> tuple[Clock, Lease]:
            clock = Clock()
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

    @needs(Capability.LEASE)
    def test_live_lock_is_never_broken(self, lease_factory: LeaseFactory) -> None:
        holder = lease_factory()
        holder.acquire()
        clock = Clock()
        breaker = lease_factory(ttl=60.0, clock=clock)
        for _ in range(3):
            with pytest.raises(LockError):
                breaker.acquire()
            holder.renew()  # the holder is alive: its lock keeps changing
            clock.now += 61.0
        holder.release()

    @needs(Capability.LEASE)
    def test_dead_holder_on_this_host_is_broken_at_once(self, lease_factory: LeaseFactory) -> None:
        child = subprocess.Popen(["true"])
        child.wait()
        lease = lease_factory()
        lease.store.create(foreign_lock(pid=child.pid, here=True))
        lease.acquire()
        lease.release()

    @needs(Capability.LEASE)
    def test_sequence_writes_are_fenced(self, transport: Transport, connect: Connect) -> None:
        store = lock_store(transport)
        with transport.lock_sequence() as state:
            current = store.read()
            assert current is not None
            store.delete(current.version)  # a breaker took the lock over …
            store.create(foreign_lock())
            with pytest.raises(SpoolError, match="lock"):
                state.write(7)  # … so the old holder must not write
        after = store.read()
        assert after is not None and after.body == foreign_lock()  # its release left it alone
        assert connect().peek_sequence().next_seq == 1

    @needs(Capability.LEASE)
    def test_diagnostics_do_not_touch_a_held_lock(self, transport: Transport) -> None:
        store = lock_store(transport)
        store.create(foreign_lock())
        before = store.read()
        peek = transport.peek_sequence()
        assert peek.holder is not None and peek.next_seq == 1
        Queue(transport).status()
        after = store.read()
        assert before is not None and after is not None
        assert (after.body, after.version) == (before.body, before.version)
