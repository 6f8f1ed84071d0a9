"""The example third-party plugin (examples/fspl-webdav) registers like any
plugin; its own test module runs the conformance kit against wsgidav."""

from __future__ import annotations

import importlib.util

from conftest import Runner
from helpers import require


def test_example_plugin_is_listed(ours: Runner) -> None:
    installed = importlib.util.find_spec("fspl_webdav") is not None
    require(installed, "examples/fspl-webdav", "pip install -e examples/fspl-webdav")
    listing = ours("transports").out.splitlines()
    row = next(line for line in listing if line.startswith("webdav, webdavs"))
    assert "fspl-webdav" in row and " ok " in row and "process" in row


def test_a_broken_plugin_is_reported_not_fatal(ours: Runner, tmp_path) -> None:
    # A distribution whose entry point cannot be imported.
    dist = tmp_path / "broken_fspl_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: broken-fspl-plugin\nVersion: 0.1\n"
    )
    (dist / "entry_points.txt").write_text("[filespooler]\nbroken = no_such_module_xyz.plugin\n")
    env = {"PYTHONPATH": str(tmp_path)}
    listing = ours("transports", env=env)
    assert listing.returncode == 0
    assert "broken plugin broken (broken-fspl-plugin)" in listing.out
    assert ours("gen-filename", env=env).returncode == 0
    queue = tmp_path / "q"
    assert ours("queue-init", "-q", queue, env=env).returncode == 0
    assert ours("queue-ls", "-q", queue, env=env).returncode == 0
