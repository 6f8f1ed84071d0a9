"""fspl(1) is generated from the CLI and installed; shells complete paths;
the sdist is a complete, testable source tree."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from conftest import Runner

from spooler.cli.commands import COMMANDS
from spooler.cli.manpage import render

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "share" / "man" / "man1" / "fspl.1"


def test_the_committed_page_is_the_generated_one() -> None:
    assert PAGE.read_text() == render(), "run: python -m spooler.cli.manpage > " + str(PAGE)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_option_of_every_command_is_documented(ours: Runner, name: str) -> None:
    """Against --help (click's own rendering), not the generator's source."""
    text = PAGE.read_text().replace("\\-", "-")
    section = text.split(f'.SS "{name}"\n', 1)[1].split(".SS ", 1)[0]
    helped = ours(name, "--help").out
    for option in set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", helped)) - {"--help"}:
        assert option in section, f"{name}: {option}"


@pytest.mark.skipif(shutil.which("groff") is None, reason="needs groff")
def test_the_page_renders_without_warnings() -> None:
    result = subprocess.run(
        ["groff", "-man", "-ww", "-z", "-k", str(PAGE)], capture_output=True, text=True
    )
    assert result.returncode == 0 and result.stderr == ""


def complete(ours: Runner, words: str) -> list[str]:
    """What click's bash completion answers for ``words`` (the last one being typed)."""
    env = {
        "_FSPL_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - (0 if words.endswith(" ") else 1)),
    }
    result = ours(env=env)
    assert result.returncode == 0, result.err
    return result.out.split()


@pytest.mark.parametrize(
    ("words", "kind"),
    [
        ("fspl queue-ls -q ", "dir"),
        ("fspl queue-process --queuedir ", "dir"),
        ("fspl prepare -s ", "file"),
        ("fspl prepare-nop --seqfile ", "file"),
        ("fspl prepare -i ", "file"),
    ],
)
def test_paths_are_completed(ours: Runner, words: str, kind: str) -> None:
    assert complete(ours, words) == [f"{kind},"]  # the shell then completes names of that kind


def test_commands_are_completed(ours: Runner) -> None:
    assert complete(ours, "fspl queue-p") == ["plain,queue-payload", "plain,queue-process"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_scripts(ours: Runner, shell: str) -> None:
    result = ours(env={"_FSPL_COMPLETE": f"{shell}_source"})
    assert result.returncode == 0, result.err
    assert "_FSPL_COMPLETE" in result.out


@pytest.mark.slow
def test_sdist_is_complete_and_its_wheel_installs_page_and_docs(tmp_path: Path) -> None:
    # From a copy: building writes egg-info into the tree, which CI's venv
    # builds may be writing at the same moment.
    copy, out = tmp_path / "tree", tmp_path / "dist"
    junk = (".venv*", ".git", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "build")
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(*junk))
    # No --sdist/--wheel: build makes the sdist, then the wheel from it.
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "-o", str(out)],
        cwd=copy,
        check=True,
        capture_output=True,
    )
    with tarfile.open(next(out.glob("*.tar.gz"))) as tar:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(tmp_path / "src", **safe)  # type: ignore[arg-type]
    tree = next((tmp_path / "src").iterdir())
    # Every test module, conftest and helper imports from the sdist alone;
    # plain asserts: rewriting them would only cost time here.
    collected = subprocess.run(
        [
            *(sys.executable, "-m", "pytest", "--collect-only", "-q"),
            *("-p", "no:cacheprovider", "--assert=plain"),
        ],
        cwd=tree,
        capture_output=True,
        text=True,
    )
    assert collected.returncode == 0, collected.stdout[-2000:] + collected.stderr[-2000:]
    assert re.search(r"^\d+ tests collected", collected.stdout, re.M), collected.stdout[-500:]
    with zipfile.ZipFile(next(out.glob("*.whl"))) as wheel:
        data = {n.split(".data/data/", 1)[1] for n in wheel.namelist() if ".data/data/" in n}
    assert "share/man/man1/fspl.1" in data
    assert "share/doc/filespooler/docs/transports/sftp.md" in data
    assert "share/doc/filespooler/docs/install.md" in data
