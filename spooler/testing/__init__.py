"""Transport conformance kit: prove a transport plugin is safe in a few lines.

Every built-in transport runs this suite in the project's own tests, and a
third-party plugin reuses it the same way (install ``filespooler[testing]``)::

    # tests/test_conformance.py of your plugin
    import pytest
    from spooler.testing import TransportSuite

    class TestWebDAV(TransportSuite):
        @pytest.fixture
        def queue_location(self, webdav_server):
            # A fresh location for a queue that does not exist yet.
            return f"webdav://127.0.0.1:{webdav_server.port}/q-{uuid.uuid4()}"

That is all: pytest collects every ``test_*`` method of the suite.  Optional
fixtures to override: ``transport_options`` (the ``-o KEY=VALUE`` options,
as a dict) and ``cli_env`` (environment variables the ``fspl`` command
needs to reach your storage, for the command-line tests).

What is checked: the delivery rules (nothing visible under ``fspl-*.fspl``
until complete, unique names, a failed delivery leaves no job), listing,
header reads, payload streaming, delete, ``.out`` files, append-only
queues, the sequence lock (exclusive, non-blocking), out-of-order
processing, failure handling, and the CLI end to end.

Capabilities a transport lacks are declared, not silently skipped: a test
that needs one (see :class:`spooler.transport.Capability`) is skipped with
the reason "transport does not declare capability X" only when the
transport's ``capabilities`` omit it.

To test against a real server started by a fixture, ``free_port()`` and
``wait_for_port(port, process)`` do the start-up chores.
"""

from __future__ import annotations

from .servers import free_port, wait_for_port
from .suite import TransportSuite, build_packet

__all__ = ["TransportSuite", "build_packet", "free_port", "wait_for_port"]
