"""The ssh config as OpenSSH reads it: evaluation checked against ``ssh -G``,
and ProxyJump, ProxyCommand and Include against the real sshd fixture."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import Runner
from fixtures_sftp import SSHServer
from helpers import one_error_line
from spooler_plugins.sftp.sshconfig import read_settings

from spooler.errors import SpoolError


@pytest.fixture
def connection() -> Any:
    """The connecting module (paramiko); the config reader needs no paramiko."""
    pytest.importorskip("paramiko")
    from spooler_plugins.sftp import connection

    return connection


KEYS = ("hostname", "user", "port", "identityfile", "proxycommand", "proxyjump")


def ssh_g(config: Path, host: str) -> dict[str, list[str]]:
    """OpenSSH's own evaluation (``ssh -G``) of the keywords we read."""
    out = subprocess.run(
        ["ssh", "-G", "-F", str(config), host],
        capture_output=True,
        text=True,
        check=True,
        stdin=subprocess.DEVNULL,
    ).stdout
    found: dict[str, list[str]] = {}
    for line in out.splitlines():
        key, _, value = line.partition(" ")
        if key in KEYS:
            found.setdefault(key, []).append(value)
    return found


def ours_g(config: Path, host: str) -> dict[str, list[str]]:
    s = read_settings(str(config), host)
    found = {"hostname": [s.hostname], "user": [s.remote_user], "port": [str(s.remote_port)]}
    if "identityfile" in s.values:
        found["identityfile"] = s.values["identityfile"]
    proxy = s.values.get("proxy")
    if proxy:
        found["proxycommand" if proxy[0] == "command" else "proxyjump"] = [proxy[1]]
    return found


CONFIG = """\
Host *.lan !bad.lan
  User lanuser
Host web
  HostName web.%h.example
  IdentityFile ~/k/%h-%r
Host web jump*
  Port 2222
  IdentityFile /k/second
  User first
Host jumpy
  ProxyJump bob@hop1:23,hop2
  ProxyCommand never used
Host cmd
  ProxyCommand sh -c "nc %h %p"  # not a comment for ssh
  ProxyJump never used
Match originalhost m* user carol
  HostName matched
Host m1
  User carol
Match host web.web.example
  User fromhostmatch
Host inc*
  Include {dir}/inc.d/*.conf
  HostName after-include
Include {dir}/top.conf
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "inc.d").mkdir()
    (tmp_path / "inc.d" / "1.conf").write_text("User included\nHost inc2\n  Port 2022\n")
    (tmp_path / "inc.d" / "2.conf").write_text("Match all\n  IdentityFile /k/from-include\n")
    (tmp_path / "top.conf").write_text("Host top\n  HostName top.example\n")
    path = tmp_path / "config"
    path.write_text(CONFIG.format(dir=tmp_path))
    return path


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
@pytest.mark.parametrize(
    "host",
    ["a.lan", "bad.lan", "web", "jumpy", "cmd", "m1", "m2", "inc1", "inc2", "top", "other"],
)
def test_evaluation_matches_openssh(config: Path, host: str) -> None:
    ours, theirs = ours_g(config, host), ssh_g(config, host)
    if "identityfile" not in ours:  # ssh -G lists its defaults, we keep none
        theirs.pop("identityfile", None)
    assert ours == theirs


def test_unsupported_keywords_are_refused_only_where_they_apply(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("Host other\n  Ciphers aes128-ctr\nHost web\n  AddressFamily any\n")
    read_settings(str(path), "web")  # inactive block, default value: nothing to refuse
    path.write_text("Host web\n  Compression yes\n  HostKeyAlias elsewhere\n")
    with pytest.raises(SpoolError, match=rf"^{path}:3: hostkeyalias elsewhere is not supported"):
        read_settings(str(path), "web")


def test_include_loops_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(f"Include {path}\n")
    with pytest.raises(SpoolError, match="nested too deeply"):
        read_settings(str(path), "web")


# -- against the real sshd ------------------------------------------------------------


def _aliases(sshd: SSHServer, tmp_path: Path, first: str) -> Path:
    """A config: the ``first`` block, then the fixture's settings for 'backupsrv'
    applying also to 'bastion', 'bastion2' (the same sshd) and any other alias."""
    config = sshd.write_config(tmp_path / "ssh_config")
    shared = config.read_text().replace("Host backupsrv", "Host *")
    config.write_text(f"{first}\n{shared}")
    return config


def _sessions_while_connected(connection: Any, sshd: SSHServer, config: Path, host: str) -> int:
    """New sshd connections that one connect() holds open."""
    before = set(sshd.children())
    client = connection.connect("sftp://" + host, host, None, None, {"ssh_config": str(config)})
    try:
        return len(set(sshd.children()) - before)
    finally:
        client.close()


@pytest.mark.parametrize(("jump", "sessions"), [("bastion", 2), ("bastion,bastion2", 3)])
def test_proxyjump_through_the_same_sshd(
    ours: Runner, sshd: SSHServer, tmp_path: Path, jump: str, sessions: int, connection: Any
) -> None:
    config = _aliases(sshd, tmp_path, f"Host target\n  ProxyJump {jump}")
    assert _sessions_while_connected(connection, sshd, config, "backupsrv") == 1
    assert _sessions_while_connected(connection, sshd, config, "target") == sessions
    env = {"FSPL_SSH_CONFIG": str(config)}
    url = f"sftp://target{tmp_path}/q"
    assert ours("queue-init", "-q", url, env=env).returncode == 0
    assert (tmp_path / "q" / "jobs").is_dir()


def test_proxycommand_carries_the_connection(ours: Runner, sshd: SSHServer, tmp_path: Path) -> None:
    """The target's own port is closed: only the ProxyCommand can reach sshd."""
    from spooler.testing import free_port

    closed = free_port()
    marker = tmp_path / "proxy-ran"
    known = tmp_path / "known_hosts"
    key = sshd.known_hosts.read_text().split(" ", 1)[1]
    known.write_text(f"[{sshd.host}]:{closed} {key}")
    config = _aliases(sshd, tmp_path, "")
    proxy = (
        f"sh -c 'touch {marker} && exec ssh -F {config} -o BatchMode=yes -W %h:{sshd.port} bastion'"
    )
    config.write_text(
        f"Host proxied\n  Port {closed}\n  ProxyCommand {proxy}\n"
        f"  UserKnownHostsFile {known}\n" + config.read_text()
    )
    result = ours(
        "queue-init", "-q", f"sftp://proxied{tmp_path}/q", env={"FSPL_SSH_CONFIG": str(config)}
    )
    assert result.returncode == 0, result.err
    assert marker.exists() and (tmp_path / "q" / "jobs").is_dir()


