"""Local paths on an rclone FUSE mount: the local layout, delivered mount-safely.

* The temporary file is written in ``jobs/`` itself and renamed there (FUSE
  mounts of object stores have no hard links, and a rename across directories
  may become a copy).
* ``jobs/.fspl-keep`` keeps ``jobs/`` from being empty, since some backends
  drop empty directories.
* A warning says when the mount's settings make a delivered job reach the
  remote only later (VFS write caching).
"""

from __future__ import annotations

import errno
import os
from typing import BinaryIO

from spooler_plugins.local.transport import LocalTransport

from spooler import log
from spooler.layout import PLACEHOLDER
from spooler.transport import HeaderCache

from .mounts import mount_of, mount_options

_log = log.Logger("spooler.rclone-mount")
_warned: set[str] = set()


def cache_mode(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith("--vfs-cache-mode="):
            return arg.split("=", 1)[1]
        if arg == "--vfs-cache-mode" and i + 1 < len(argv):
            return argv[i + 1]
    return "off"


def warn_unsafe(point: str) -> None:
    """Explain, once per mount, when delivery is acknowledged before upload."""
    if point in _warned:
        return
    _warned.add(point)
    mode = cache_mode(mount_options(point))
    if mode in ("writes", "full"):
        _log.warn(
            "%s is an rclone mount with --vfs-cache-mode %s: a delivered job reaches the "
            "remote only when rclone uploads it after the write-back delay; keep the "
            "mount running until then (rclone ... --vfs-write-back 0s shortens the window)",
            point,
            mode,
        )


class RcloneMountTransport(LocalTransport):
    """The local transport, adjusted for rclone FUSE mounts."""

    def _ensure_placeholder(self) -> None:
        path = os.path.join(self.jobs_dir, PLACEHOLDER)
        if not os.path.exists(path):
            with open(path, "wb"):
                pass

    def deliver(self, source: BinaryIO, name: str | None = None) -> str:
        point = mount_of(self.root)
        if point:
            warn_unsafe(point)
        self._ensure_placeholder()
        return super().deliver(source, name)

    def publish(self, temp: str, final: str) -> None:
        """Rename in place; no hard links on FUSE, so check for a clash first."""
        target = self._job_path(final)
        if os.path.lexists(target):
            raise FileExistsError(errno.EEXIST, "Job exists", target)
        os.rename(self._job_path(temp), target)

    def init(self, append_only: bool = False) -> None:
        super().init(append_only)
        self._ensure_placeholder()

    def header_cache(self) -> HeaderCache | None:
        """None: rclone's VFS keeps a path's inode when another machine
        overwrites the object under it (object stores replace in place), so
        the local cache's inode check would not see the change."""
        return None
