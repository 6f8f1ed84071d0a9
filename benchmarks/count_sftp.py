"""Run our fspl with every SFTP request counted; print the count on stderr.

    PYTHON count_sftp.py ARGS...

Every request paramiko's SFTP client sends (stat, opendir, readdir, open,
read, close, …) goes through ``SFTPClient._async_request``; this wraps it,
runs ``spooler.cli.main(ARGS)`` and ends stderr with ``sftp-requests: N``.
A separate run from the timed ones, so that the counting costs them nothing.
"""

from __future__ import annotations

import sys
from typing import Any

from paramiko.sftp_client import SFTPClient

from spooler.cli import main

count = 0
send = SFTPClient._async_request


def counted(self: SFTPClient, *args: Any) -> Any:
    global count
    count += 1
    return send(self, *args)


SFTPClient._async_request = counted
try:
    status = main(sys.argv[1:])
finally:
    print(f"sftp-requests: {count}", file=sys.stderr)
sys.exit(status)
