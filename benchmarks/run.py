#!/usr/bin/env python3
"""Benchmarks: our fspl against the reference fspl, same workloads, same run.

Every workload is built once and run by both programs; each run is timed
with wall-clock time and its peak RSS read from ``wait4``; the median of the
runs is reported with the ratio ours/reference.  Setup (copying a queue that
a run consumes) is never inside the timed region.

    python benchmarks/run.py                 # everything, full sizes (~10 min)
    python benchmarks/run.py --quick         # small sizes, a smoke run
    python benchmarks/run.py startup ls      # selected workloads
    python benchmarks/run.py --markdown out.md

Ours is the ``fspl`` next to the running interpreter (a virtualenv's console
script), or ``--ours PATH``; the reference is /usr/bin/fspl.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

REFERENCE = "/usr/bin/fspl"
GNU_TIME = "/usr/bin/time"
GIB = 1 << 30


@dataclass
class Sample:
    seconds: float
    max_rss_kib: int


@dataclass
class Row:
    name: str
    ours: Sample
    ref: Sample
    target: str

    @property
    def ratio(self) -> float:
        return self.ours.seconds / self.ref.seconds


def run_once(argv: list[str], stdin: str | None = None, stdout: str = os.devnull) -> Sample:
    """Run argv once; return wall time and the program's peak RSS.

    The RSS comes from GNU time (``/usr/bin/time -f %M``), a small C program:
    a child forked from this Python process would inherit its high-water
    mark, so ``wait4`` on our own child would report this script's size.
    The timing wraps GNU time too, which costs both programs the same.
    """
    with (
        tempfile.NamedTemporaryFile(mode="r") as rss,
        open(stdin or os.devnull, "rb") as fin,
        open(stdout, "wb") as fout,
    ):
        start = time.perf_counter()
        proc = subprocess.run(
            [GNU_TIME, "-f", "%M", "-o", rss.name, *argv],
            stdin=fin,
            stdout=fout,
            stderr=subprocess.PIPE,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"{argv} failed ({proc.returncode}): {proc.stderr.decode()}")
        return Sample(elapsed, int(rss.read().split()[-1]))


def write_random(out: BinaryIO, size: int) -> None:
    """``size`` bytes (whole MiB) of incompressible data."""
    block = os.urandom(1 << 20)
    for _ in range(size >> 20):
        out.write(block)


def remote_args(description: str) -> argparse.Namespace:
    """The command line shared by the remote-transport benchmarks."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB instead of 1 GiB")
    parser.add_argument("--ours", default=str(Path(sys.executable).with_name("fspl")))
    args = parser.parse_args()
    args.size = (64 << 20) if args.quick else (1 << 30)
    return args


def make_packet(ours: str, path: Path, size: int) -> Path:
    """A packet file with a ``size``-byte payload, made by our ``prepare``."""
    with open(path, "wb") as fh:
        subprocess.run([ours, "prepare", "-s", "-"], stdout=fh, check=True)
        write_random(fh, size)
    return path


def measure(
    argv: list[str],
    runs: int,
    setup: Callable[[], None] | None = None,
    stdin: str | None = None,
    stdout: str = os.devnull,
) -> Sample:
    samples = []
    for _ in range(runs):
        if setup:
            setup()
        samples.append(run_once(argv, stdin, stdout))
    return Sample(
        statistics.median(s.seconds for s in samples), max(s.max_rss_kib for s in samples)
    )


