"""Helpers shared by the test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pytest

#: Generous: these bound waits for things that normally take milliseconds.
TIMEOUT = 30.0


class Outcome(Protocol):
    """What conftest's runners return (``Result``)."""

    @property
    def returncode(self) -> int: ...

    @property
    def err(self) -> str: ...


def one_error_line(result: Outcome, status: int | None = 1) -> str:
    """Assert the command failed (exit ``status``, unless None) with one
    ``Error: …`` line on stderr, no traceback and no "internal error" (the
    label of a bug, never of a user's mistake); return that line."""
    err = result.err
    if status is not None:
        assert result.returncode == status, (result.returncode, err)
    assert err.count("\n") == 1 and err.endswith("\n"), f"not one line: {err!r}"
    assert err.startswith("Error: "), err
    assert "Traceback" not in err, err
    assert "internal error" not in err, err
    return err[:-1]


def poll_until(check: Callable[[], object], timeout: float = TIMEOUT) -> bool:
    """Call ``check`` until it is true (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def wait_until(check: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    """Wait until ``check()`` is true; fail the test naming ``what`` if it never is."""
    if not poll_until(check, timeout):
        raise AssertionError(f"timed out waiting for {what}")


def require(available: bool, what: str, hint: str) -> None:
    """Skip without ``what``, except under CI (``CI`` set), where every tool
    is installed and a missing one must fail rather than skip silently."""
    if available:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: these tests must run in CI")
    pytest.skip(f"{what} is not installed ({hint})")


def fake_plugin(root: Path, dist: str, entry: str, module: str, source: str = "") -> dict[str, str]:
    """An installed distribution ``dist`` under ``root`` whose ``filespooler``
    entry point ``entry`` names ``module`` (a package written from ``source``
    unless empty: then it does not exist); the environment that makes
    ``fspl`` see it."""
    if source:
        package = root / module
        package.mkdir()
        (package / "__init__.py").write_text(source)
    info = root / f"{dist.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[filespooler]\n{entry} = {module}\n")
    return {"PYTHONPATH": str(root)}
