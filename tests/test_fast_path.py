"""The hand-checked fast path (spooler.cli.fast) against click.

Every command line runs twice, on identical copies of one directory: as
given, and with ``FSPL_NO_FAST_PATH=1`` (all through click).  Output, error
line, exit status and what is left on disk must be the same.  The table
also records which lines the fast path takes, so that a parser that gave
everything to click (and passed trivially) fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Result, make_ours
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spooler.cli import fast
from spooler.markers import HookimplMarker
from spooler.packet import MAGIC, read_header

#: In this process (conftest.make_ours): ``FSPL_NO_FAST_PATH`` is read per call.
run_ours = make_ours()
CLICK = {fast.DISABLE_VAR: "1"}

#: (command line, taken by the fast path?)
TABLE: list[tuple[list[str], bool]] = [
    (["queue-ls", "-q", "q"], True),
    (["queue-ls", "--queuedir", "q"], True),
    (["queue-ls", "--queuedir=q"], True),
    (["queue-ls", "-qq"], True),
    (["queue-ls", "-q", "q", "-d", "cat"], True),
    (["queue-ls", "--decoder=cat", "-q", "q"], True),
    (["queue-ls", "-q", "./q/"], True),
    (["queue-ls", "-q", "missing"], True),
    (["queue-ls", "-q", "in"], True),
    (["queue-ls", "-q", "q", "-q", "q"], False),
    (["queue-ls"], False),
    (["queue-ls", "-q"], False),
    (["queue-ls", "-q", "q", "--"], False),
    (["queue-ls", "-q", "q", "extra"], False),
    (["queue-ls", "-q", "q", "--bogus"], False),
    (["queue-ls", "-q", "q", "-h"], False),
    (["queue-ls", "--help"], False),
    (["queue-ls", "-q", "file:q"], False),
    (["queue-ls", "-q", ""], False),
    (["queue-ls", "-q", "q", "-o", "a=b"], False),
    (["queue-write", "-q", "q"], True),
    (["queue-write", "--queuedir=q"], True),
    (["queue-write", "-q", "missing"], True),
    (["queue-write", "-q", "q", "-d", "cat"], False),
    (["queue-write", "-q", "q", "--", "x"], False),
    (["prepare", "-s", "seq"], True),
    (["prepare", "-s", "seq", "-i", "in"], True),
    (["prepare", "-sseq", "-iin"], True),
    (["prepare", "--seqfile=seq", "--input", "-", "--", "a", "--help"], True),
    (["prepare", "-s", "-", "-i", "missing"], True),
    (["prepare", "-s", "seq", "--", "-s"], True),
    (["prepare", "-s", "nodir/seq"], True),
    (["prepare", "-i", "in"], False),
    (["prepare", "-s", "seq", "x"], False),
    (["prepare", "-s", "seq", "-s", "seq"], False),
    (["prepare", "-s"], False),
    (["prepare", "-s", "seq", "-i"], False),
    (["prepare", "-s", "--", "x"], False),
    (["queue-process", "-q", "q", "true"], True),
    (["queue-process", "true", "-q", "q", "--order-by", "timestamp"], True),
    (["queue-process", "-q", "q", "--on-error=Delete", "false"], True),
    (["queue-process", "-q", "q", "--on-error", "retry", "false"], True),
    (["queue-process", "-q", "q", "--on-error", "LEAVE", "false"], True),
    (["queue-process", "-q", "q", "-n", "1", "--never-delete", "cat"], True),
    (["queue-process", "-q", "q", "--maxjobs=+1", "--output-to", "saveboth", "echo"], True),
    (["queue-process", "-q", "q", "--allow-job-params", "echo", "--", "x"], True),
    (["queue-process", "-q", "q", "echo", "--", "x"], True),
    (["queue-process", "-q", "q", "--ignore-payload", "--timeout", "5", "cat"], True),
    (["queue-process", "-q", "missing", "true"], True),
    (["queue-process", "-q", "q", "no-such-program"], True),
    (["queue-process", "-q", "q", "-"], True),
    (["queue-process", "-q", "q"], False),
    (["queue-process", "-q", "q", "true", "false"], False),
    (["queue-process", "-q", "q", "--order-by", "bogus", "true"], False),
    (["queue-process", "-q", "q", "-n", "-1", "true"], False),
    (["queue-process", "-q", "q", "-n", "x", "true"], False),
    (["queue-process", "-q", "q", "--poll", "1", "true"], False),
    (["queue-process", "-q", "q", "--never-delete=1", "true"], False),
    (["queue-process", "-q", "q", "--timeout", "1.5", "true"], False),
    (["queue-process", "-q", "q", "--never-delete", "--never-delete", "true"], False),
    (["queue-process", "-q", "q", "-x", "true"], False),
]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with a queue ``q`` of two jobs, a seqfile ``seq``, a file ``in``."""
    root = tmp_path_factory.mktemp("template")
    assert run_ours("queue-init", "-q", "q", cwd=root).returncode == 0
    for payload in (b"one\n", b"two\n"):
        packet = run_ours("prepare", "-s", "seq", "--", "p", input=payload, cwd=root)
        assert run_ours("queue-write", "-q", "q", input=packet.stdout, cwd=root).returncode == 0
    (root / "in").write_bytes(b"input\n")
    return root


