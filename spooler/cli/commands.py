"""The one command table of ``fspl``: every command, where it lives, its short help.

A leaf module (no click): ``fspl --help`` lists commands from here without
importing any command module, the click group imports a command's module
only when it runs, and the man page walks the same table, so a command
cannot be listed in one place and missing in another.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import click

#: name → ("module:function" in this package, short help).
COMMANDS: dict[str, tuple[str, str]] = {
    "prepare": ("prepare:prepare", "Prepare a command packet and write it to stdout"),
    "prepare-nop": ("prepare:prepare_nop", "Prepare a packet that always succeeds (NOP)"),
    "prepare-fail": ("prepare:prepare_fail", "Prepare a packet that always fails"),
    "prepare-get-next": ("prepare:prepare_get_next", "Print the sender's next sequence number"),
    "prepare-set-next": ("prepare:prepare_set_next", "Set the sender's next sequence number"),
    "queue-init": ("queue_admin:queue_init", "Create a queue"),
    "queue-write": ("queue_admin:queue_write", "Write a packet from stdin into a queue"),
    "queue-get-next": ("queue_admin:queue_get_next", "Print the queue's next sequence number"),
    "queue-set-next": ("queue_admin:queue_set_next", "Set the queue's next sequence number"),
    "queue-ls": ("inspect:queue_ls", "List the jobs in a queue"),
    "queue-info": ("inspect:queue_info", "Show a queued job's environment"),
    "queue-payload": ("inspect:queue_payload", "Write a queued job's payload to stdout"),
    "queue-status": ("inspect:queue_status", "Diagnose a queue: next seq, present, missing, stale"),
    "queue-move": ("transfer:queue_move", "Move jobs between two queues, on any transports"),
    "queue-process": ("process:queue_process", "Process the jobs in a queue"),
    "serve": ("serve:serve", "Watch and process many queues, as a TOML file says"),
    "stdin-info": ("stdin:stdin_info", "Show the environment of the packet on stdin"),
    "stdin-payload": ("stdin:stdin_payload", "Write the payload of the packet on stdin to stdout"),
    "stdin-process": ("process:stdin_process", "Process the one packet on stdin"),
    "gen-uuid": ("misc:gen_uuid", "Print a random (version 4) UUID"),
    "gen-filename": ("misc:gen_filename", "Print a fresh fspl-UUID.fspl job file name"),
    "show-license": ("misc:show_license", "Show the license"),
    "transports": (
        "transports:transports",
        "List the registered transports, their status and capabilities",
    ),
    "help": ("misc:help_", "Show help for fspl or for one command"),
}


def load(name: str) -> click.Command:
    """The click command for ``name`` (a key of :data:`COMMANDS`), imported now."""
    module, _, attr = COMMANDS[name][0].partition(":")
    command: click.Command = getattr(import_module(f"{__package__}.{module}"), attr)
    return command
