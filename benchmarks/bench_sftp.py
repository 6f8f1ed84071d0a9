#!/usr/bin/env python3
"""SFTP transport benchmark against a throwaway OpenSSH sshd on 127.0.0.1.

Same server, same run, OpenSSH's own ``sftp`` client as the yardstick:

* upload: ``fspl queue-write -q sftp://…`` of a 1 GiB packet vs ``sftp put``
  (target ≤ 1.5×, peak RSS ≤ 64 MiB);
* download: ``fspl queue-payload -q sftp://… -j 1`` vs ``sftp get`` of the
  same job file (target ≤ 1.5×, memory flat);
* processing in place: ``fspl queue-process -q sftp://…`` of the 1 GiB job
  with default settings (the lock is renewed while the payload streams).

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
from measure import Sample, make_packet, measure, remote_args  # noqa: E402


def _row(what: str, size: int, ours: Sample, native: Sample) -> None:
    print(
        f"| {what} {size >> 20} MiB over SFTP | {ours.wall:.2f} s | OpenSSH sftp "
        f"{native.wall:.2f} s | {ours.wall / native.wall:.2f}× | ≤ 1.5× | "
        f"{ours.rss_kib / 1024:.0f} MiB |"
    )


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
            sftp = ["sftp", "-q", "-F", str(config), "-b"]
            ours = measure([args.ours, "queue-write", "-q", url], 3, stdin=str(packet))
            put = work / "put"
            put.write_text(f"put {packet} {remote}/sftp-copy\n")
            native = measure([*sftp, str(put), "backupsrv"], 3)
            _row("queue-write", size, ours, native)
            jobs = sorted(n for n in os.listdir(remote / "q" / "jobs") if n.endswith(".fspl"))
            for extra in jobs[1:]:  # three writes of seq 1: keep one, -j refuses duplicates
                os.unlink(remote / "q" / "jobs" / extra)
            job = jobs[0]
            get = work / "get"
            get.write_text(f"get {remote}/q/jobs/{job} {work}/got\n")
            down = measure([args.ours, "queue-payload", "-q", url, "-j", "1"], 3)
            native_down = measure([*sftp, str(get), "backupsrv"], 3)
            _row("queue-payload", size, down, native_down)
            processed = measure(
                [
                    args.ours,
                    "queue-process",
                    "-q",
                    url,
                    "--never-delete",
                    "sh",
                    "--",
                    "-c",
                    "cat > /dev/null",
                ],
                1,
            )
            print(
                f"| queue-process {size >> 20} MiB in place over SFTP (default lock TTL) | "
                f"{processed.wall:.2f} s | ok | {processed.rss_kib / 1024:.0f} MiB |"
            )
        finally:
            stop_sshd(server)
    return 0


if __name__ == "__main__":
    sys.exit(main())
