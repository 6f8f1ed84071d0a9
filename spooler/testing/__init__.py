"""Transport conformance kit: prove a transport plugin is safe in a few lines.

Every built-in transport runs this kit in the project's own tests, and a
third-party plugin reuses it the same way (install ``filespooler[testing]``)::

    # tests/test_conformance.py of your plugin
    import pytest
    from spooler.testing import TransportSuite

    class TestWebDAV(TransportSuite):
        @pytest.fixture
        def queue_location(self, webdav_server):
            # A fresh location for a queue that does not exist yet.
            return f"webdav://127.0.0.1:{webdav_server.port}/q-{uuid.uuid4()}"

That is all: pytest collects every ``test_*`` method of the kit.  Optional
fixtures to override: ``transport_options`` (the ``-o KEY=VALUE`` options,
as a dict) and ``cli_env`` (environment variables the ``fspl`` command
needs to reach your storage, for the command-line tests).

The kit is laid out like fsspec's ``tests/abstract``: a fixture base,
:class:`TransportFixtures`, and one mixin per area built on it, so that a
plugin can run some areas only, or one area against another backend:

- :class:`DeliveryTests`: init, append-only queues, delivery (whole or not at
  all, unique names, never replacing a job) and the ``create-only`` claim;
- :class:`ReadingTests`: listing, header prefixes, payload streams, ``.out``
  files, delete, and the ``local-fd`` and ``concurrent-headers`` claims;
- :class:`SequenceTests`: the sequence state and its exclusive lock (the
  ``process`` claim) and, for ``lease`` transports, the lock protocol;
- :class:`ProcessingTests`: in-order processing, gaps, failures, the
  command's payload and environment, and the CLI end to end.

:class:`TransportSuite` combines the four.  Capabilities a transport lacks
are declared, not silently skipped: a test that needs one (see
:class:`spooler.transport.Capability`) is skipped with the reason "transport
does not declare capability X" only when the transport's ``capabilities``
omit it (before the queue is made: ``@needs(capability)`` on a test), and
every capability a transport declares is verified.

To test against a real server started by a fixture, ``free_port()`` and
``wait_for_port(port, process)`` do the start-up chores.
"""

from __future__ import annotations

from .base import TransportFixtures, build_packet, needs
from .delivery import DeliveryTests
from .processing import ProcessingTests
from .reading import ReadingTests
from .sequence import SequenceTests
from .servers import free_port, wait_for_port
from .suite import TransportSuite

__all__ = [
    "DeliveryTests",
    "ProcessingTests",
    "ReadingTests",
    "SequenceTests",
    "TransportFixtures",
    "TransportSuite",
    "build_packet",
    "free_port",
    "needs",
    "wait_for_port",
]