def test_include_defines_the_host(ours: Runner, sshd: SSHServer, tmp_path: Path) -> None:
    sub = tmp_path / "config.d"
    sub.mkdir()
    sshd.write_config(sub / "backup.conf")
    main = tmp_path / "config"
    main.write_text(f"Include {sub}/*.conf\n")
    result = ours("queue-init", "-q", sshd.url(f"{tmp_path}/q"), env={"FSPL_SSH_CONFIG": str(main)})
    assert result.returncode == 0, result.err


def test_changed_key_hint_names_the_known_hosts_file(
    ours: Runner, sshd: SSHServer, tmp_path: Path
) -> None:
    config = sshd.write_config(tmp_path / "ssh_config")
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    known = tmp_path / "known"
    wrong = (tmp_path / "other_key.pub").read_text().split()[:2]
    known.write_text(f"[{sshd.host}]:{sshd.port} {' '.join(wrong)}\n")
    result = ours(
        "queue-ls",
        "-q",
        sshd.url(f"{tmp_path}/q"),
        "-o",
        f"known_hosts={known}",
        env={"FSPL_SSH_CONFIG": str(config)},
    )
    line = one_error_line(result)
    assert "CHANGED" in line and f"ssh-keygen -R '[{sshd.host}]:{sshd.port}' -f {known}" in line


def test_jump_specs(connection: Any) -> None:
    assert connection._jump_spec("u", "ssh://bob@hop:23") == ("bob", "hop", 23)
    assert connection._jump_spec("u", "hop") == (None, "hop", None)
    with pytest.raises(SpoolError, match="bad ProxyJump host"):
        connection._jump_spec("u", "hop:port")


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
def test_the_example_config_reads_as_openssh_reads_it() -> None:
    example = Path(__file__).parent.parent / "examples" / "sftp-backup" / "ssh_config.example"
    ours = ours_g(example, "backupsrv")
    assert ours["proxyjump"] == ["bastion"]
    assert ours == ssh_g(example, "backupsrv")
