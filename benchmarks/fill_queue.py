"""Fill a new queue with Command jobs of seqs 1..COUNT through the library.

    PYTHON fill_queue.py LOCATION COUNT

Run by the interpreter of the fspl under test (the benchmark passes the
``python`` next to ``--ours``), so that the jobs are named by the very
``queue-write`` code being measured; the library call is the CLI's
delivery without a process start per job.  Jobs carry no payload and no
environment; their command is whatever ``queue-process`` is given.
"""

from __future__ import annotations

import sys

from spooler import api


def main(location: str, count: int) -> None:
    with api.open_queue(location) as queue:
        queue.init()
        for seq in range(1, count + 1):
            queue.write(api.make_packet(seq=seq, env=()))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
