"""Short crash-torture runs for CI (the long ones: docs/reliability.md)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "reliability"))
import torture

RUNS = 15


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20261123)


def test_killed_queue_write_never_leaves_a_partial_job(tmp_path: Path, rng: random.Random) -> None:
    result = torture.torture_write(tmp_path, RUNS, rng)
    assert result["kills"] > 0, "the harness must actually kill writes"
    assert result["partial"] == 0 and result["lost"] == 0


def test_killed_prepare_keeps_a_valid_seqfile(tmp_path: Path, rng: random.Random) -> None:
    result = torture.torture_prepare(tmp_path, RUNS, rng)
    assert result["kills"] > 0 and result["repeated_seqs"] == 0


def test_killed_processor_loses_nothing(tmp_path: Path, rng: random.Random) -> None:
    result = torture.torture_process(tmp_path, 10, rng)
    assert result["kills"] > 0 and result["lost"] == 0
