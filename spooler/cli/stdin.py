"""Packets on stdin: stdin-info, stdin-payload."""

from __future__ import annotations

import os

from ..jobenv import job_environment, render_info
from ..packet import Header, read_header
from ..streams import copy_fd
from . import options


def read_stdin_header() -> Header:
    """Read exactly the header from fd 0, leaving it at the payload."""
    return read_header(lambda size: os.read(0, size))


@options.command("stdin-info")
def stdin_info() -> None:
    """Print the environment of the packet on stdin (reads only its header)."""
    options.emit(render_info(job_environment(read_stdin_header().meta)))


@options.command("stdin-payload")
def stdin_payload() -> None:
    """Write the payload of the packet on stdin to stdout."""
    read_stdin_header()
    copy_fd(0, 1)
