#!/usr/bin/env python3
"""Benchmarks: our fspl against the reference fspl, interleaved, as ratios.

Every local workload runs ours and the reference (/usr/bin/fspl) in pairs,
A B then B A and so on (benchmarks/measure.py), on tmpfs and on disk, and
reports the median of the pairwise ratios ours/reference for wall and for
CPU time, the median of each side and the peak RSS; remote listing counts
requests against moto and sshd.  Each result is checked against the
targets (benchmarks/targets.py).

    python benchmarks/run.py --build-ours /tmp/fspl-bench-ours   # full run (~15 min)
    python benchmarks/run.py --ours /tmp/fspl-bench-ours/bin/fspl --quick
    python benchmarks/run.py --ours … --markdown docs/performance.md
    python benchmarks/run.py --ours … ls process     # selected workloads

Measure a regular install: ``--build-ours DIR`` makes a virtualenv at DIR
with ``pip install '.[all]'`` (not editable) and measures its ``fspl``.
Exit status 0 whatever the verdicts; with ``--check``, 1 if a target is
missed.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import remote  # noqa: E402 - sibling modules
import targets  # noqa: E402
import workloads as wl  # noqa: E402
from measure import GNU_TIME, REFERENCE, Comparison, Side, interleave, measure  # noqa: E402

MIB = 1 << 20


class Sizes:
    """Workload sizes: the targets' in a full run, small ones with --quick."""

    def __init__(self, quick: bool) -> None:
        self.ls = 1000 if quick else 10_000
        self.process = 300 if quick else 2000
        self.backlog = 10_000 if quick else 100_000
        self.payloads = [16 * MIB, 64 * MIB] if quick else [256 * MIB, 1024 * MIB]
        self.remote = 200 if quick else 2000


