"""Connecting to an SSH server the way ``ssh`` does: config, proxies, host keys, keys, agent.

Kept apart from the transport so that what decides *where and how* we
connect (ssh_config, ProxyJump/ProxyCommand, known_hosts, identities) can
be read, tested and extended on its own.  The config is evaluated by
:mod:`.sshconfig`.

A ``ProxyJump`` chain ``a,b`` is followed as ``ssh -J a,b`` does: connect
to ``b`` through ``a`` (each with its own config), then open a
``direct-tcpip`` channel from ``b`` to the target, whose host key is checked
like any other.  A ``ProxyCommand`` runs under ``$SHELL -c 'exec …'`` and
carries the connection on its stdin/stdout.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import paramiko

from spooler import log
from spooler.errors import SpoolError

from .sshconfig import Reader, Settings, config_path, expand

_log = log.Logger("spooler.sftp")
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
GLOBAL_KNOWN_HOSTS = ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]
MAX_HOPS = 8  # a ProxyJump loop in the config ends here


# paramiko logs its own tracebacks (a port that is not SSH): our one line says it.
logging.getLogger("paramiko").addHandler(logging.NullHandler())
logging.getLogger("paramiko").propagate = False


def describe(exc: BaseException) -> str:
    """A paramiko or OS error on one line, never empty (paramiko's "Server
    connection dropped:" has nothing after the colon, and a refused connection
    is "[Errno None] Unable to connect to port …": its per-address causes say
    more)."""
    if isinstance(exc, paramiko.ssh_exception.NoValidConnectionsError):
        causes = dict.fromkeys(e.strerror or str(e) for e in exc.errors.values())
        return "; ".join(causes) or "no address answered"
    text = " ".join(str(exc).split()).rstrip(": ")
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f'"{exc.filename}": {text}'
    if not text or text.endswith("dropped"):
        return f"{text or type(exc).__name__} (the server closed the connection)"
    return text


class Client(paramiko.SSHClient):
    """An SSH client that also closes the jump hosts it was reached through."""

    def __init__(self) -> None:
        super().__init__()
        self.hops: list[paramiko.SSHClient] = []

    def close(self) -> None:
        super().close()
        for hop in reversed(self.hops):
            hop.close()


class _RecordNewHost(paramiko.MissingHostKeyPolicy):
    """StrictHostKeyChecking=accept-new: record an unknown host's key."""

    def __init__(self, path: str, hashed: bool) -> None:
        self.path = path
        self.hashed = hashed

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        name = paramiko.HostKeys.hash_host(hostname) if self.hashed else hostname
        with open(self.path, "a") as fh:
            fh.write(f"{name} {key.get_name()} {key.get_base64()}\n")
        _log.warn("Permanently added %s (%s) to %s", hostname, key.get_name(), self.path)


def connect(
    url: str, host: str, port: int | None, user: str | None, options: Mapping[str, str]
) -> Client:
    """Connect to ``host`` as ``ssh [-l user] [-p port] host`` would.

    ``options`` are the transport's ``-o`` values; like ssh's command-line
    options they apply to the target only, not to the jump hosts.
    """
    path, named = config_path(options)
    if named and not os.path.exists(path):
        raise SpoolError(f"ssh config file {path!r} does not exist")
    reader = Reader(path)
    return _connect(url, reader, reader.settings(host, user, port), options, 0)


def _connect(
    url: str, reader: Reader, s: Settings, options: Mapping[str, str], depth: int
) -> Client:
    if depth > MAX_HOPS:
        raise SpoolError(f"{url}: more than {MAX_HOPS} ProxyJump hops (a loop in the config?)")
    client = Client()
    known = _known_hosts_files(s, options)
    for path in known:
        if os.path.exists(path):
            client.load_host_keys(path)
    for path in s.paths("globalknownhostsfile", GLOBAL_KNOWN_HOSTS):
        if os.path.exists(path):
            client.load_system_host_keys(path)
    strict = str(
        options.get("strict_host_key_checking") or s.first("stricthostkeychecking", "yes")
    ).lower()
    if strict in ("accept-new", "no", "off"):
        hashed = (s.first("hashknownhosts") or "no").lower() == "yes"
        client.set_missing_host_key_policy(_RecordNewHost(known[0], hashed))
    else:
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
    sock = _route(url, reader, s, client, depth)
    _login(url, client, s, known, options, sock)
    return client


