"""A tour of the Python API: send three jobs out of order, inspect, process.

Run: python examples/api/tour.py
"""

from __future__ import annotations

import os
import tempfile

import spooler


def main() -> None:
    work = tempfile.mkdtemp(prefix="fspl-api-")
    seqfile = os.path.join(work, "sender.seq")
    queue = spooler.open_queue(os.path.join(work, "queue"))
    queue.init()

    # Sender: three packets, then "deliver" them in a scrambled order.
    packets = [spooler.make_packet(f"job {n}\n".encode(), seqfile=seqfile) for n in (1, 2, 3)]
    for data in (packets[2], packets[0], packets[1]):
        queue.write(data)

    print("listing:", [(job.meta.seq, job.name) for job in queue.listing()])

    # Receiver: a Python callback sees the payloads in the sender's order.
    seen: list[str] = []
    ran = spooler.process(queue, callback=lambda meta, data: seen.append(data.read().decode()))
    print(f"processed {ran} jobs in order:", seen)
    assert seen == ["job 1\n", "job 2\n", "job 3\n"]

    # A command works the same way (here: count the payload bytes).
    queue.write(spooler.make_packet(b"hello\n", seqfile=seqfile))
    spooler.process(queue, command=["wc", "-c"])
    print("\n".join(queue.status().lines()))


if __name__ == "__main__":
    main()