def _state(root: Path, before: set[str]) -> list[tuple[str, int]]:
    """Every file under ``root`` with its size; new files (random names) as NEW."""
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            rel = str(path.relative_to(root))
            found.append((rel if rel in before else "NEW", path.stat().st_size))
    return sorted(found)


def _stdout(command: str, result: Result) -> object:
    """stdout, with a prepared packet's creation time left out (it differs by run)."""
    if command != "prepare" or not result.stdout.startswith(MAGIC):  # or help, an error
        return result.stdout
    data = result.stdout
    offset = [0]

    def read(size: int) -> bytes:
        chunk = data[offset[0] : offset[0] + size]
        offset[0] += size
        return chunk

    header = read_header(read)
    return header.meta.seq, header.meta.cmd, data[header.length :]


def outcome(template: Path, tmp: Path, args: list[str], env: dict[str, str]) -> tuple[object, ...]:
    work = tmp / ("click" if env else "fast")
    shutil.copytree(template, work)
    before = {str(p.relative_to(work)) for p in work.rglob("*")}
    packet = (template / "q" / "jobs").iterdir().__next__().read_bytes()
    result = run_ours(*args, input=packet, env=env, cwd=work)
    return result.returncode, result.err, _stdout(args[0], result), _state(work, before)


@pytest.mark.parametrize(("args", "taken"), TABLE, ids=[" ".join(a) for a, _ in TABLE])
def test_fast_path_and_click_agree(
    template: Path, tmp_path: Path, args: list[str], taken: bool
) -> None:
    assert (fast.plan(args) is not None) is taken
    assert outcome(template, tmp_path, args, {}) == outcome(template, tmp_path, args, CLICK)


TOKENS = [
    "-q", "q", "--queuedir", "--queuedir=q", "-qq", "-d", "cat", "--decoder=cat", "--",
    "-s", "seq", "-i", "-", "in", "--order-by", "timestamp", "--on-error=delete", "-n",
    "1", "+2", "--never-delete", "--allow-job-params", "--timeout", "-h", "missing", "",
    "true", "echo", "-x", "--maxjobs=0", "--output-to=SaveBoth",
]  # fmt: skip


#: Random command lines compared; FSPL_FUZZ_EXAMPLES raises it for a long run.
EXAMPLES = int(os.environ.get("FSPL_FUZZ_EXAMPLES", "100"))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    command=st.sampled_from(sorted(fast.SPECS)),
    rest=st.lists(st.sampled_from(TOKENS), max_size=7),
)
def test_random_command_lines_agree(
    template: Path, tmp_path_factory: pytest.TempPathFactory, command: str, rest: list[str]
) -> None:
    tmp = tmp_path_factory.mktemp("random")
    args = [command, *rest]
    assert outcome(template, tmp, args, {}) == outcome(template, tmp, args, CLICK)