class Bench:
    def __init__(self, ours: str, work: Path, quick: bool) -> None:
        self.ours = ours
        self.work = work
        self.quick = quick
        self.rows: list[Row] = []
        self.notes: list[str] = []

    def pair(self, name: str, args: list[str], target: str, runs: int, **kw: object) -> Row:
        """Time ``fspl args`` for ours and the reference, interleaved per program."""
        ours = measure([self.ours, *args], runs, **kw)  # type: ignore[arg-type]
        ref = measure([REFERENCE, *args], runs, **kw)  # type: ignore[arg-type]
        row = Row(name, ours, ref, target)
        self.rows.append(row)
        print(
            f"{name:<40} ours {ours.seconds * 1e3:9.1f} ms  ref {ref.seconds * 1e3:9.1f} ms"
            f"  ratio {row.ratio:5.2f}  rss {ours.max_rss_kib // 1024} / "
            f"{ref.max_rss_kib // 1024} MiB",
            flush=True,
        )
        return row

    # -- workloads ---------------------------------------------------------------
    def startup(self) -> None:
        bare = measure([str(Path(self.ours).with_name("python")), "-c", "pass"], 30)
        row = self.pair("gen-uuid start-up", ["gen-uuid"], "≤ bare python + 25 ms", 30)
        extra = (row.ours.seconds - bare.seconds) * 1e3
        self.notes.append(
            f"start-up: bare `python -c pass` {bare.seconds * 1e3:.1f} ms; ours is "
            f"{extra:+.1f} ms above it (target ≤ +25 ms)"
        )

    def _queue_of(self, count: int, name: str, payload: bytes = b"") -> Path:
        """A queue of ``count`` Command jobs with seqs 1..count (built with our API)."""
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        import spooler

        queue = self.work / name
        q = spooler.open_queue(str(queue))
        q.init()
        jobs = queue / "jobs"
        for seq in range(1, count + 1):
            data = spooler.make_packet(payload, seq=seq, env=())
            (jobs / f"fspl-{seq:08d}-bench.fspl").write_bytes(data)
        return queue

    def ls(self) -> None:
        count = 1000 if self.quick else 10_000
        queue = self._queue_of(count, "ls")
        self.pair(f"queue-ls of {count:,} jobs", ["queue-ls", "-q", str(queue)], "≤ 1.3×", 10)

    def process(self) -> None:
        count = 500 if self.quick else 10_000
        pristine = self._queue_of(count, "process-pristine")
        scratch = self.work / "process-run"

        def reset() -> None:
            shutil.rmtree(scratch, ignore_errors=True)
            shutil.copytree(pristine, scratch)

        self.pair(
            f"queue-process of {count:,} jobs (true)",
            ["queue-process", "-q", str(scratch), "true"],
            "≤ 1.15×",
            3,
            setup=reset,
        )

    def _big_file(self, size: int) -> Path:
        path = self.work / f"payload-{size}"
        if not path.exists():
            with open(path, "wb") as fh:
                write_random(fh, size)
        return path

    def big(self) -> None:
        size = (64 << 20) if self.quick else GIB
        label = f"{size >> 20} MiB"
        payload = self._big_file(size)
        out = self.work / "out.fspl"
        runs = 3
        self.pair(
            f"prepare -i {label} > /dev/null",
            ["prepare", "-s", "-", "-i", str(payload)],
            "≤ 1.1×",
            runs,
        )
        self.pair(
            f"prepare -i {label} > file",
            ["prepare", "-s", "-", "-i", str(payload)],
            "≤ 1.1×",
            runs,
            stdout=str(out),
        )
        queue = self.work / "writeq"

        def fresh_queue() -> None:
            shutil.rmtree(queue, ignore_errors=True)
            subprocess.run([REFERENCE, "queue-init", "-q", str(queue)], check=True)

        self.pair(
            f"queue-write of a {label} packet",
            ["queue-write", "-q", str(queue)],
            "≤ 1.1×",
            runs,
            setup=fresh_queue,
            stdin=str(out),
        )

    def rss(self) -> None:
        sizes = [(64 << 20)] if self.quick else [GIB, 2 * GIB]
        for size in sizes:
            label = f"{size >> 20} MiB"
            payload = self._big_file(size)
            packet = self.work / f"packet-{size}"
            run_once([self.ours, "prepare", "-s", "-", "-i", str(payload)], stdout=str(packet))
            queue = self.work / f"rssq-{size}"
            shutil.rmtree(queue, ignore_errors=True)
            run_once([self.ours, "queue-init", "-q", str(queue)])
            write = run_once([self.ours, "queue-write", "-q", str(queue)], stdin=str(packet))
            pay = run_once([self.ours, "queue-payload", "-q", str(queue), "-j", "1"])
            proc = run_once(
                [self.ours, "queue-process", "-q", str(queue), "sh", "--", "-c", "cat > /dev/null"]
            )
            prep = run_once([self.ours, "prepare", "-s", "-", "-i", "-"], stdin=str(payload))
            self.notes.append(
                f"peak RSS with a {label} payload (ours): prepare -i - {prep.max_rss_kib // 1024}"
                f" MiB, queue-write {write.max_rss_kib // 1024} MiB, queue-payload "
                f"{pay.max_rss_kib // 1024} MiB, queue-process {proc.max_rss_kib // 1024} MiB"
                " (target ≤ 32 MiB, flat in the payload size)"
            )
            print(self.notes[-1], flush=True)
            packet.unlink()

    # -- report ------------------------------------------------------------------
    def markdown(self) -> str:
        lines = [
            "| workload | ours | reference | ratio | target | peak RSS ours / ref |",
            "|---|---:|---:|---:|---|---:|",
        ]
        for r in self.rows:
            lines.append(
                f"| {r.name} | {r.ours.seconds * 1e3:.1f} ms | {r.ref.seconds * 1e3:.1f} ms | "
                f"{r.ratio:.2f}× | {r.target} | {r.ours.max_rss_kib / 1024:.1f} / "
                f"{r.ref.max_rss_kib / 1024:.1f} MiB |"
            )
        lines += ["", *[f"- {n}" for n in self.notes]]
        return "\n".join(lines) + "\n"


WORKLOADS = ("startup", "ls", "process", "big", "rss")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("workloads", nargs="*", help=f"any of {', '.join(WORKLOADS)} (default all)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--ours", default=str(Path(sys.executable).with_name("fspl")))
    parser.add_argument("--markdown", metavar="FILE", help="also write the table here")
    parser.add_argument("--workdir", help="where to build workloads (default: a temp dir)")
    args = parser.parse_args()
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    for tool, package in ((REFERENCE, "filespooler"), (GNU_TIME, "time")):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed (apt-get install {package})")
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="fspl-bench-"))
    try:
        bench = Bench(args.ours, base, args.quick)
        for name in args.workloads or WORKLOADS:
            getattr(bench, name)()
        table = bench.markdown()
        print("\n" + table)
        if args.markdown:
            Path(args.markdown).write_text(table)
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
