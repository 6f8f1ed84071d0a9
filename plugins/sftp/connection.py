"""Connecting to an SSH server the way ``ssh`` does: config, host keys, keys, agent.

Kept apart from the transport so that what decides *where and how* we
connect (ssh_config keywords, known_hosts, identities) can be read, tested
and extended on its own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import paramiko

from spooler import log
from spooler.errors import SpoolError

_log = log.get("spooler.sftp")


def describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def local_user() -> str:
    import getpass

    return getpass.getuser()


def ssh_settings(host: str, options: Mapping[str, str]) -> dict[str, Any]:
    path = options.get("ssh_config") or os.environ.get("FSPL_SSH_CONFIG") or "~/.ssh/config"
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        if options.get("ssh_config") or os.environ.get("FSPL_SSH_CONFIG"):
            raise SpoolError(f"ssh config file {path!r} does not exist")
        return {}
    try:
        return dict(paramiko.SSHConfig.from_path(path).lookup(host))
    except Exception as exc:
        raise SpoolError(f"Reading ssh config {path!r}: {describe(exc)}") from None


def _known_hosts_files(settings: Mapping[str, Any], options: Mapping[str, str]) -> list[str]:
    if options.get("known_hosts"):
        return [os.path.expanduser(options["known_hosts"])]
    configured = settings.get("userknownhostsfile")
    if configured:
        return [os.path.expanduser(p) for p in str(configured).split()]
    return [os.path.expanduser("~/.ssh/known_hosts")]


class _RecordNewHost(paramiko.MissingHostKeyPolicy):
    """StrictHostKeyChecking=accept-new: record an unknown host's key."""

    def __init__(self, path: str) -> None:
        self.path = path

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey):
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        with open(self.path, "a") as fh:
            fh.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        _log.warn("Permanently added %s (%s) to %s", hostname, key.get_name(), self.path)


def connect(
    url: str,
    host: str,
    port: int,
    user: str,
    settings: Mapping[str, Any],
    options: Mapping[str, str],
) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    known = _known_hosts_files(settings, options)
    for path in known:
        if os.path.exists(path):
            client.load_host_keys(path)
    strict = str(
        options.get("strict_host_key_checking") or settings.get("stricthostkeychecking", "yes")
    ).lower()
    if strict in ("accept-new", "no", "off"):
        client.set_missing_host_key_policy(_RecordNewHost(known[0]))
    else:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    identities = (
        [os.path.expanduser(options["identity_file"])]
        if options.get("identity_file")
        else [os.path.expanduser(p) for p in settings.get("identityfile", [])]
    )
    label = host if port == 22 else f"[{host}]:{port}"
    try:
        client.connect(
            host,
            port=port,
            username=user,
            key_filename=[p for p in identities if os.path.exists(p)] or None,
            allow_agent=True,
            look_for_keys=not identities,
            timeout=30,
            banner_timeout=30,
            auth_timeout=30,
        )
    except paramiko.BadHostKeyException as exc:
        raise SpoolError(
            f"{url}: the host key of {label} has CHANGED ({exc.key.get_name()}); refusing to "
            f"connect. If the change is expected, remove the old key with: ssh-keygen -R '{label}'"
        ) from None
    except paramiko.SSHException as exc:
        if "not found in known_hosts" in str(exc):
            raise SpoolError(
                f"{url}: unknown host key for {label}; verify it and add it with "
                f"'ssh-keyscan -p {port} {host} >> {known[0]}', or use "
                "-o strict_host_key_checking=accept-new"
            ) from None
        raise SpoolError(f"{url}: SSH to {label} failed: {describe(exc)}") from None
    except (TimeoutError, OSError) as exc:
        raise SpoolError(f"{url}: cannot connect to {label}: {describe(exc)}") from None
    return client
