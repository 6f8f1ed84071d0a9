"""Any rclone remote (rclone:REMOTE:PATH), through the rclone binary"""

from __future__ import annotations

from spooler.hookspecs import hookimpl
from spooler.transport import TransportSpec

SPEC = TransportSpec(
    name="rclone",
    schemes=("rclone",),
    factory="spooler_plugins.rclone.transport:RcloneTransport",
    description="Any rclone remote (rclone:REMOTE:PATH), through the rclone binary",
    install_hint="",
)


@hookimpl
def fspl_transports() -> list[TransportSpec]:
    return [SPEC]