class Bench:
    def __init__(self, ours: str, where: list[wl.Place], sizes: Sizes, pairs: int) -> None:
        self.ours = ours
        self.python = str(Path(ours).with_name("python"))
        self.where = where
        self.sizes = sizes
        self.pairs = pairs
        self.results = targets.Results()
        self.built: dict[tuple[str, int], Path] = {}

    def compare(self, name: str, place: wl.Place, args: list[str], **side: Any) -> Comparison:
        """Interleave ``fspl ARGS`` of ours and the reference (``side``: the
        rest of :class:`Side`, the same for both); print and keep it."""
        ours = Side([self.ours, *args], **side)
        ref = Side([REFERENCE, *args], **side)
        result = interleave(f"{name} ({place.kind})", ours, ref, self.pairs)
        self.results.add(result)
        print(targets.line(result), flush=True)
        return result

    # -- workloads ---------------------------------------------------------------
    def startup(self) -> None:
        """gen-uuid, ours vs the reference and ours vs a bare interpreter
        (``python -c pass`` of ours' venv), 4× the pairs: each run is short."""
        place = self.where[0]
        runs = self.pairs * 4
        self.compare("gen-uuid start-up", place, ["gen-uuid"])
        bare = Side([self.python, "-c", "pass"])
        versus = interleave("gen-uuid vs bare python", Side([self.ours, "gen-uuid"]), bare, runs)
        self.results.startup = versus
        print(targets.line(versus), flush=True)

    def queue(self, writer: str, count: int, place: wl.Place) -> Path:
        """A queue of ``count`` jobs written by ``writer`` (ours: named jobs;
        ref: the reference's UUID names), built once on tmpfs and copied to
        the other places (a copy keeps names and bytes)."""
        key = (writer, count)
        if key not in self.built:
            path = self.where[0].path(f"{writer}-{count}")
            if writer == "ours":
                wl.named_queue(self.python, path, count)
            else:
                wl.reference_queue(path, count)
            self.built[key] = path
        if place is self.where[0]:
            return self.built[key]
        return wl.copy_queue(self.built[key], place.path(f"{writer}-{count}"))

    def ls(self) -> None:
        """queue-ls of named jobs, and of the reference's twice: with our
        header cache cold (removed before each run: every header is read and
        the cache written) and warm (left by the cold runs), in a cache home
        of the benchmark's own (the reference ignores it)."""
        count = self.sizes.ls
        for place in self.where:
            args = ["queue-ls", "-q", str(self.queue("ours", count, place))]
            self.compare(f"queue-ls, {count:,} jobs written by ours", place, args)
            args = ["queue-ls", "-q", str(self.queue("ref", count, place))]
            home = place.path("cache-home")
            env = {**os.environ, "XDG_CACHE_HOME": str(home)}
            name = f"queue-ls, {count:,} jobs written by ref, header cache"
            cold = partial(shutil.rmtree, home, ignore_errors=True)
            self.compare(f"{name} cold", place, args, env=env, setup=cold)
            self.compare(f"{name} warm", place, args, env=env)

    def process(self) -> None:
        count = self.sizes.process
        for place in self.where:
            pristine = self.queue("ours", count, place)
            scratch = place.path("process-run")
            self.compare(
                f"queue-process, {count:,} `true` jobs written by ours",
                place,
                ["queue-process", "-q", str(scratch), "true"],
                setup=partial(wl.copy_queue, pristine, scratch),
            )
            shutil.rmtree(scratch)

    def first_job(self) -> None:
        """Spawn of ``queue-process`` to its death: the first job's command is
        ``kill -KILL $PPID``, so the interval is start-up, the scan of the
        backlog, the lock and one fork/exec.  The processor dies before it
        can delete or renumber anything, so the queue is reused (checked)."""
        count = self.sizes.backlog
        for place in self.where:
            queue = self.queue("ours", count, place)

            def untouched(queue: Path = queue) -> None:
                if wl.job_count(queue) != count:
                    raise RuntimeError(f"{queue} changed during a first-job run")

            self.compare(
                f"time to first job, {count:,}-job backlog written by ours",
                place,
                ["queue-process", "-q", str(queue), "sh", "--", "-c", "kill -KILL $PPID"],
                ok=lambda status: status == 128 + 9,
                check=untouched,
            )

    def payload(self) -> None:
        """``prepare -i``, ``queue-write`` and ``queue-process`` (``cat >
        /dev/null``) of big payloads; their peak RSS must stay flat in the size."""
        for place in self.where:
            for size in self.sizes.payloads:
                label = f"{size // MIB} MiB"
                data = wl.payload_file(place.path(f"payload-{size}"), size)
                packet = wl.packet_file(data, place.path(f"packet-{size}"))
                out = str(place.path("prepared"))
                self.compare(
                    f"prepare -i, {label} payload, to a file",
                    place,
                    ["prepare", "-s", "-", "-i", str(data)],
                    stdout=out,
                    setup=os.sync,
                )
                os.unlink(out)
                queue = place.path("payload-q")
                self.compare(
                    f"queue-write of a {label} packet",
                    place,
                    ["queue-write", "-q", str(queue)],
                    stdin=str(packet),
                    setup=partial(wl.fresh_queue, queue),
                )
                self.compare(
                    f"queue-process (cat > /dev/null) of a {label} job",
                    place,
                    ["queue-process", "-q", str(queue), "sh", "--", "-c", "cat > /dev/null"],
                    setup=partial(wl.queue_with, packet, queue),
                )
                for path in (data, packet):
                    path.unlink()
                shutil.rmtree(queue)

    def remote(self) -> None:
        runs = max(3, self.pairs)
        count = self.sizes.remote
        s3 = remote.s3_listing(self.ours, self.python, count, runs)
        print(targets.remote_line(s3), flush=True)
        with tempfile.TemporaryDirectory(prefix="fspl-bench-sftp-") as work:
            sftp = remote.sftp_listing(self.ours, self.python, count, runs, Path(work))
        print(targets.remote_line(sftp), flush=True)
        self.results.remote += [s3, sftp]


WORKLOADS = ("startup", "ls", "process", "first_job", "payload", "remote")


