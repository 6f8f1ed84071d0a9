"""``fspl serve CONFIG``: watch and process many queues in one process."""

from __future__ import annotations

import click

from . import options


@options.command("serve")
@click.argument("config", metavar="CONFIG")
@click.option("--check", is_flag=True, help="Validate CONFIG, print the resolved queues, exit")
def serve(config: str, check: bool) -> None:
    """Watch and process every queue CONFIG (TOML) names, until SIGTERM or SIGINT.

    SIGHUP re-reads CONFIG.  See docs/operations.md for the format.
    """
    from ..serve import Server, load
    from ..serve import check as check_config

    if check:
        for line in check_config(config):
            options.emit(line + "\n")
        return
    if Server(load(config)).run():
        raise KeyboardInterrupt  # stopped by SIGINT: status 130, as an interrupted fspl
