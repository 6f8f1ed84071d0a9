"""Directories on SSH servers over SFTP (sftp://[USER@]HOST[:PORT]/PATH)"""

from __future__ import annotations

from spooler.hookspecs import provide
from spooler.transport import TransportSpec

fspl_transports = provide(
    TransportSpec(
        name="sftp",
        schemes=("sftp",),
        factory="spooler_plugins.sftp.transport:SFTPTransport",
        description="Directories on SSH servers over SFTP (sftp://[USER@]HOST[:PORT]/PATH)",
        install_hint="filespooler[sftp]",
    )
)