#: The interpreter a regular install on Debian gets (``apt-get install
#: python3-venv``, then ``python3 -m venv``): built with PGO and LTO and
#: libpython linked in, it starts in about a third of the CPU time of a
#: default pyenv build (``--enable-shared``, no ``--enable-optimizations``).
SYSTEM_PYTHON = "/usr/bin/python3"


def build_ours(venv: Path, python: str) -> str:
    """A regular (non-editable) install of this checkout in a new venv at
    ``venv``, made by ``python``."""
    repo = HERE.parent
    subprocess.run([python, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    # As scripts/test and scripts/demo do.  The pip a venv starts with may be
    # old: Debian 12's 23.0.1 writes console scripts that import ``re``
    # (21 M instructions, two thirds of a bare interpreter's start) on
    # every run of ``fspl``; newer ones strip the suffix with str methods.
    subprocess.run([*pip, "--upgrade", "pip>=23"], check=True)
    subprocess.run([*pip, "-c", str(repo / "constraints.txt"), f"{repo}[all]"], check=True)
    return str(venv / "bin" / "fspl")


def interpreter(python: str) -> str:
    """``python``'s version and the executable behind it (through a venv)."""
    version, executable = subprocess.run(
        [python, "-c", "import sys; print(sys.version.split()[0], sys._base_executable)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return f"Python {version} ({executable})"


def machine(python: str) -> str:
    """One line on the machine, ours' interpreter (from :func:`interpreter`)
    and the moment (load matters on shared machines)."""
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {mem:.0f} GiB, {platform.system()} {platform.release()}, "
        f"ours on {python}; "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f"; load average {load}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("workloads", nargs="*", help=f"any of {', '.join(WORKLOADS)} (default all)")
    parser.add_argument("--ours", help="our fspl to measure (a regular install)")
    parser.add_argument("--build-ours", metavar="DIR", help="pip install . into a new venv at DIR")
    parser.add_argument(
        "--python",
        default=SYSTEM_PYTHON if os.access(SYSTEM_PYTHON, os.X_OK) else sys.executable,
        help=f"the interpreter --build-ours uses ({SYSTEM_PYTHON} if present, else this one)",
    )
    parser.add_argument("--pairs", type=int, help="interleaved pairs per workload (5; 3 quick)")
    parser.add_argument("--quick", action="store_true", help="small sizes: about a minute")
    parser.add_argument("--tmpfs", default="/dev/shm", help="a tmpfs directory (/dev/shm)")
    parser.add_argument("--disk", default="/var/tmp", help="a disk directory (/var/tmp)")
    parser.add_argument("--markdown", metavar="FILE", help="write the results section here")
    parser.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = parser.parse_args()
    unknown = set(args.workloads) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads: {', '.join(sorted(unknown))}")
    if bool(args.ours) == bool(args.build_ours):
        parser.error("give one of --ours PATH or --build-ours DIR")
    for tool, package in ((REFERENCE, "filespooler"), (GNU_TIME, "time")):
        if not shutil.which(tool):
            parser.error(f"{tool} is needed (apt-get install {package})")
    ours = build_ours(Path(args.build_ours), args.python) if args.build_ours else args.ours
    pairs = args.pairs or (3 if args.quick else 5)
    python = interpreter(str(Path(ours).with_name("python")))
    before = machine(python)
    # An interrupted run still removes its scratch directories.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    where = wl.places(args.tmpfs, args.disk)
    try:
        bench = Bench(ours, where, Sizes(args.quick), pairs)
        bench.results.overhead = measure(["/bin/true"], 4 * pairs)
        for name in args.workloads or WORKLOADS:
            getattr(bench, name)()
    finally:
        wl.remove_places(where)
    verdicts = bench.results.verdicts()
    section = targets.markdown(bench.results, verdicts, before, machine(python), pairs, args.quick)
    print("\n" + section)
    if args.markdown:
        targets.write_section(Path(args.markdown), section)
    missed = [v for v in verdicts if not v.met]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
