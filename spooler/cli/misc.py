"""Utilities: gen-uuid, gen-filename, show-license."""

from __future__ import annotations

from ..ids import new_job_name, uuid4_text
from . import options

COMMANDS, command = options.registry()


@command("gen-uuid")
def gen_uuid() -> None:
    """Print a random (version 4) UUID."""
    options.emit(uuid4_text() + "\n")


@command("gen-filename")
def gen_filename() -> None:
    """Print a fresh job file name, fspl-UUID.fspl."""
    options.emit(new_job_name() + "\n")


@command("show-license")
def show_license() -> None:
    """Show the license (MIT)."""
    from importlib.resources import files

    options.emit(files("spooler").joinpath("LICENSE.txt").read_bytes())
