"""The ``fspl`` command line: a lazy command table over small modules.

Each command lives in a module of this package and is imported only when it
runs (pip's lazy command table), so ``fspl --help`` and local commands never
load transport libraries.  Two start-up costs are avoided on purpose:

* click takes about 30 ms to import, more than the whole run of
  ``gen-uuid``; the argument-free commands (``gen-uuid``, ``gen-filename``,
  ``--version``) are therefore answered before click is loaded;
* everything else goes through click, with errors turned into one
  ``Error: …`` line and exit status 1 (usage errors exit 2).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from .. import __version__

#: name → (module, short help).  The module defines a click command ``cmd``.
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("prepare", "Prepare a command packet and write it to stdout"),
    "prepare-nop": ("prepare", "Prepare a packet that always succeeds (NOP)"),
    "prepare-fail": ("prepare", "Prepare a packet that always fails"),
    "prepare-get-next": ("prepare", "Print the sender's next sequence number"),
    "prepare-set-next": ("prepare", "Set the sender's next sequence number"),
    "queue-init": ("queue_admin", "Create a queue"),
    "queue-write": ("queue_admin", "Write a packet from stdin into a queue"),
    "queue-get-next": ("queue_admin", "Print the queue's next sequence number"),
    "queue-set-next": ("queue_admin", "Set the queue's next sequence number"),
    "queue-ls": ("inspect", "List the jobs in a queue"),
    "queue-info": ("inspect", "Show a queued job's environment"),
    "queue-payload": ("inspect", "Write a queued job's payload to stdout"),
    "queue-status": ("inspect", "Diagnose a queue: next seq, present, missing, stale"),
    "queue-move": ("transfer", "Move jobs between two queues, on any transports"),
    "queue-process": ("process", "Process the jobs in a queue"),
    "serve": ("serve", "Watch and process many queues, as a TOML file says"),
    "stdin-info": ("stdin", "Show the environment of the packet on stdin"),
    "stdin-payload": ("stdin", "Write the payload of the packet on stdin to stdout"),
    "stdin-process": ("process", "Process the one packet on stdin"),
    "gen-uuid": ("misc", "Print a random (version 4) UUID"),
    "gen-filename": ("misc", "Print a fresh fspl-UUID.fspl job file name"),
    "show-license": ("misc", "Show the license"),
    "transports": ("transports", "List the registered transports and their capabilities"),
    "help": ("misc", "Show help for fspl or for one command"),
}


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
        from .app import run

        status = run(args)
    if argv is None:
        sys.exit(status)
    return status
