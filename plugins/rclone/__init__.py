"""rclone: remotes (``rclone:REMOTE:PATH``) and local paths on rclone FUSE mounts."""

from __future__ import annotations

# Not spooler.plugin (the facade): local commands ask this package's claim hook.
from spooler.markers import hookimpl, provide
from spooler.spec import TransportSpec

REMOTE = TransportSpec(
    name="rclone",
    schemes=("rclone",),
    factory="spooler_plugins.rclone.transport:RcloneTransport",
    description="Any rclone remote (rclone:REMOTE:PATH), through the rclone binary",
)
MOUNT = TransportSpec(
    name="rclone-mount",
    schemes=(),
    factory="spooler_plugins.rclone.mounted:RcloneMountTransport",
    description="Local paths on an rclone FUSE mount (claimed automatically)",
)

fspl_transports = provide(REMOTE, MOUNT)


@hookimpl
def fspl_claim_path(path: str) -> TransportSpec | None:
    from .mounts import mount_of

    return MOUNT if mount_of(path) else None
