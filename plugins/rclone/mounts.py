"""Finding rclone FUSE mounts, cheaply (this runs for every local queue)."""

from __future__ import annotations

import os

MOUNTINFO = "/proc/self/mountinfo"
FSTYPE = "fuse.rclone"


def _unescape(field: str) -> str:
    return (
        field.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def rclone_mountpoints() -> list[str]:
    """Mount points of rclone FUSE mounts, from the mount table."""
    try:
        with open(MOUNTINFO, encoding="utf-8", errors="replace") as fh:
            lines = fh.readlines()
    except OSError:
        return []
    points = []
    for line in lines:
        left, sep, right = line.partition(" - ")
        if sep and right.split(" ", 1)[0] == FSTYPE:
            points.append(_unescape(left.split(" ")[4]))
    return points


def mount_of(path: str) -> str | None:
    """The rclone mount holding ``path`` or its ``jobs/`` (Filespooler's
    manual advises mounting only ``jobs/``), or None."""
    points = rclone_mountpoints()
    if not points:
        return None
    base = os.path.realpath(path)
    for candidate in (os.path.realpath(os.path.join(base, "jobs")), base):
        for point in sorted(points, key=len, reverse=True):
            if candidate == point or candidate.startswith(point.rstrip("/") + "/"):
                return point
    return None


def mount_options(point: str) -> list[str]:
    """The command line of the ``rclone mount`` serving ``point`` (if visible)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = [a.decode("utf-8", "replace") for a in fh.read().split(b"\0") if a]
        except OSError:
            continue
        if (
            argv
            and os.path.basename(argv[0]) == "rclone"
            and "mount" in argv
            and (point in argv or point.rstrip("/") in argv)
        ):
            return argv
    return []
