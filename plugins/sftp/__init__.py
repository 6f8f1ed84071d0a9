"""Directories on SSH servers over SFTP (sftp://[USER@]HOST[:PORT]/PATH)"""

from __future__ import annotations

from spooler.hookspecs import hookimpl
from spooler.transport import TransportSpec

SPEC = TransportSpec(
    name="sftp",
    schemes=("sftp",),
    factory="spooler_plugins.sftp.transport:SFTPTransport",
    description="Directories on SSH servers over SFTP (sftp://[USER@]HOST[:PORT]/PATH)",
    install_hint="filespooler[sftp]",
)


@hookimpl
def fspl_transports() -> list[TransportSpec]:
    return [SPEC]
