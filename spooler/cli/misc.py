"""Utilities: gen-uuid, gen-filename, show-license."""

from __future__ import annotations

import click

from ..ids import new_job_name, uuid4_text
from . import options


@options.command("gen-uuid")
def gen_uuid() -> None:
    """Print a random (version 4) UUID."""
    options.emit(uuid4_text() + "\n")


@options.command("gen-filename")
def gen_filename() -> None:
    """Print a fresh job file name, fspl-UUID.fspl."""
    options.emit(new_job_name() + "\n")


@options.command("help")
@click.argument("name", required=False, metavar="COMMAND")
@click.pass_context
def help_(ctx: click.Context, name: str | None) -> None:
    """Show help for fspl, or for COMMAND (like COMMAND --help)."""
    root = ctx.find_root()
    if name is None:
        options.emit(root.get_help() + "\n")
        return
    group = root.command
    assert isinstance(group, click.Group)
    sub = group.get_command(root, name)
    if sub is None:
        raise click.UsageError(f"No such command {name!r}.")
    with click.Context(sub, info_name=name, parent=root) as sub_ctx:
        options.emit(sub.get_help(sub_ctx) + "\n")


@options.command("show-license")
def show_license() -> None:
    """Show the license (MIT)."""
    from importlib.resources import files

    options.emit(files("spooler").joinpath("LICENSE.txt").read_bytes())
