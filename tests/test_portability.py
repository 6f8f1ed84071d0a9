"""What must hold on every supported Python and at every allowed dependency version.

CI runs the core suite on each interpreter it finds and with every runtime
dependency at its declared floor (scripts/test).  The tests here pin down
what depends on those versions: how commands are started (``posix_spawn``,
the same on 3.10 as on 3.13), the bare-``fspl`` help with any click, and the
floors themselves.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import OURS_ARGV, REFERENCE, Runner, craft, make_queue, put_job, require_reference
from helpers import one_error_line

ROOT = Path(__file__).resolve().parent.parent

#: A command reporting its signal state and process group, one line each.
REPORT = (
    "grep -E '^Sig(Ign|Blk):' /proc/self/status; "
    'pgid=$(ps -o pgid= $$); [ "$pgid" -eq $$ ] && echo own group || echo parent group'
)


_WRAPPER = """
import os, signal, sys
signal.signal(signal.SIGHUP, signal.SIG_IGN if sys.argv[1] == "ign" else signal.SIG_DFL)
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
os.execvp(sys.argv[2], sys.argv[2:])
"""


def _run_job(argv0: list[str], queue: Path, timeout: bool, trap_hup: bool) -> str:
    """Process one job whose command prints its signal state; its stdout."""
    options = ["--timeout", "60"] if timeout else []
    fspl = [*argv0, "queue-process", "-q", str(queue), *options, "sh", "--", "-c", REPORT]
    # Ignoring SIGHUP is what nohup does: an ignored signal must stay ignored.
    # The wrapper sets SIGHUP either way (and SIGPIPE and SIGXFSZ, which Python
    # ignores, back to default), so the test does not depend on what the shell
    # running pytest ignores.
    wrapper = [sys.executable, "-c", _WRAPPER, "ign" if trap_hup else "dfl", *fspl]
    result = subprocess.run(wrapper, capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


@pytest.mark.parametrize("trap_hup", [False, True], ids=["plain", "nohup"])
def test_commands_start_with_the_references_signal_state(tmp_path: Path, trap_hup: bool) -> None:
    require_reference()
    seen = {}
    for name, argv0 in (("ours", OURS_ARGV), ("ref", [REFERENCE])):
        queue = make_queue(tmp_path / name)
        put_job(queue, craft(1))
        seen[name] = _run_job(argv0, queue, timeout=False, trap_hup=trap_hup)
    assert seen["ours"] == seen["ref"]
    ignored = int(re.search(r"SigIgn:\s*([0-9a-f]+)", seen["ours"]).group(1), 16)
    assert not ignored & (1 << (13 - 1))  # SIGPIPE: default, although Python ignores it
    assert bool(ignored & (1 << (1 - 1))) == trap_hup  # SIGHUP: inherited
    assert "parent group" in seen["ours"]


def test_timeout_gives_the_command_a_group_of_its_own(tmp_path: Path) -> None:
    queue = make_queue(tmp_path / "q")
    put_job(queue, craft(1))
    assert "own group" in _run_job(OURS_ARGV, queue, timeout=True, trap_hup=False)


@pytest.mark.parametrize("command", ["no-such-command-here", "/nonexistent/command"])
def test_a_missing_command_is_one_line(ours: Runner, tmp_path: Path, command: str) -> None:
    result = ours("stdin-process", command, input=craft(1))
    assert result.returncode == 1
    assert result.err == f"Error: Running {command!r}: No such file or directory (os error 2)\n"


def test_bare_fspl_prints_help_on_stderr_with_status_2(ours: Runner) -> None:
    bare, helped = ours(), ours("--help")
    assert bare.returncode == 2 and bare.stdout == b""
    assert bare.err.strip() == helped.out.strip()


def test_every_error_path_is_one_line(ours: Runner) -> None:
    """With click 8.1 a missing exception class once turned these into tracebacks."""
    for args in (["no-such-command"], ["queue-ls"], ["queue-ls", "-q", "/nonexistent/q"]):
        result = ours(*args)
        assert result.returncode != 0, args
        one_error_line(result, status=None)


def test_floors_are_the_distribution_versions() -> None:
    """The constraints CI installs for the floor run, from the declared requirements."""
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "floors.py")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    floors = dict(line.split("==") for line in out.split() if "==" in line)
    # Debian 12's packaged versions: a distribution package must be possible.
    assert floors["click"] == "8.1.3"
    assert floors["pluggy"] == "1.0"
    assert floors["msgpack"] == "1.0.3"
    assert floors["paramiko"] == "2.12"
    assert {"fsspec", "s3fs", "botocore"} <= set(floors)
    assert "pytest" not in floors  # test tools are not runtime dependencies


def test_installed_metadata_names_every_interpreter_and_the_project() -> None:
    from importlib.metadata import metadata

    meta = metadata("filespooler")
    classifiers = meta.get_all("Classifier") or []
    for version in ("3.10", "3.11", "3.12", "3.13"):
        assert f"Programming Language :: Python :: {version}" in classifiers
    assert "Typing :: Typed" in classifiers
    urls = dict(entry.split(", ", 1) for entry in meta.get_all("Project-URL") or [])
    assert urls["Filespooler"].startswith("https://")
    assert "Reference implementation" in urls
