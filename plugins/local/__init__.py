"""Local directories: plain paths and ``file://`` URLs."""

from __future__ import annotations

# Not spooler.plugin (the facade): every local command imports this package.
from spooler.markers import provide
from spooler.spec import TransportSpec

fspl_transports = provide(
    TransportSpec(
        name="local",
        schemes=("file",),
        factory="spooler_plugins.local.transport:LocalTransport",
        description="Local directories (plain paths and file:// URLs)",
    )
)
