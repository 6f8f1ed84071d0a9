#!/usr/bin/env python3
"""S3 transport benchmark against a moto S3 server on 127.0.0.1.

``fspl queue-write -q s3://…`` of a 1 GiB packet vs boto3's own
``upload_file`` of the same bytes to the same server, same run (target
≤ 1.2×), with the peak RSS of ours (target ≤ 64 MiB).  Listing a bucket
queue (requests and time) is part of benchmarks/run.py (``remote``).

    python benchmarks/bench_s3.py [--quick] [--ours PATH]
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import make_packet, measure, remote_args

from spooler.testing import free_port

BOTO_UPLOAD = """
import sys, boto3
boto3.client("s3").upload_file(sys.argv[1], sys.argv[2], sys.argv[3])
"""


def main() -> int:
    args = remote_args(__doc__ or "")
    port = free_port()
    env = {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    os.environ.update(env)
    os.environ.pop("AWS_CA_BUNDLE", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import boto3

        for _ in range(100):
            try:
                boto3.client("s3").create_bucket(Bucket="fspl-bench")
                break
            except Exception:
                time.sleep(0.1)
        size = args.size
        with tempfile.TemporaryDirectory() as work:
            packet = make_packet(args.ours, Path(work, "packet"), size)
            url = "s3://fspl-bench/q"
            subprocess.run([args.ours, "queue-init", "-q", url], check=True)
            client = boto3.client("s3")

            def empty() -> None:
                """Every run starts from the same server state: moto keeps
                objects in memory, and a fuller server is a slower one."""
                for item in client.list_objects_v2(Bucket="fspl-bench").get("Contents", []):
                    if item["Key"].startswith(("q/jobs/fspl-", "boto/")):
                        client.delete_object(Bucket="fspl-bench", Key=item["Key"])

            ours = measure([args.ours, "queue-write", "-q", url], 3, empty, str(packet))
            boto = measure(
                [sys.executable, "-c", BOTO_UPLOAD, str(packet), "fspl-bench", "boto/x"], 3, empty
            )
            print(
                f"| queue-write {size >> 20} MiB to S3 | {ours.wall:.2f} s | boto3 upload_file "
                f"{boto.wall:.2f} s | {ours.wall / boto.wall:.2f}× | ≤ 1.2× | "
                f"{ours.rss_kib / 1024:.0f} MiB (boto3 {boto.rss_kib / 1024:.0f} MiB) |"
            )
    finally:
        server.terminate()
        server.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
