"""The ``fspl`` command line: a lazy command table over small modules.

Each command lives in a module of this package and is imported only when it
runs (pip's lazy command table), so ``fspl --help`` and local commands never
load transport libraries.  Two start-up costs are avoided on purpose:

* click takes about 30 ms to import, more than the whole run of
  ``gen-uuid``; the argument-free commands (``gen-uuid``, ``gen-filename``,
  ``--version``) are therefore answered before click is loaded;
* ``queue-ls``, ``queue-write``, ``prepare`` and ``queue-process`` on local
  queues are parsed by hand when the command line is one :mod:`.fast` fully
  understands (anything else, help and usage errors included, is click's);
* everything else goes through click, with errors turned into one
  ``Error: …`` line and exit status 1 (usage errors exit 2).
"""

from __future__ import annotations

import os
import sys

from .. import TYPE_CHECKING, __version__

if TYPE_CHECKING:  # collections.abc costs gen-uuid 2 ms: it imports collections
    from collections.abc import Sequence


def _fast_path(args: Sequence[str]) -> int | None:
    """Answer argument-free commands without importing click."""
    if len(args) != 1:
        return None
    arg = args[0]
    if arg in ("-V", "--version"):
        out = f"filespooler {__version__}\n"
    elif arg in ("gen-uuid", "gen-filename"):
        from ..ids import new_job_name, uuid4_text

        out = (uuid4_text() if arg == "gen-uuid" else new_job_name()) + "\n"
    else:
        return None
    os.write(1, out.encode())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns (and exits with) the status."""
    args = list(sys.argv[1:] if argv is None else argv)
    status = _fast_path(args)
    if status is None:
        from .fast import run as run_fast

        status = run_fast(args)
    if status is None:
        from .app import run

        status = run(args)
    if argv is None:
        sys.exit(status)
    return status
