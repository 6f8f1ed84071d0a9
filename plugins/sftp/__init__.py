"""Directories on SSH servers over SFTP (sftp://[USER@]HOST[:PORT]/PATH)"""

from __future__ import annotations

import warnings

from spooler.plugin import TransportSpec, provide

# paramiko 2.x names ciphers that current cryptography releases keep only
# with a warning, printed when paramiko is imported: not for fspl's stderr.
warnings.filterwarnings("ignore", r"(TripleDES|Blowfish) has been moved", module=r"paramiko\.")

fspl_transports = provide(
    TransportSpec(
        name="sftp",
        schemes=("sftp",),
        factory="spooler_plugins.sftp.transport:SFTPTransport",
        description="Directories on SSH servers over SFTP (sftp://[USER@]HOST[:PORT]/PATH)",
        requires=("paramiko",),
        install_hint="filespooler[sftp]",
    )
)
