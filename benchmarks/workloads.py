"""Workload builders: queues written by ours or by the reference, payloads,
fresh copies, and the filesystems they live on.

Builders run outside every timed region.  A queue that a run consumes is
copied afresh before each run (:func:`fresh_copy`); read-only workloads
(``queue-ls``) are built once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from measure import REFERENCE, write_random

FILL = str(Path(__file__).resolve().with_name("fill_queue.py"))


@dataclass(frozen=True)
class Place:
    """A scratch directory on one kind of filesystem (``tmpfs`` or ``disk``)."""

    kind: str
    root: Path

    def path(self, name: str) -> Path:
        return self.root / name


def places(tmpfs: str, disk: str) -> list[Place]:
    """Fresh scratch directories under ``tmpfs`` (e.g. /dev/shm) and ``disk``
    (e.g. /var/tmp); the caller removes them (:func:`remove_places`)."""
    return [
        Place("tmpfs", Path(tempfile.mkdtemp(prefix="fspl-bench-", dir=tmpfs))),
        Place("disk", Path(tempfile.mkdtemp(prefix="fspl-bench-", dir=disk))),
    ]


def remove_places(where: list[Place]) -> None:
    for place in where:
        shutil.rmtree(place.root, ignore_errors=True)


def named_queue(python: str, path: Path, count: int) -> Path:
    """A new queue of ``count`` jobs (seqs 1…count) written by our library, run
    by ``python`` (the interpreter of the fspl under test): named jobs."""
    subprocess.run([python, FILL, str(path), str(count)], check=True)
    return path


def reference_queue(path: Path, count: int) -> Path:
    """A new queue of ``count`` jobs written by the reference:
    ``fspl prepare -s SEQFILE | fspl queue-write`` per job (UUID names)."""
    subprocess.run([REFERENCE, "queue-init", "-q", str(path)], check=True)
    loop = (
        'i=0; while [ "$i" -lt "$2" ]; do '
        '"$3" prepare -s "$1/seq" </dev/null | "$3" queue-write -q "$1"; i=$((i + 1)); done'
    )
    subprocess.run(["sh", "-c", loop, "sh", str(path), str(count), REFERENCE], check=True)
    (path / "seq").unlink()
    return path


def copy_queue(src: Path, dst: Path) -> Path:
    """``src`` copied to ``dst`` (replacing it), then synced: a run on disk
    must not pay for writing back the copy's dirty pages."""
    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)
    os.sync()
    return dst


def job_count(queue: Path) -> int:
    return sum(1 for name in os.listdir(queue / "jobs") if name.endswith(".fspl"))


def payload_file(path: Path, size: int) -> Path:
    """``size`` bytes of random data at ``path`` (kept if already there)."""
    if not path.exists():
        with open(path, "wb") as fh:
            write_random(fh, size)
        os.sync()
    return path


def packet_file(payload: Path, path: Path) -> Path:
    """A packet of ``payload`` made by the reference's ``prepare``."""
    with open(path, "wb") as out:
        subprocess.run(
            [REFERENCE, "prepare", "-s", "-", "-i", str(payload)], stdout=out, check=True
        )
    os.sync()
    return path


def queue_with(packet: Path, queue: Path) -> None:
    """A new queue at ``queue`` holding ``packet`` as its one job (reference-written)."""
    shutil.rmtree(queue, ignore_errors=True)
    subprocess.run([REFERENCE, "queue-init", "-q", str(queue)], check=True)
    with open(packet, "rb") as fin:
        subprocess.run([REFERENCE, "queue-write", "-q", str(queue)], stdin=fin, check=True)
    os.sync()


def fresh_queue(queue: Path) -> None:
    """An empty queue at ``queue`` (made by the reference)."""
    shutil.rmtree(queue, ignore_errors=True)
    subprocess.run([REFERENCE, "queue-init", "-q", str(queue)], check=True)
    os.sync()
