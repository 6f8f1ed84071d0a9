"""Failures as one ``Error: …`` line and an exit status, without click.

Both ways into a command, the click application (:mod:`.app`) and the
hand-checked fast path (:mod:`.fast`), end here, so that a runtime error
(a missing queue, a held lock, a bad packet…) reads and exits the same
whichever parsed the command line.
"""

from __future__ import annotations

import os

from .. import failures, log
from ..errors import SpoolError, describe_os_error
from ..redact import redact


def fail(message: str) -> int:
    """Write ``message`` as one ``Error:`` line on stderr; return status 1."""
    line = "Error: " + " ".join(message.splitlines()) + "\n"
    try:
        os.write(2, line.encode("utf-8", "backslashreplace"))
    except OSError:
        pass
    return 1


def failure(exc: BaseException) -> int:
    """Report ``exc``, raised while a command ran, and return the exit status.

    ``KeyboardInterrupt`` is 130, a :class:`SpoolError` its own status (1 or
    2), an ``OSError`` the reference's ``text (os error N)``; anything else is
    a library's explained failure or, failing that, a bug, still on one line
    (the traceback only at ``-l debug``).
    """
    if isinstance(exc, KeyboardInterrupt):
        return 130
    if isinstance(exc, SpoolError):
        fail(redact(str(exc)))
        return getattr(exc, "exit_code", 1)
    if isinstance(exc, OSError):
        where = f'"{exc.filename}": ' if exc.filename else ""
        return fail(redact(where + describe_os_error(exc)))
    explained = failures.explain(exc)
    if explained is not None:  # a library's report of an outside failure
        return fail(redact(explained))
    if log.enabled(log.DEBUG):
        import traceback

        traceback.print_exception(exc)
    return fail(redact(f"internal error: {type(exc).__name__}: {exc}"))
