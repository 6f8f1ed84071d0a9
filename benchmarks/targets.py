"""The targets (ours ÷ reference, same run), verdicts and the report.

The targets are those of the performance work that introduced named jobs
(docs/performance.md lists them).  A ratio target holds when the median of
the pairwise ratios is within it, for wall *and* CPU time unless the target
names one; targets are checked per filesystem where the workload ran on
several.  The report is the "Results" section of docs/performance.md,
between :data:`BEGIN` and :data:`END`, so that regenerating it is one
command and prose outside the markers survives.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from measure import Comparison, Sample

if TYPE_CHECKING:  # remote imports the server fixtures: only when used
    from remote import Listing

BEGIN = "<!-- benchmark results: begin (written by benchmarks/run.py --markdown) -->"
END = "<!-- benchmark results: end -->"

#: Today's start-up above a bare interpreter and peak RSS (before named jobs).
STARTUP_MS = 9.5
RSS_MIB = 32
#: "Flat in the payload size": growth of peak RSS from the smallest to the largest payload.
RSS_GROWTH_MIB = 2
S3_REQUESTS = 5


@dataclass(frozen=True)
class Verdict:
    target: str
    measured: str
    met: bool


@dataclass
class Results:
    local: list[Comparison] = field(default_factory=list)
    startup: Comparison | None = None
    remote: list[Listing] = field(default_factory=list)
    #: The measuring wrapper's own cost: GNU time running /bin/true.
    overhead: Sample | None = None

    def add(self, comparison: Comparison) -> None:
        self.local.append(comparison)

    def named(self, *parts: str) -> list[Comparison]:
        return [c for c in self.local if all(p in c.name for p in parts)]

    def verdicts(self) -> list[Verdict]:
        out = []
        for c in self.named("queue-ls", "written by ours"):
            out.append(_ratio(c, wall=0.7, cpu=0.7))
        for c in self.named("queue-ls", "written by ref"):
            out.append(_ratio(c, wall=1.3, cpu=1.3))
        for c in self.named("queue-process", "`true` jobs", "(tmpfs)"):
            out.append(_ratio(c, wall=1.05, cpu=1.10))
        for c in self.named("time to first job"):
            out.append(_ratio(c, wall=0.5, cpu=None))
        for listing in self.remote:
            if listing.transport.startswith("S3"):
                out.append(
                    Verdict(
                        f"queue-ls of {listing.jobs:,} jobs written by ours in an S3 bucket: "
                        f"≤ {S3_REQUESTS} requests",
                        f"{listing.requests} request{'s' if listing.requests != 1 else ''}",
                        listing.requests <= S3_REQUESTS,
                    )
                )
        if self.startup:
            extra = startup_extra_ms(self.startup)
            out.append(
                Verdict(
                    f"gen-uuid start-up: ≤ +{STARTUP_MS} ms over a bare `python -c pass`",
                    f"{extra:+.1f} ms",
                    extra <= STARTUP_MS,
                )
            )
        payload = self.named("MiB")
        if payload:
            out.append(_rss(payload))
        return out


def startup_extra_ms(c: Comparison) -> float:
    """Median of the pairwise differences of wall time, ours − bare python."""
    return statistics.median(o.wall - r.wall for o, r in zip(c.ours, c.ref, strict=True)) * 1e3


def _ratio(c: Comparison, wall: float, cpu: float | None) -> Verdict:
    limits = f"≤ {wall}× wall" + (f", ≤ {cpu}× CPU" if cpu is not None else "")
    measured = f"{c.ratio('wall'):.2f}× wall, {c.ratio('cpu'):.2f}× CPU"
    met = c.ratio("wall") <= wall and (cpu is None or c.ratio("cpu") <= cpu)
    return Verdict(f"{c.name}: {limits}", measured, met)


def _rss(payload: list[Comparison]) -> Verdict:
    """Peak RSS of ours over every big-payload run, and its growth with the size."""
    by_size: dict[int, int] = {}
    for c in payload:
        size = int(c.name.split(" MiB")[0].rsplit(" ", 1)[-1])
        by_size[size] = max(by_size.get(size, 0), c.peak_rss_kib("ours"))
    peak = max(by_size.values()) / 1024
    growth = (by_size[max(by_size)] - by_size[min(by_size)]) / 1024
    sizes = " and ".join(f"{s} MiB" for s in sorted(by_size))
    return Verdict(
        f"peak RSS of ours, payloads of {sizes} (prepare -i, queue-write, queue-process): "
        f"≤ {RSS_MIB} MiB, flat (≤ +{RSS_GROWTH_MIB} MiB from the smallest to the largest)",
        f"{peak:.1f} MiB, {growth:+.1f} MiB",
        peak <= RSS_MIB and growth <= RSS_GROWTH_MIB,
    )


def _time(seconds: float) -> str:
    return f"{seconds:.2f} s" if seconds >= 1 else f"{seconds * 1e3:.1f} ms"


def line(c: Comparison) -> str:
    """One progress line on the terminal."""
    return (
        f"{c.name:<66} wall {_time(c.median('ours', 'wall'))} / {_time(c.median('ref', 'wall'))}"
        f" = {c.ratio('wall'):.2f}×  CPU {c.ratio('cpu'):.2f}×  RSS "
        f"{c.peak_rss_kib('ours') / 1024:.1f} / {c.peak_rss_kib('ref') / 1024:.1f} MiB"
    )


def remote_line(listing: Listing) -> str:
    return (
        f"queue-ls of {listing.jobs:,} jobs over {listing.transport}: {listing.requests} "
        f"requests, {_time(listing.sample.wall)}"
    )


def markdown(
    results: Results,
    verdicts: list[Verdict],
    before: str,
    after: str,
    pairs: int,
    quick: bool,
) -> str:
    """The generated results section, markers included."""
    size = " (`--quick`: small sizes, not the targets' workloads)" if quick else ""
    out = [
        BEGIN,
        "## Results",
        "",
        f"Generated by `benchmarks/run.py`{size}, {pairs} interleaved pairs per workload.",
        f"Start: {before}. End: {after}.",
        "",
        "### Targets",
        "",
        "| target | measured | verdict |",
        "|---|---|---|",
    ]
    out += [
        f"| {v.target} | {v.measured} | {'met' if v.met else '**not met**'} |" for v in verdicts
    ]
    if results.overhead:
        o = results.overhead
        out += [
            "",
            "Every run's figures include the spawn and GNU time: `/bin/true` measured the same "
            f"way takes {_time(o.wall)} wall and {_time(o.cpu)} CPU (median), on both sides; "
            "it brings the ratios of runs of a few milliseconds towards 1.",
        ]
    if results.local:
        out += _local_table(results.local)
    if results.startup:
        out += _startup(results.startup)
    if results.remote:
        out += _remote_table(results.remote)
    return "\n".join([*out, END]) + "\n"


def _local_table(local: list[Comparison]) -> list[str]:
    out = [
        "",
        "### Local workloads",
        "",
        "Ratios are ours ÷ reference, the median of the pairwise ratios; times are",
        "each side's median; peak RSS the highest of each side's runs.",
        "",
        "| workload | fs | wall ours | wall ref | wall ratio | CPU ours | CPU ref | CPU ratio "
        "| peak RSS ours / ref |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in local:
        name, place = c.name.rsplit(" (", 1)
        out.append(
            f"| {name} | {place.rstrip(')')} | {_time(c.median('ours', 'wall'))} | "
            f"{_time(c.median('ref', 'wall'))} | {c.ratio('wall'):.2f}× | "
            f"{_time(c.median('ours', 'cpu'))} | {_time(c.median('ref', 'cpu'))} | "
            f"{c.ratio('cpu'):.2f}× | {c.peak_rss_kib('ours') / 1024:.1f} / "
            f"{c.peak_rss_kib('ref') / 1024:.1f} MiB |"
        )
    return out


def _startup(s: Comparison) -> list[str]:
    return [
        "",
        f"Start-up: ours' `gen-uuid` {_time(s.median('ours', 'wall'))} against "
        f"{_time(s.median('ref', 'wall'))} for a bare `python -c pass` of the same "
        f"interpreter ({len(s.ours)} pairs), a median difference of "
        f"{startup_extra_ms(s):+.1f} ms.",
    ]


def _remote_table(remote: list[Listing]) -> list[str]:
    return [
        "",
        "### Remote listing",
        "",
        "`queue-ls` of jobs written by ours; servers on 127.0.0.1; requests counted in one",
        "run (S3 at the server, SFTP in the client), time the median of the runs.",
        "",
        "| transport | jobs | requests | median time | peak RSS |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {r.transport} | {r.jobs:,} | {r.requests} | {_time(r.sample.wall)} | "
            f"{r.sample.rss_kib / 1024:.1f} MiB |"
            for r in remote
        ),
    ]


def write_section(path: Path, section: str) -> None:
    """Replace the section between the markers in ``path``, or write a new
    file; a file without the markers is not overwritten."""
    if not path.exists():
        path.write_text(section)
        return
    text = path.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{path} has no '{BEGIN}' … '{END}' section to replace")
    path.write_text(text[:start] + section + text[end + len(END) + 1 :])
