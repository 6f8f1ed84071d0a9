#!/usr/bin/env python3
"""SFTP transport benchmark against a throwaway OpenSSH sshd on 127.0.0.1.

``fspl queue-write -q sftp://…`` of a 1 GiB packet vs OpenSSH's own ``sftp``
client putting the same file to the same server, same run (target ≤ 1.5×),
with the peak RSS of ours (target ≤ 64 MiB).

    python benchmarks/bench_sftp.py [--quick] [--ours PATH]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]
from fixtures_sftp import start_sshd, stop_sshd  # noqa: E402 - sibling helpers
from run import make_packet, measure, remote_args  # noqa: E402


def main() -> int:
    args = remote_args(__doc__ or "")
    size = args.size
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "sshd").mkdir()
        server = start_sshd(work / "sshd")
        try:
            config = server.write_config(work / "ssh_config")
            packet = make_packet(args.ours, work / "packet", size)
            remote = work / "srv"
            remote.mkdir()
            os.environ["FSPL_SSH_CONFIG"] = str(config)
            url = server.url(str(remote / "q"))
            subprocess.run([args.ours, "queue-init", "-q", url], check=True)
            ours = measure([args.ours, "queue-write", "-q", url], 3, stdin=str(packet))
            batch = work / "batch"
            batch.write_text(f"put {packet} {remote}/sftp-copy\n")
            native = measure(["sftp", "-q", "-F", str(config), "-b", str(batch), "backupsrv"], 3)
            print(
                f"| queue-write {size >> 20} MiB over SFTP | {ours.seconds:.2f} s | OpenSSH sftp "
                f"{native.seconds:.2f} s | {ours.seconds / native.seconds:.2f}× | ≤ 1.5× | "
                f"{ours.max_rss_kib / 1024:.0f} MiB |"
            )
        finally:
            stop_sshd(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
