"""Shared fixtures: run our fspl and the reference fspl the same way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REFERENCE = "/usr/bin/fspl"
pytest_plugins = ["fixtures_s3", "fixtures_sftp", "fixtures_rclone"]


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


Runner = Callable[..., Result]


def _runner(argv0: list[str]) -> Runner:
    def run(
        *args: str | os.PathLike[str],
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = 60,
    ) -> Result:
        full_env = {**os.environ, **(env or {})}
        proc = subprocess.run(
            [*argv0, *map(str, args)],
            input=input if input is not None else b"",
            capture_output=True,
            env=full_env,
            cwd=cwd,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    run.argv0 = argv0  # type: ignore[attr-defined]
    return run


def reference_available() -> bool:
    return shutil.which(REFERENCE) is not None


def _require_reference() -> None:
    if not reference_available():
        if os.environ.get("CI"):
            pytest.fail(f"{REFERENCE} is missing: interop tests must run in CI")
        pytest.skip(f"{REFERENCE} is not installed (apt-get install filespooler)")


@pytest.fixture
def ours() -> Runner:
    """Our fspl, as a subprocess (python -m spooler)."""
    return _runner([sys.executable, "-m", "spooler"])


@pytest.fixture
def ref() -> Runner:
    """The reference fspl 1.2.2."""
    _require_reference()
    return _runner([REFERENCE])


@pytest.fixture(params=["ours", "ref"])
def impl(request: pytest.FixtureRequest) -> Runner:
    """Each implementation in turn, for scenarios that both must pass."""
    if request.param == "ref":
        _require_reference()
        return _runner([REFERENCE])
    return _runner([sys.executable, "-m", "spooler"])


@pytest.fixture
def queue(tmp_path: Path, ours: Runner) -> Path:
    """A fresh, initialised queue directory."""
    path = tmp_path / "queue"
    assert ours("queue-init", "-q", path).returncode == 0
    return path


@pytest.fixture(autouse=True)
def _stable_timezone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests compare local-time output: pin a zone with a non-zero offset."""
    monkeypatch.setenv("TZ", "America/Chicago")
    yield


def jobs_in(queue: Path) -> list[str]:
    return sorted(
        p.name
        for p in (queue / "jobs").iterdir()
        if p.name.startswith("fspl-") and p.name.endswith(".fspl")
    )
