#!/usr/bin/env python3
"""rclone transport benchmark: 1 GiB delivery through the plugin vs a plain
``rclone rcat`` of the same bytes to the same (local) remote, same run
(target ≤ 1.1×). Both sides write a fresh file after a sync; median of 5.

    python benchmarks/bench_rclone.py [--quick] [--ours PATH]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import make_packet, measure, remote_args


def main() -> int:
    args = remote_args(__doc__ or "")
    size = args.size
    os.environ["RCLONE_CONFIG_BENCH_TYPE"] = "local"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        packet = make_packet(args.ours, work / "packet", size)
        url = f"rclone:bench:{work}/q"
        subprocess.run([args.ours, "queue-init", "-q", url], check=True)
        jobs, plain_dir = work / "q" / "jobs", work / "plain"
        plain_dir.mkdir()

        def fresh() -> None:
            """Both sides write a new file into an empty directory, with no
            dirty pages left by the previous run (which would bill one side
            for the other's writeback)."""
            for folder in (jobs, plain_dir):
                for entry in folder.glob("*"):
                    if entry.name != ".fspl-keep":
                        entry.unlink()
            os.sync()

        ours = measure([args.ours, "queue-write", "-q", url], 5, fresh, str(packet))
        plain = measure(["rclone", "rcat", f"bench:{plain_dir}/x"], 5, fresh, str(packet))
        print(
            f"| delivery of {size >> 20} MiB via rclone | {ours.wall:.2f} s | rclone rcat "
            f"{plain.wall:.2f} s | {ours.wall / plain.wall:.2f}× | ≤ 1.1× | "
            f"{ours.rss_kib / 1024:.0f} MiB |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
