"""fspl(1), generated from the click definitions so that it cannot drift.

``python -m spooler.cli.manpage > share/man/man1/fspl.1`` writes the page
that pip installs (``[tool.setuptools.data-files]``); tests/test_manpage.py
regenerates it and compares.  Only parameter attributes that are the same
in every supported click (8.1.3 on) are used, not click's help formatter,
so the page does not depend on the installed click.
"""

from __future__ import annotations

import inspect
import sys

import click

from .. import __version__
from .commands import COMMANDS, load

HEAD = f""".\\" -*- coding: UTF-8 -*-
.TH FSPL 1 "" "filespooler {__version__}" "User Commands"
.SH NAME
fspl \\- sequential, distributed, file\\-based job queues
.SH SYNOPSIS
.B fspl
.RI [ GLOBAL\\ OPTIONS ] " COMMAND " [ OPTIONS ] " " [ "" \\-\\- " PARAMS" ...]
.SH DESCRIPTION
fspl prepares job packets, delivers them into queues and processes them in
order, exactly once, on the same machine or another one.  Packets and queues
are those of Filespooler 1.2.2 (the Debian package
.BR filespooler ),
byte for byte; queues may also live in S3 buckets, on SFTP servers, on
rclone remotes or on any fsspec filesystem, given by URL to
.BR \\-q .
"""

TAIL = """.SH TRANSPORT OPTIONS
.B \\-o KEY=VALUE
passes options to a remote queue's transport: for
.B sftp://
.BR ssh_config ,
.BR identity_file ,
.BR known_hosts ,
.B strict_host_key_checking
and
.BR lock_ttl ;
for
.B s3://
the s3fs and botocore settings
.RB ( endpoint_url ,
.BR region ,
.BR profile ,
.BR anon ,
\\&...) and
.BR lease_ttl .
The transport pages are installed with the package under
.IR share/doc/filespooler/docs/transports/ .
.SH ENVIRONMENT
.TP
.B FSPL_SET_*
saved into the packet by
.BR prepare ,
exported to the command.
.TP
.B FSPL_SSH_CONFIG
ssh config file for sftp:// queues (default ~/.ssh/config).
.TP
.B FSPL_PLUGINS=all
let third\\-party plugins claim local paths.
.TP
.B FSPL_NO_FAST_PATH=1
parse every command line with the full parser (a debugging aid; by default
the common forms of the hot commands on local queues skip it).
.TP
.B FSPL_NO_HEADER_CACHE=1
do not cache the headers of local jobs whose names do not carry them (by
default kept in $XDG_CACHE_HOME/filespooler, ~/.cache/filespooler, and
checked against the job before it runs or is shown).
.SH EXIT STATUS
0 on success, 1 on an error (one line on standard error), 2 on a usage error.
.SH SEE ALSO
.BR ssh_config (5),
.BR rclone (1),
the documentation under
.I share/doc/filespooler/
of the installation prefix.
"""


def roff(text: str) -> str:
    """Escape text for a roff line: backslashes, dashes, leading dots."""
    out = text.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + out if out[:1] in (".", "'") else out


def _help(cmd: click.Command) -> str:
    text = inspect.cleandoc(cmd.help or cmd.short_help or "").split("\f", 1)[0]
    paragraphs = [" ".join(p.replace("\b", "").split()) for p in text.split("\n\n")]
    return "\n.PP\n".join(roff(p) for p in paragraphs if p)


def _metavar(param: click.Parameter) -> str:
    if isinstance(param.type, click.Choice):
        return "[" + "|".join(map(str, param.type.choices)) + "]"
    return param.metavar or param.type.name.upper()


def _option(param: click.Option) -> str:
    names = ", ".join(f"\\fB{roff(n)}\\fR" for n in [*param.opts, *param.secondary_opts])
    if not param.is_flag:
        names += f" \\fI{roff(_metavar(param))}\\fR"
    notes = []
    if param.required:
        notes.append("required")
    if param.multiple:
        notes.append("repeatable")
    if param.show_default and param.default is not None and not param.is_flag:
        notes.append(f"default: {param.default}")
    text = roff(param.help or "") + (f" ({', '.join(notes)})" if notes else "")
    return f".TP\n{names}\n{text}\n"


def _usage(name: str, cmd: click.Command) -> str:
    pieces = []
    for param in cmd.params:
        if isinstance(param, click.Argument):
            pieces.append(_metavar(param).upper())
    options = any(isinstance(p, click.Option) for p in cmd.params)
    usage = " ".join(["fspl", name, *(["[OPTIONS]"] if options else []), *pieces])
    if type(cmd).__name__ == "ParamsCommand":
        usage += " [-- PARAMS...]"
    return f".PP\n.B {roff(usage)}\n"


def _command(name: str, cmd: click.Command) -> str:
    out = f'.SS "{roff(name)}"\n{_usage(name, cmd)}.PP\n{_help(cmd)}\n'
    return out + "".join(_option(p) for p in cmd.params if isinstance(p, click.Option))


def render() -> str:
    """The whole page, as roff."""
    from .app import cli

    out = [HEAD, ".SH GLOBAL OPTIONS\n"]
    out += [_option(p) for p in cli.params if isinstance(p, click.Option)]
    out.append(_option(click.Option(["-h", "--help"], is_flag=True, help="Show help and exit")))
    out.append(".SH COMMANDS\n")
    out += [_command(name, load(name)) for name in COMMANDS]
    out.append(TAIL)
    return "".join(out)


if __name__ == "__main__":
    sys.stdout.write(render())
