"""filespooler: sequential, distributed, file-based job queues.

A drop-in ``fspl`` (packets and queues interchangeable with Filespooler
1.2.2) whose queues live on pluggable transports.  The public Python API is
re-exported here lazily, so ``import spooler`` stays cheap for the CLI.
"""

from __future__ import annotations

# Not "from typing import TYPE_CHECKING": importing typing (and re, enum
# with it) is half the start-up of gen-uuid; type checkers know the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

_API = {
    "open_queue": "spooler.api",
    "process": "spooler.api",
    "watch": "spooler.api",
    "Watcher": "spooler.watcher",
    "QueueSpec": "spooler.watcher",
    "move": "spooler.api",
    "make_packet": "spooler.api",
    "header": "spooler.api",
    "command": "spooler.api",
    "write_packet": "spooler.api",
    "Queue": "spooler.queue",
    "Job": "spooler.queue",
    "Order": "spooler.queue",
    "OnError": "spooler.queue",
    "ProcessConfig": "spooler.queue",
    "Meta": "spooler.packet",
    "Command": "spooler.packet",
    "Special": "spooler.packet",
    "Transport": "spooler.transport",
    "TransportSpec": "spooler.spec",
    "SpoolError": "spooler.errors",
}

__all__ = ["__version__", *_API]  # pyright: ignore[reportUnsupportedDunderAll]


def __getattr__(name: str) -> Any:
    module = _API.get(name)
    if module is None:
        raise AttributeError(f"module 'spooler' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
