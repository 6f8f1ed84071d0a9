"""Starting real servers for transport tests: a free loopback port, and
waiting until the server listens on it (or fail with why, not hang)."""

from __future__ import annotations

import os
import socket
import subprocess
import time


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20) -> None:
    """Return once 127.0.0.1:``port`` accepts connections; raise
    RuntimeError if ``process`` exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                args = process.args
                name = os.fsdecode(args[0] if isinstance(args, (list, tuple)) else args)  # type: ignore[arg-type]
                raise RuntimeError(f"{name} did not start listening on port {port}") from None
            time.sleep(0.1)
