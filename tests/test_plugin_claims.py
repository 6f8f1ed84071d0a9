"""FSPL_PLUGINS=all lets third-party plugins claim local paths."""

from __future__ import annotations

from pathlib import Path

from conftest import Runner
from helpers import fake_plugin


def test_third_party_claim_only_when_asked(ours: Runner, tmp_path: Path) -> None:
    env = fake_plugin(
        tmp_path,
        "claimer",
        "claimer",
        "claimer",
        "from spooler.hookspecs import hookimpl\n"
        "from spooler.plugin import TransportSpec\n"
        "SPEC = TransportSpec('claimer', (), 'claimer.t:Nope', 'claims everything')\n"
        "@hookimpl\n"
        "def fspl_claim_path(path):\n"
        "    return SPEC\n",
    )
    queue = tmp_path / "q"
    assert ours("queue-init", "-q", queue, env=env).returncode == 0  # built-ins only
    claimed = ours("queue-ls", "-q", queue, env={**env, "FSPL_PLUGINS": "all"})
    assert claimed.returncode == 1 and "claimer" in claimed.err
