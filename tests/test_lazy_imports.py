"""Local work never imports transport libraries; built-ins mirror entry points."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

from spooler.plugins import BUILTIN_PLUGINS

HEAVY = {"fsspec", "s3fs", "botocore", "boto3", "aiobotocore", "paramiko", "moto"}
ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, os, sys
from spooler.cli import main
devnull = os.open(os.devnull, os.O_WRONLY)
os.dup2(devnull, 1)
for args in json.loads(sys.argv[1]):
    main(args)
print(json.dumps(sorted({m.split(".")[0] for m in sys.modules})), file=sys.stderr)
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
    return set(json.loads(result.stderr.splitlines()[-1]))


@pytest.mark.parametrize(
    "commands",
    [
        [["--help"]],
        [["queue-init", "-q", "q"], ["queue-ls", "-q", "q"], ["queue-status", "-q", "q"]],
        [["queue-init", "-q", "q"], ["queue-process", "-q", "q", "true"]],
        [["prepare-nop", "-s", "seq"], ["prepare", "-s", "seq"]],
        [["gen-uuid"]],
    ],
    ids=["help", "ls", "process", "prepare", "gen-uuid"],
)
def test_local_commands_import_no_transport_library(tmp_path: Path, commands: list) -> None:
    heavy = loaded_after(commands, tmp_path) & HEAVY
    assert not heavy, f"imported {heavy}"


def test_gen_uuid_does_not_even_import_click(tmp_path: Path) -> None:
    assert "click" not in loaded_after([["gen-uuid"]], tmp_path)


def test_builtin_list_mirrors_entry_points() -> None:
    table = tomllib.loads((ROOT / "pyproject.toml").read_text())
    declared = table["project"]["entry-points"]["filespooler"]
    assert sorted(declared.values()) == sorted(BUILTIN_PLUGINS)
