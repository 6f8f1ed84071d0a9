"""Local work never imports a transport library; the built-in plugin list mirrors pyproject."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import craft, make_queue, put_job

from spooler.registry import BUILTIN_PLUGINS

HEAVY = {"fsspec", "s3fs", "botocore", "boto3", "aiobotocore", "paramiko", "moto"}
ROOT = Path(__file__).resolve().parents[1]

# Runs the CLI in-process (stdout to /dev/null, stdin empty), then reports the
# top-level names of every module loaded, on stderr.
PROBE = """
import json, os, sys
from spooler.cli import main
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 1)
statuses = [main(args) for args in json.loads(sys.argv[1])]
print(json.dumps([statuses, sorted(sys.modules)]), file=sys.stderr)
"""


def loaded_after(commands: list[list[str]], cwd: Path) -> set[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(commands)],
        capture_output=True,
        text=True,
        cwd=cwd,
        input="",
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    statuses, modules = json.loads(result.stderr.splitlines()[-1])
    assert statuses == [0] * len(commands), result.stderr
    return {name.split(".")[0] for name in modules}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    queue = make_queue(tmp_path / "q")
    put_job(queue, craft(1, b"payload", params=[b"p"]))
    put_job(queue, craft(2, kind="NOP"))
    (tmp_path / "input").write_bytes(b"data")
    return tmp_path


@pytest.mark.parametrize(
    "commands",
    [
        [["--help"]],
        [
            ["queue-ls", "-q", "q"],
            ["queue-info", "-q", "q", "-j", "1"],
            ["queue-status", "-q", "q"],
        ],
        [["queue-payload", "-q", "q", "-j", "1"], ["queue-process", "-q", "q", "cat"]],
        [["queue-process", "-q", "file:q", "--order-by", "timestamp", "-d", "cat", "true"]],
        [["prepare", "-s", "seq", "-i", "input", "--", "x"], ["prepare-nop", "-s", "seq"]],
        [["queue-init", "-q", "new"], ["queue-get-next", "-q", "new"], ["gen-uuid"]],
    ],
    ids=["help", "ls-info-status", "payload-process", "process-decoder-url", "prepare", "init"],
)
def test_local_commands_import_no_transport_library(workdir: Path, commands: list) -> None:
    heavy = loaded_after(commands, workdir) & HEAVY
    assert not heavy, f"imported {sorted(heavy)}"


def test_the_probe_does_see_heavy_imports(workdir: Path) -> None:
    """Guard against a probe that cannot fail: importing a heavy module shows up."""
    pytest.importorskip("fsspec")
    code = PROBE.replace(
        "from spooler.cli import main", "import fsspec\nfrom spooler.cli import main"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, json.dumps([["gen-uuid"]])],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=60,
    )
    assert "fsspec" in json.loads(result.stderr.splitlines()[-1])[1]


def test_gen_uuid_does_not_even_import_click(workdir: Path) -> None:
    assert "click" not in loaded_after([["gen-uuid"]], workdir)


def test_builtin_list_mirrors_entry_points() -> None:
    tomllib = pytest.importorskip("tomllib")
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = table["project"]["entry-points"]["filespooler"]
    assert len(set(BUILTIN_PLUGINS)) == len(BUILTIN_PLUGINS)
    assert set(BUILTIN_PLUGINS) == set(declared.values())
