"""Upload progress on stderr, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
import time


class Progress:
    """``NAME: N MiB sent``, redrawn at most five times a second."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent = 0
        self.enabled = sys.stderr.isatty()
        self._last = 0.0

    def add(self, size: int) -> None:
        self.sent += size
        if self.enabled and time.monotonic() - self._last > 0.2:
            self._last = time.monotonic()
            sys.stderr.write(f"\r{self.name}: {self.sent / 1048576:.0f} MiB sent")
            sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self.sent:
            sys.stderr.write(f"\r{self.name}: {self.sent / 1048576:.0f} MiB sent\n")
