"""FSPL_PLUGINS=all lets third-party plugins claim local paths."""

from __future__ import annotations

from pathlib import Path

from conftest import Runner


def test_third_party_claim_only_when_asked(ours: Runner, tmp_path: Path) -> None:
    pkg = tmp_path / "claimer"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(
        "from spooler.hookspecs import hookimpl\n"
        "from spooler.plugin import TransportSpec\n"
        "SPEC = TransportSpec('claimer', (), 'claimer.t:Nope', 'claims everything')\n"
        "@hookimpl\n"
        "def fspl_claim_path(path):\n"
        "    return SPEC\n"
    )
    dist = tmp_path / "claimer-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: claimer\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[filespooler]\nclaimer = claimer\n")
    env = {"PYTHONPATH": str(tmp_path)}
    queue = tmp_path / "q"
    assert ours("queue-init", "-q", queue, env=env).returncode == 0  # built-ins only
    claimed = ours("queue-ls", "-q", queue, env={**env, "FSPL_PLUGINS": "all"})
    assert claimed.returncode == 1 and "claimer" in claimed.err
