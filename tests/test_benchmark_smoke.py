"""benchmarks/run.py works: its workload builders, one tiny interleaved
measurement and its report.  Nothing here asserts speed (the benchmark
does, against the reference, interleaved); this keeps the script runnable."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REFERENCE, require_reference

from spooler.naming import parse_name

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import targets  # noqa: E402 - the benchmark's modules
import workloads as wl  # noqa: E402
from measure import Side, interleave  # noqa: E402

pytestmark = pytest.mark.slow

OURS = str(Path(sys.executable).with_name("fspl"))


@pytest.fixture(autouse=True)
def _reference() -> None:
    require_reference()


def listing(queue: Path) -> list[str]:
    out = subprocess.run(
        [REFERENCE, "queue-ls", "-q", str(queue)], capture_output=True, text=True, check=True
    ).stdout
    return [line.split()[0] for line in out.splitlines()[1:]]


def test_builders_write_named_and_reference_queues(tmp_path: Path) -> None:
    ours = wl.named_queue(sys.executable, tmp_path / "ours", 4)
    ref = wl.reference_queue(tmp_path / "ref", 3)
    copy = wl.copy_queue(ref, tmp_path / "copy")
    names = sorted((ours / "jobs").glob("fspl-*.fspl"))
    assert [parse_name(p.name) is not None for p in names] == [True] * 4
    assert all(parse_name(p.name) is None for p in (ref / "jobs").glob("fspl-*.fspl"))
    assert listing(ours) == ["1", "2", "3", "4"]
    assert listing(ref) == listing(copy) == ["1", "2", "3"]
    assert wl.job_count(copy) == 3


def test_one_interleaved_measurement_and_its_report(tmp_path: Path) -> None:
    queue = wl.named_queue(sys.executable, tmp_path / "q", 3)
    order: list[str] = []
    args = ["queue-ls", "-q", str(queue)]
    result = interleave(
        "queue-ls, 3 jobs written by ours (tmpfs)",
        Side([OURS, *args], setup=lambda: order.append("ours")),
        Side([REFERENCE, *args], setup=lambda: order.append("ref")),
        pairs=2,
    )
    assert order == ["ours", "ref", "ref", "ours"]
    for sample in (*result.ours, *result.ref):
        assert sample.wall > 0 and sample.cpu > 0 and sample.rss_kib > 1024
    assert math.isfinite(result.ratio("wall")) and math.isfinite(result.ratio("cpu"))

    results = targets.Results([result])
    [verdict] = results.verdicts()
    assert verdict.target.startswith("queue-ls, 3 jobs written by ours (tmpfs): ≤ 0.7× wall")
    section = targets.markdown(results, [verdict], "start", "end", 2, quick=True)
    assert section.startswith(targets.BEGIN) and section.endswith(targets.END + "\n")
    assert "| queue-ls, 3 jobs written by ours | tmpfs |" in section

    doc = tmp_path / "performance.md"
    doc.write_text(f"# Before\n\n{targets.BEGIN}\nold\n{targets.END}\n\n## After\n")
    targets.write_section(doc, section)
    assert doc.read_text() == f"# Before\n\n{section}\n## After\n"


def test_a_file_without_the_markers_is_not_overwritten(tmp_path: Path) -> None:
    doc = tmp_path / "notes.md"
    doc.write_text("hand-written\n")
    with pytest.raises(SystemExit, match="no '<!-- benchmark results: begin"):
        targets.write_section(doc, "section\n")
    assert doc.read_text() == "hand-written\n"


def test_the_script_refuses_a_run_without_ours() -> None:
    run = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run.py")], capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "give one of --ours PATH or --build-ours DIR" in run.stderr


def test_the_consuming_workloads_run_on_fresh_copies(tmp_path: Path) -> None:
    """queue-process on a fresh copy per run, and the first-job run, whose
    processor is killed by its first job and leaves the backlog untouched."""
    import run

    for name in ("tmpfs", "disk"):
        (tmp_path / name).mkdir()
    where = wl.places(str(tmp_path / "tmpfs"), str(tmp_path / "disk"))
    sizes = run.Sizes(quick=True)
    sizes.process, sizes.backlog = 4, 30
    bench = run.Bench(OURS, where, sizes, pairs=1)
    bench.process()
    bench.first_job()
    names = [c.name for c in bench.results.local]
    assert names == [
        "queue-process, 4 `true` jobs written by ours (tmpfs)",
        "queue-process, 4 `true` jobs written by ours (disk)",
        "time to first job, 30-job backlog written by ours (tmpfs)",
        "time to first job, 30-job backlog written by ours (disk)",
    ]
    assert all(len(c.ours) == len(c.ref) == 1 for c in bench.results.local)
    for place in where:
        assert wl.job_count(place.path("ours-30")) == 30  # the backlog, reused
        assert wl.job_count(place.path("ours-4")) == 4  # the pristine copy
        assert not place.path("process-run").exists()


def test_the_listing_workloads_measure_the_header_cache_cold_and_warm(tmp_path: Path) -> None:
    import run

    for name in ("tmpfs", "disk"):
        (tmp_path / name).mkdir()
    where = wl.places(str(tmp_path / "tmpfs"), str(tmp_path / "disk"))
    sizes = run.Sizes(quick=True)
    sizes.ls = 40  # enough read headers for the cache to be written
    bench = run.Bench(OURS, where, sizes, pairs=1)
    bench.ls()
    assert [c.name for c in bench.results.local] == [
        f"queue-ls, 40 jobs written by {what} ({place})"
        for place in ("tmpfs", "disk")
        for what in ("ours", "ref, header cache cold", "ref, header cache warm")
    ]
    for place in where:  # the cold runs wrote the cache the warm ones read
        assert list((place.path("cache-home") / "filespooler").glob("headers-*.msgpack"))