def _route(url: str, reader: Reader, s: Settings, client: Client, depth: int) -> Any:
    """The socket-like object to talk to ``s`` through, or None for TCP."""
    proxy = s.proxy()
    if proxy is None:
        return None
    kind, value = proxy
    if kind == "command":
        shell = os.environ.get("SHELL") or "/bin/sh"
        command = expand(value, s, "proxycommand")
        _log.debug("Connecting to %s through ProxyCommand %s", s.original, command)
        return paramiko.ProxyCommand(shlex.join([shell, "-c", f"exec {command}"]))
    hops = [h.strip() for h in value.split(",") if h.strip()]
    last, rest = hops[-1], hops[:-1]
    jump_user, jump_host, jump_port = _jump_spec(url, last)
    jump = reader.settings(jump_host, jump_user, jump_port)
    if rest:  # as ssh -J a,b runs "ssh -J a b": the rest of the chain overrides b's config
        jump.values["proxy"] = ["jump", ",".join(rest)]
    hop = _connect(url, reader, jump, {}, depth + 1)
    client.hops.append(hop)
    transport = hop.get_transport()
    assert transport is not None
    _log.debug("Jumping through %s to %s:%d", last, s.hostname, s.remote_port)
    try:
        return transport.open_channel("direct-tcpip", (s.hostname, s.remote_port), ("", 0))
    except (paramiko.SSHException, OSError) as exc:
        raise SpoolError(
            f"{url}: jump host {last} cannot reach {s.hostname}:{s.remote_port}: {describe(exc)}"
        ) from None


def _jump_spec(url: str, spec: str) -> tuple[str | None, str, int | None]:
    """``[user@]host[:port]`` or ``ssh://[user@]host[:port]``."""
    parts = urlsplit(spec if spec.startswith("ssh://") else f"ssh://{spec}")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if not parts.hostname or port == -1 or parts.path:
        raise SpoolError(f"{url}: bad ProxyJump host {spec!r} ([user@]host[:port])")
    return parts.username, parts.hostname, port


def _known_hosts_files(s: Settings, options: Mapping[str, str]) -> list[str]:
    if options.get("known_hosts"):
        return [os.path.expanduser(options["known_hosts"])]
    return s.paths("userknownhostsfile", [os.path.expanduser(DEFAULT_KNOWN_HOSTS)])


def _login(
    url: str,
    client: Client,
    s: Settings,
    known: list[str],
    options: Mapping[str, str],
    sock: Any,
) -> None:
    host, port = s.hostname, s.remote_port
    identities = (
        [os.path.expanduser(options["identity_file"])]
        if options.get("identity_file")
        else s.paths("identityfile", [])
    )
    only = (s.first("identitiesonly") or "no").lower() == "yes"
    agent = (s.first("identityagent") or "").lower() != "none" and not only
    timeout = _number(s, "connecttimeout", 30)
    label = host if port == 22 else f"[{host}]:{port}"
    try:
        client.connect(
            host,
            port=port,
            username=s.remote_user,
            key_filename=[p for p in identities if os.path.exists(p)] or None,
            allow_agent=agent,
            look_for_keys=not identities and not only,
            timeout=timeout,
            banner_timeout=timeout,
            auth_timeout=timeout,
            compress=(s.first("compression") or "no").lower() == "yes",
            sock=sock,
        )
    except paramiko.BadHostKeyException as exc:
        raise SpoolError(
            f"{url}: the host key of {label} has CHANGED ({exc.key.get_name()}); refusing to "
            f"connect. If the change is expected, remove the old key with: "
            f"{_forget_command(label, known)}"
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
    alive = int(_number(s, "serveraliveinterval", 0))
    transport = client.get_transport()
    if alive > 0 and transport is not None:
        transport.set_keepalive(alive)


def _number(s: Settings, keyword: str, default: float) -> float:
    value = s.first(keyword)
    try:
        return float(value) if value is not None else default
    except ValueError:
        raise SpoolError(f"{s.where[keyword]}: {keyword} needs a number, not {value!r}") from None


def _forget_command(label: str, known: list[str]) -> str:
    """``ssh-keygen -R`` for the file that holds the old key (``-f`` unless default)."""
    holder = next(
        (p for p in known if os.path.exists(p) and paramiko.HostKeys(p).lookup(label)), known[0]
    )
    default = os.path.expanduser(DEFAULT_KNOWN_HOSTS)
    where = "" if os.path.abspath(holder) == os.path.abspath(default) else f" -f {holder}"
    return f"ssh-keygen -R '{label}'{where}"
