"""Timing one program run, and ours against the reference, interleaved.

A run's numbers:

* wall time: ``perf_counter`` from just before the spawn to the return of
  ``wait4``;
* CPU time: user + system of the child and everything it waited for, from
  the ``rusage`` that ``os.wait4`` returns;
* peak RSS: the program's ``ru_maxrss``, read by GNU time.  Every process
  forked from this (large) interpreter starts with the interpreter's
  high-water mark, and Linux carries it across ``exec``, so ``wait4`` on our
  own child would report this script's size.  GNU time is a small C program
  whose own child starts small; its ``%M`` is the ``ru_maxrss`` of its
  ``wait4``.  GNU time wraps both programs, so its cost (well under a
  millisecond of CPU) is in both sides' wall and CPU time alike.

Interleaving: for each pair, one run of each side, the side going first
alternating from pair to pair, each run after its own setup (outside the
timed region).  Machine load that drifts over a benchmark then hits both
sides of a pair alike, and the median of the pairwise ratios is the
reported figure.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

REFERENCE = "/usr/bin/fspl"
GNU_TIME = "/usr/bin/time"


@dataclass(frozen=True)
class Sample:
    """One run: seconds of wall and CPU time, peak RSS in KiB."""

    wall: float
    cpu: float
    rss_kib: int


def run_once(
    argv: Sequence[str],
    stdin: str | None = None,
    stdout: str = os.devnull,
    env: dict[str, str] | None = None,
    ok: Callable[[int], bool] = lambda status: status == 0,
) -> Sample:
    """Run ``argv`` once under GNU time; fail loudly unless ``ok(status)``.

    ``status`` is ``os.waitstatus_to_exitcode`` of GNU time, which passes
    on its child's exit code (and exits non-zero when the child is killed)."""
    with (
        tempfile.NamedTemporaryFile(mode="r", prefix="fspl-bench-rss-") as rss,
        open(stdin or os.devnull, "rb") as fin,
        open(stdout, "wb") as fout,
        tempfile.TemporaryFile() as ferr,
    ):
        start = time.perf_counter()
        proc = subprocess.Popen(
            [GNU_TIME, "-f", "%M", "-o", rss.name, *argv],
            stdin=fin,
            stdout=fout,
            stderr=ferr,
            env=env,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped: keep Popen quiet
        if not ok(proc.returncode):
            ferr.seek(0)
            raise RuntimeError(
                f"{' '.join(argv)} exited {proc.returncode}: {ferr.read().decode()[-2000:]}"
            )
        lines = rss.read().split()
        return Sample(wall, usage.ru_utime + usage.ru_stime, int(lines[-1]))


@dataclass(frozen=True)
class Side:
    """One participant of a comparison: a command line and how to run it."""

    argv: Sequence[str]
    setup: Callable[[], None] | None = None
    stdin: str | None = None
    stdout: str = os.devnull
    env: dict[str, str] | None = None
    ok: Callable[[int], bool] = lambda status: status == 0
    check: Callable[[], None] | None = None

    def run(self) -> Sample:
        if self.setup:
            self.setup()
        sample = run_once(self.argv, self.stdin, self.stdout, self.env, self.ok)
        if self.check:
            self.check()
        return sample


@dataclass
class Comparison:
    """Interleaved samples of ours and the reference on one workload."""

    name: str
    ours: list[Sample] = field(default_factory=list)
    ref: list[Sample] = field(default_factory=list)

    def ratio(self, what: str) -> float:
        """Median of the pairwise ratios ours/ref of ``what`` (wall, cpu)."""
        pairs = zip(self.ours, self.ref, strict=True)
        return statistics.median(_metric(o, what) / _metric(r, what) for o, r in pairs)

    def median(self, side: str, what: str) -> float:
        return statistics.median(_metric(s, what) for s in self._samples(side))

    def peak_rss_kib(self, side: str) -> int:
        return max(s.rss_kib for s in self._samples(side))

    def _samples(self, side: str) -> list[Sample]:
        return self.ours if side == "ours" else self.ref


def _metric(sample: Sample, what: str) -> float:
    return sample.wall if what == "wall" else sample.cpu


def interleave(name: str, ours: Side, ref: Side, pairs: int) -> Comparison:
    """``pairs`` runs of each side, A B B A A B …: the first of each pair alternates."""
    result = Comparison(name)
    for i in range(pairs):
        order = ((ours, result.ours), (ref, result.ref))
        for side, samples in order if i % 2 == 0 else reversed(order):
            samples.append(side.run())
    return result


def measure(
    argv: Sequence[str],
    runs: int,
    setup: Callable[[], None] | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
) -> Sample:
    """The median wall and CPU time and the highest RSS of ``runs`` runs
    (for programs with no reference counterpart, and the transport
    benchmarks, whose yardsticks are other programs)."""
    samples = [Side(argv, setup, stdin, env=env).run() for _ in range(runs)]
    return Sample(
        statistics.median(s.wall for s in samples),
        statistics.median(s.cpu for s in samples),
        max(s.rss_kib for s in samples),
    )


def write_random(out: BinaryIO, size: int) -> None:
    """``size`` bytes (whole MiB) of incompressible data."""
    block = os.urandom(1 << 20)
    for _ in range(size >> 20):
        out.write(block)


def make_packet(ours: str, path: Path, size: int) -> Path:
    """A packet file with a ``size``-byte payload, made by our ``prepare``."""
    with open(path, "wb") as fh:
        subprocess.run([ours, "prepare", "-s", "-"], stdout=fh, check=True)
        write_random(fh, size)
    return path


def default_ours() -> str:
    """The ``fspl`` next to the running interpreter (a virtualenv's script)."""
    return str(Path(sys.executable).with_name("fspl"))


def remote_args(description: str) -> argparse.Namespace:
    """The command line shared by the remote-transport benchmarks."""
    parser = argparse.ArgumentParser(description=description.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 MiB instead of 1 GiB")
    parser.add_argument("--ours", default=default_ours())
    args = parser.parse_args()
    args.size = (64 << 20) if args.quick else (1 << 30)
    return args
