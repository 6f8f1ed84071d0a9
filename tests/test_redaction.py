"""A password in a queue URL never shows: not in output, logs or errors.

The built-in transports refuse such URLs (sftp) or have none (s3, rclone),
so a third-party transport that takes them stands in: ``pwdir://USER:PASS@
HOST/PATH`` is a local directory reached through a URL carrying a password.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Runner
from helpers import fake_plugin

SOURCE = """
from urllib.parse import urlsplit
from spooler.plugin import TransportSpec, hookimpl
from spooler_plugins.local.transport import LocalTransport

class PasswordDir(LocalTransport):
    @classmethod
    def from_url(cls, url, options):
        return cls(url, urlsplit(url).path)

@hookimpl
def fspl_transports():
    return [TransportSpec("pwdir", ("pwdir",), "pwdir_plugin:PasswordDir")]
"""


@pytest.fixture
def pw_queue(ours: Runner, tmp_path: Path) -> tuple[str, dict[str, str]]:
    """The URL of a queue with one job, a ``-copy`` queue beside it, and the
    environment that installs the plugin.  Only queue-init goes through the
    plugin (a process: plugins are found at start-up); the rest is done on
    the directories it names, in this process."""
    (tmp_path / "site").mkdir()
    env = fake_plugin(tmp_path / "site", "pwdir-plugin", "pwdir", "pwdir_plugin", SOURCE)
    url = f"pwdir://me:SECRET@localhost{tmp_path}/q"
    assert ours("queue-init", "-q", url, env=env).returncode == 0
    job = ours("prepare", "-s", "-", "-i", "-", input=b"payload").stdout
    assert ours("queue-write", "-q", tmp_path / "q", input=job).returncode == 0
    assert ours("queue-init", "-q", tmp_path / "q-copy").returncode == 0
    return url, env


@pytest.mark.parametrize(
    ("args", "shows_url"),
    [
        (("queue-ls", "-q", "{q}"), False),
        (("queue-ls", "-q", "{q}", "-d", "cat"), False),
        (("queue-status", "-q", "{q}"), True),
        (("queue-info", "-q", "{q}", "-j", "1"), True),
        (("queue-info", "-q", "{q}", "-j", "9"), True),
        (("queue-get-next", "-q", "{q}"), False),
        (("queue-process", "-q", "{q}", "sh", "--", "-c", "env; exit 3"), True),
        (("queue-move", "{q}", "{q}/nope"), True),
        (("queue-move", "--keep", "{q}", "{q}"), True),
        (("queue-move", "--keep", "{q}", "{q}-copy"), True),
    ],
)
def test_password_never_printed(
    ours: Runner, pw_queue: tuple[str, dict[str, str]], args: tuple[str, ...], shows_url: bool
) -> None:
    """Output, trace-level logs and errors: the URL only with ``***``."""
    url, env = pw_queue
    filled = [arg.replace("{q}", url) for arg in args]
    result = ours("-l", "trace", *filled, env=env)
    both = result.out + result.err
    assert "SECRET" not in both, both
    assert ("me:***@localhost" in both) == shows_url, both
