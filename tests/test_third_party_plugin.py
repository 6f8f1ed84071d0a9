"""The example third-party plugin (examples/fspl-webdav) registers like any
plugin; its own test module runs the conformance kit against wsgidav."""

from __future__ import annotations

import importlib.util

from conftest import Runner
from helpers import fake_plugin, require


def test_example_plugin_is_listed(ours: Runner) -> None:
    installed = importlib.util.find_spec("fspl_webdav") is not None
    require(installed, "examples/fspl-webdav", "pip install -e examples/fspl-webdav")
    listing = ours("transports").out.splitlines()
    row = next(line for line in listing if line.startswith("webdav, webdavs"))
    assert "fspl-webdav" in row and " ok " in row and "process" in row


def test_a_broken_plugin_is_reported_not_fatal(ours: Runner, tmp_path) -> None:
    # A distribution whose entry point cannot be imported.
    env = fake_plugin(tmp_path, "broken-fspl-plugin", "broken", "no_such_module_xyz.plugin")
    listing = ours("transports", env=env)
    assert listing.returncode == 0
    assert "broken plugin broken (broken-fspl-plugin)" in listing.out
    assert ours("gen-filename", env=env).returncode == 0
    queue = tmp_path / "q"
    assert ours("queue-init", "-q", queue, env=env).returncode == 0
    assert ours("queue-ls", "-q", queue, env=env).returncode == 0


def test_a_misspelt_hook_makes_the_plugin_broken(ours: Runner, tmp_path) -> None:
    # pluggy's check_pending: a hookimpl no hookspec declares is refused,
    # not silently ignored (the transport it meant to declare never appears).
    source = (
        "from spooler.plugin import TransportSpec, hookimpl\n"
        "@hookimpl\n"
        "def fspl_transport():\n"
        "    return [TransportSpec('typo', ('typo',), 'x:Y')]\n"
    )
    env = fake_plugin(tmp_path, "typo-fspl-plugin", "typo", "typo_fspl_plugin", source)
    listing = ours("transports", env=env)
    assert listing.returncode == 0
    assert "broken plugin typo (typo-fspl-plugin)" in listing.out
    assert "fspl_transport" in listing.out
