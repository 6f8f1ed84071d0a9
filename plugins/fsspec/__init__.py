"""Any fsspec filesystem (memory://, gcs://, abfs://, …) by its URL"""

from __future__ import annotations

from spooler.plugin import TransportSpec, provide

fspl_transports = provide(
    TransportSpec(
        name="fsspec",
        schemes=("*", "memory"),
        factory="spooler_plugins.fsspec.transport:FsspecTransport",
        description="Any fsspec filesystem (memory://, gcs://, abfs://, …) by its URL",
        requires=("fsspec",),
        install_hint="filespooler[fsspec]",
    )
)
