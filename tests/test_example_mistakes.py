"""examples/mistakes/demo.sh runs and shows one Error: line per mistake."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DEMO = Path(__file__).parent.parent / "examples" / "mistakes" / "demo.sh"


def test_demo(tmp_path: Path) -> None:
    for extra in ("botocore", "fsspec", "paramiko"):  # the demo's mistakes span the extras
        pytest.importorskip(extra)
    fspl = tmp_path / "fspl"
    fspl.write_text(f'#!/bin/sh\nexec {sys.executable} -m spooler "$@"\n')
    fspl.chmod(0o755)
    proc = subprocess.run(
        ["sh", str(DEMO)], capture_output=True, text=True, env={**os.environ, "FSPL": str(fspl)}
    )
    assert proc.returncode == 0, proc.stderr
    errors = proc.stderr.splitlines()
    assert len(errors) == 9 and all(e.startswith("Error: ") for e in errors), errors
    assert proc.stdout.count("(exit 2)") == 7 and proc.stdout.count("(exit 1)") == 2
    assert "queue-init" in errors[0] and "SECRET" not in proc.stderr
    assert "no-such-target" in errors[-1] and "queue-init -q" in errors[-1]
    assert "Traceback" not in proc.stderr and "internal error" not in proc.stderr