SHOW_MODULES = (
    "import sys\n"
    "from spooler.cli import main\n"
    "status = main(sys.argv[2:])\n"
    "open(sys.argv[1], 'w').write(' '.join(sorted(sys.modules)))\n"
    "sys.exit(status)\n"
)


@pytest.mark.parametrize(
    "args",
    [
        ["queue-ls", "-q", "q"],
        ["queue-write", "-q", "q"],
        ["prepare", "-s", "seq", "-i", "in"],
        ["queue-process", "-q", "q", "--on-error", "Delete", "cat"],
    ],
    ids=lambda a: a[0],
)
def test_local_hot_commands_import_no_click_pluggy_or_threading(
    template: Path, tmp_path: Path, args: list[str]
) -> None:
    work = tmp_path / "w"
    shutil.copytree(template, work)
    listing = tmp_path / "modules"
    packet = next((template / "q" / "jobs").iterdir()).read_bytes()
    proc = subprocess.run(
        [sys.executable, "-c", SHOW_MODULES, listing, *args],
        input=packet,
        capture_output=True,
        cwd=work,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    loaded = set(listing.read_text().split())
    assert "spooler.cli.fast" in loaded
    assert not loaded & {"click", "pluggy", "threading", "spooler.registry", "fsspec"}
    # and with the fast path off, the same command does load them (the check can fail)
    env = {**os.environ, fast.DISABLE_VAR: "1"}
    subprocess.run(
        [sys.executable, "-c", SHOW_MODULES, listing, *args],
        input=packet,
        capture_output=True,
        cwd=tmp_path / "w",
        env=env,
        check=False,
    )
    assert "click" in listing.read_text().split()


def test_fast_path_leaves_plugin_claims_to_the_registry(monkeypatch: pytest.MonkeyPatch) -> None:
    # Third-party claim hooks only run with FSPL_PLUGINS=all: then the registry decides.
    monkeypatch.setenv("FSPL_PLUGINS", "all")
    assert fast.local_queue("/srv/q", None) is None
    monkeypatch.delenv("FSPL_PLUGINS")
    assert fast.local_queue("/srv/q", None) is not None
    assert fast.local_queue("rclone:remote:q", None) is None


def test_rclone_is_the_only_builtin_claiming_plain_paths() -> None:
    # The fast path asks rclone's claim hook itself: no other built-in may have one.
    from importlib import import_module

    from spooler.registry import BUILTIN_PLUGINS, resolve_spec

    claiming = [m for m in BUILTIN_PLUGINS if hasattr(import_module(m), "fspl_claim_path")]
    assert claiming == ["spooler_plugins.rclone"]
    assert resolve_spec("/srv/q").factory == "spooler_plugins.local.transport:LocalTransport"


@pytest.mark.parametrize(
    "kwargs", [{}, {"tryfirst": True}, {"hookwrapper": True, "specname": "x"}, {"wrapper": True}]
)
def test_light_hookimpl_marks_as_pluggy_does(kwargs: dict[str, object]) -> None:
    import inspect

    import pluggy

    if (
        "wrapper" in kwargs
        and "wrapper" not in inspect.signature(pluggy.HookimplMarker.__call__).parameters
    ):
        pytest.skip("this pluggy has no new-style wrappers (before 1.1)")

    def ours() -> None: ...

    def theirs() -> None: ...

    HookimplMarker("filespooler")(ours, **kwargs)  # type: ignore[arg-type]
    pluggy.HookimplMarker("filespooler")(theirs, **kwargs)  # type: ignore[call-overload]
    mine, pluggys = ours.filespooler_impl, theirs.filespooler_impl  # type: ignore[attr-defined]
    # Every option pluggy sets, alike; pluggy before 1.1 sets no "wrapper"
    # (and ignores the one ours sets).
    assert {key: mine[key] for key in pluggys} == pluggys
    assert set(mine) - set(pluggys) <= {"wrapper"}
