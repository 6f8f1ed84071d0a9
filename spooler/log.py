"""A tiny levelled logger writing ``LEVEL target: message`` lines to stderr.

The stdlib ``logging`` package costs several milliseconds to import and we
start a process per job on many systems, so the five levels the reference
exposes (trace, debug, info, warn, error) are implemented here directly.  The
line format follows the reference (level right-aligned to five characters).
Messages are built lazily: pass %-style arguments so that a disabled level
costs one call and one integer comparison (the processing loop logs several
debug lines per job).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from .redact import redact

TRACE, DEBUG, INFO, WARN, ERROR = 5, 4, 3, 2, 1
_NAMES = {"trace": TRACE, "debug": DEBUG, "info": INFO, "warn": WARN, "error": ERROR}
_LABELS = {TRACE: "TRACE", DEBUG: "DEBUG", INFO: " INFO", WARN: " WARN", ERROR: "ERROR"}
LEVEL_NAMES = tuple(_NAMES)

_level = INFO
#: What goes before every message, for processes that work on several queues
#: at once (``fspl serve`` names the queue a worker thread is on); None: nothing.
_context: Callable[[], str] | None = None


def parse_level(text: str) -> int:
    """Accept a level name in any case, or a digit 1 (error) … 5 (trace)."""
    key = text.strip().lower()
    if key in _NAMES:
        return _NAMES[key]
    if key.isdigit() and 1 <= int(key) <= 5:
        return int(key)
    raise ValueError(f"invalid log level {text!r}; expected one of {', '.join(LEVEL_NAMES)}")


def set_level(level: int) -> None:
    global _level
    _level = level


def set_context(source: Callable[[], str] | None) -> None:
    global _context
    _context = source


def enabled(level: int) -> bool:
    return level <= _level


class Logger:
    """Named logger; the name is printed as the line's target."""

    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        self.target = target

    def log(self, level: int, msg: str, *args: object) -> None:
        if level > _level:
            return
        text = msg % args if args else msg
        if _context is not None:
            text = _context() + text
        line = f"{_LABELS[level]} {self.target}: {redact(text)}\n"
        try:
            os.write(sys.stderr.fileno(), line.encode("utf-8", "backslashreplace"))
        except OSError:
            pass  # a closed stderr must never turn a log line into a failure

    def trace(self, msg: str, *args: object) -> None:
        if _level >= TRACE:
            self.log(TRACE, msg, *args)

    def debug(self, msg: str, *args: object) -> None:
        if _level >= DEBUG:
            self.log(DEBUG, msg, *args)

    def info(self, msg: str, *args: object) -> None:
        if _level >= INFO:
            self.log(INFO, msg, *args)

    def warn(self, msg: str, *args: object) -> None:
        if _level >= WARN:
            self.log(WARN, msg, *args)

    def error(self, msg: str, *args: object) -> None:
        if _level >= ERROR:
            self.log(ERROR, msg, *args)
