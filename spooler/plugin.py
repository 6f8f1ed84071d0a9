"""Everything a transport plugin needs to import, in one place.

Quick start (the whole plugin module of a third-party transport; see
docs/plugins.md for the walk-through and ``examples/fspl-webdav`` for a
complete, tested one)::

    # pyproject.toml
    [project.entry-points.filespooler]
    mystore = "fspl_mystore.plugin"

    # fspl_mystore/plugin.py: imported whenever fspl resolves a scheme no
    # built-in knows, so keep it free of heavy imports.
    from spooler.plugin import TransportSpec, provide

    fspl_transports = provide(
        TransportSpec(
            name="mystore",
            schemes=("mystore",),
            factory="fspl_mystore.transport:MyStoreTransport",  # imported on first use
            description="Queues on MyStore",
            install_hint="fspl-mystore",
        )
    )

    # fspl_mystore/transport.py
    from spooler.plugin import Capability, Transport

    class MyStoreTransport(Transport):
        capabilities = frozenset({Capability.PROCESS})
        ...  # list_names, open_job, deliver, delete, open_output, init,
             # is_append_only, lock_sequence (see spooler.transport)

Write the hook by hand with ``@hookimpl`` when the list is computed, and
implement ``fspl_claim_path`` to claim plain local paths (see
:mod:`spooler.hookspecs`).  Building blocks for the hard parts live in their
own modules, imported by the transport module (not here, to keep plugin
registration cheap): :class:`spooler.delivery.StagedTransport` (atomic
create-only delivery), :mod:`spooler.lease` (the lock protocol for storages
without flock), and :mod:`spooler.testing` (the conformance kit your tests
inherit).  ``Option`` and ``parse_options`` parse ``-o KEY=VALUE`` as the
built-in transports do; ``explains`` registers the one-line message for a
library's exception (see :mod:`spooler.failures`).  Names exported here are the stable plugin API.
"""

from __future__ import annotations

from .errors import UsageError
from .failures import explains
from .markers import hookimpl, provide
from .spec import TransportSpec
from .transport import Capability, SequencePeek, SequenceState, Transport
from .transport_options import Option
from .transport_options import parse as parse_options

__all__ = [
    "Capability",
    "Option",
    "SequencePeek",
    "SequenceState",
    "Transport",
    "TransportSpec",
    "UsageError",
    "explains",
    "hookimpl",
    "parse_options",
    "provide",
]
