"""Local directories: plain paths and ``file://`` URLs."""

from __future__ import annotations

from spooler.plugin import TransportSpec, provide

fspl_transports = provide(
    TransportSpec(
        name="local",
        schemes=("file",),
        factory="spooler_plugins.local.transport:LocalTransport",
        description="Local directories (plain paths and file:// URLs)",
    )
)
