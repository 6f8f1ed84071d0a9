"""The fixture base of the conformance kit, and the helpers its mixins share.

Like fsspec's ``tests/abstract``: the fixtures that reach a transport live
here, once; each area's tests are a mixin built on them (``delivery``,
``reading``, ``sequence``, ``processing``), and a plugin combines the areas
it wants with its own ``queue_location`` fixture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest

from ..api import header
from ..packet import Command
from ..registry import open_transport
from ..transport import Transport, is_job_name

#: A factory of new transports (new connections) to the queue under test.
Connect = Callable[[], Transport]

Test = TypeVar("Test", bound=Callable[..., None])


def needs(capability: str) -> Callable[[Test], Test]:
    """Mark a test as needing ``capability``: without it the test is skipped
    with that reason before the queue is even created."""

    def mark(test: Test) -> Test:
        test.fspl_needs = capability  # type: ignore[attr-defined]
        return test

    return mark


def build_packet(seq: int, payload: bytes = b"", params: tuple[bytes, ...] = ()) -> bytes:
    """A Command packet with a fixed ctime (ordering by seq is what we test)."""
    return header(Command(params, ()), seq=seq, ctime=(1_700_000_000 + seq, 0)) + payload


def jobs(transport: Transport) -> list[str]:
    """The job names (``fspl-*.fspl``) the transport lists, sorted."""
    return sorted(n for n in transport.list_names() if is_job_name(n))


def read_all(stream: Any) -> bytes:
    """Everything ``stream.read()`` gives until end of file."""
    parts = []
    while chunk := stream.read(1 << 20):
        parts.append(chunk)
    return b"".join(parts)


class TransportFixtures:
    """The fixtures every mixin of the kit uses; a plugin overrides
    ``queue_location`` (required) and, if needed, ``transport_options``
    and ``cli_env``."""

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
    def connect(self, queue_location: str, transport_options: dict[str, str]) -> Iterator[Connect]:
        """Factory: a new Transport (a new connection) to the queue location,
        closed at the end of the test."""
        opened: list[Transport] = []

        def factory() -> Transport:
            transport = open_transport(queue_location, transport_options)
            opened.append(transport)
            return transport

        yield factory
        for transport in opened:
            transport.close()

    @pytest.fixture
    def transport(self, connect: Connect, request: pytest.FixtureRequest) -> Transport:
        """A transport to a freshly initialised queue (unless the test
        :func:`needs` a capability the transport lacks: then it is skipped)."""
        transport = connect()
        needed = getattr(request.function, "fspl_needs", None)
        if needed is not None:
            self.require(transport, needed)
        transport.init()
        return transport

    @staticmethod
    def require(transport: Transport, capability: str) -> None:
        """Skip (with the reason) unless the transport declares ``capability``."""
        if capability not in transport.capabilities:
            pytest.skip(f"transport does not declare capability {capability!r}")
