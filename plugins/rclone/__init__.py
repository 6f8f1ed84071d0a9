"""Any rclone remote (rclone:REMOTE:PATH), through the rclone binary"""

from __future__ import annotations

from spooler.hookspecs import provide
from spooler.transport import TransportSpec

fspl_transports = provide(
    TransportSpec(
        name="rclone",
        schemes=("rclone",),
        factory="spooler_plugins.rclone.transport:RcloneTransport",
        description="Any rclone remote (rclone:REMOTE:PATH), through the rclone binary",
        install_hint="",
    )
)
