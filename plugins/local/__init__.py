"""Local directories: plain paths and ``file://`` URLs."""

from __future__ import annotations

from spooler.hookspecs import hookimpl
from spooler.transport import TransportSpec

SPEC = TransportSpec(
    name="local",
    schemes=("file",),
    factory="spooler_plugins.local.transport:LocalTransport",
    description="Local directories (plain paths and file:// URLs)",
)


@hookimpl
def fspl_transports() -> list[TransportSpec]:
    return [SPEC]
