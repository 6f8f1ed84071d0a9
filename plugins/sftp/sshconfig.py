"""ssh_config(5) read the way OpenSSH reads it, for one host.

paramiko's own reader ignores ``Include`` and keeps ``ProxyJump`` as text,
so fspl evaluates the file itself: ``Host`` and ``Match`` blocks, ``Include``
(globs, paths relative to ``~/.ssh``, an included file's blocks confined to
the block that includes it), the first value of a keyword wins
(``IdentityFile`` accumulates), ``%`` tokens and ``~``.  Keywords that would
change where or how ssh connects, and that fspl cannot honour, are refused
with the file and line rather than silently ignored; see
docs/transports/sftp.md for both lists.
"""

from __future__ import annotations

import glob
import hashlib
import os
import re
import shlex
import socket
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field

from spooler.errors import SpoolError

MAX_INCLUDE_DEPTH = 16
ACCUMULATED = {"identityfile"}
#: Where/how keywords fspl does not implement, with the values that change
#: nothing (OpenSSH's defaults); any other value is refused.
REFUSED: dict[str, set[str]] = {
    "addressfamily": {"any"},
    "bindaddress": set(),
    "bindinterface": set(),
    "canonicalizehostname": {"no"},
    "casignaturealgorithms": set(),
    "certificatefile": {"none"},
    "ciphers": set(),
    "connectionattempts": {"1"},
    "hostbasedacceptedalgorithms": set(),
    "hostkeyalgorithms": set(),
    "hostkeyalias": set(),
    "identityagent": {"ssh_auth_sock", "none"},
    "kexalgorithms": set(),
    "knownhostscommand": {"none"},
    "macs": set(),
    "nohostauthenticationforlocalhost": {"no"},
    "pkcs11provider": {"none"},
    "proxyusefdpass": {"no"},
    "pubkeyacceptedalgorithms": set(),
    "pubkeyacceptedkeytypes": set(),
    "pubkeyauthentication": {"yes"},
    "verifyhostkeydns": {"no"},
}
#: Tokens allowed in each keyword, as in ssh_config(5).
_TOKENS = {
    "proxycommand": "%hnpr",
    "proxyjump": "%hnpr",
    "identityfile": "%CdhijLlnpru",
    "userknownhostsfile": "%CdhijLlnpru",
    "globalknownhostsfile": "%CdhijLlnpru",
    "include": "%CdhijLlnpru",
    "exec": "%CdhijLlnpru",
}
_LINE = re.compile(r"\s*([A-Za-z][A-Za-z0-9]*)\s*(?:=\s*|\s+|$)(.*)")


@dataclass
class Settings:
    """What the config says for one host (keywords lower-cased, args as given)."""

    original: str
    user: str | None = None  # from the command line (URL, jump spec): wins
    port: int | None = None
    values: dict[str, list[str]] = field(default_factory=dict)
    where: dict[str, str] = field(default_factory=dict)  # keyword -> "file:line"

    def first(self, keyword: str, default: str | None = None) -> str | None:
        found = self.values.get(keyword)
        return found[0] if found else default

    @property
    def hostname(self) -> str:
        """HostName, whose only token is %h: the host as given."""
        value = self.first("hostname")
        if not value:
            return self.original
        if re.search(r"%[^%h]", value):
            raise SpoolError(f"{self.where['hostname']}: HostName allows only %h and %%")
        return re.sub(r"%([%h])", lambda m: "%" if m.group(1) == "%" else self.original, value)

    @property
    def remote_user(self) -> str:
        return self.user or self.first("user") or local_user()

    @property
    def remote_port(self) -> int:
        if self.port:
            return self.port
        value = self.first("port", "22")
        try:
            return int(value or "22")
        except ValueError:
            raise SpoolError(f"{self.where['port']}: bad Port {value!r}") from None

    def proxy(self) -> tuple[str, str] | None:
        """``("command", CMD)``, ``("jump", HOSTS)``, or None: whichever came first."""
        value = self.values.get("proxy")
        if not value or value[1].lower() == "none":
            return None
        return value[0], value[1]

    def paths(self, keyword: str, default: list[str]) -> list[str]:
        found = self.values.get(keyword)
        return [expand(p, self, keyword) for p in found] if found else default


def local_user() -> str:
    import getpass

    return getpass.getuser()


def expand(value: str, settings: Settings, keyword: str) -> str:
    """``%`` tokens, then a leading ``~``, as OpenSSH does for ``keyword``."""
    allowed = _TOKENS.get(keyword, "%")

    def token(match: re.Match[str]) -> str:
        char = match.group(1)
        if char not in allowed:
            raise SpoolError(f"{keyword}: token %{char} is not allowed in {value!r}")
        return _token_value(char, settings)

    out = re.sub(r"%(.)", token, value)
    return os.path.expanduser(out) if out.startswith("~") else out


def _token_value(char: str, s: Settings) -> str:
    if char == "%":
        return "%"
    if char == "h":
        return s.hostname
    if char == "n":
        return s.original
    if char == "p":
        return str(s.remote_port)
    if char == "r":
        return s.remote_user
    if char == "u":
        return local_user()
    if char == "d":
        return os.path.expanduser("~")
    if char in "lL":
        name = socket.gethostname()
        return name if char == "l" else name.split(".")[0]
    if char == "i":
        return str(os.getuid())
    if char == "j":
        proxy = s.values.get("proxy")
        return proxy[1] if proxy and proxy[0] == "jump" else ""
    # %C: a hash of local host, host, port, user (and jump), as ControlPath uses.
    text = "".join(_token_value(c, s) for c in "lhpr") + _token_value("j", s)
    return hashlib.sha1(text.encode()).hexdigest()


def _matches(patterns: list[str], name: str) -> bool:
    """An OpenSSH pattern list: any positive match, and no negated one."""
    found = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = re.escape(pattern.lstrip("!")).replace(r"\*", ".*").replace(r"\?", ".")
        if re.fullmatch(regex, name, re.IGNORECASE):
            if negated:
                return False
            found = True
    return found


class Reader:
    """Evaluates one config file (with its includes) for one host."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.home_ssh = os.path.expanduser("~/.ssh")

    def settings(self, host: str, user: str | None = None, port: int | None = None) -> Settings:
        settings = Settings(host, user, port)
        if os.path.exists(self.path):
            self._read(self.path, settings, [True], depth=0, never_match=False)
        return settings

    def _read(
        self, path: str, s: Settings, active: list[bool], depth: int, never_match: bool
    ) -> None:
        if depth > MAX_INCLUDE_DEPTH:
            raise SpoolError(f"{path}: Include nested too deeply (a loop?)")
        try:
            with open(path, encoding="utf-8", errors="surrogateescape") as fh:
                lines = fh.read().splitlines()
        except OSError as exc:
            raise SpoolError(f"Reading ssh config {path!r}: {exc.strerror}") from None
        for number, line in enumerate(lines, 1):
            where = f"{path}:{number}"
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            match = _LINE.match(stripped)
            if match is None:
                raise SpoolError(f"{where}: cannot parse {stripped!r}")
            keyword, rest = match.group(1).lower(), match.group(2)
            try:
                # A command is the rest of the line, verbatim, as for ssh.
                args = [rest] if keyword == "proxycommand" else shlex.split(rest, comments=True)
            except ValueError as exc:
                raise SpoolError(f"{where}: {exc}") from None
            self._line(keyword, args, where, s, active, depth, never_match)

    def _line(
        self,
        keyword: str,
        args: list[str],
        where: str,
        s: Settings,
        active: list[bool],
        depth: int,
        never_match: bool,
    ) -> None:
        if keyword == "host":
            active[0] = not never_match and _matches(args, s.original)
        elif keyword == "match":
            active[0] = not never_match and self._match(args, where, s)
        elif keyword == "include":
            self._include(args, where, s, active, depth)
        elif active[0]:
            if not args:
                raise SpoolError(f"{where}: {keyword} needs a value")
            self._set(keyword, args, where, s)

    def _set(self, keyword: str, args: list[str], where: str, s: Settings) -> None:
        allowed = REFUSED.get(keyword)
        if allowed is not None and " ".join(args).lower() not in allowed:
            raise SpoolError(
                f"{where}: {keyword} {' '.join(args)} is not supported by fspl's SFTP "
                "transport (see docs/transports/sftp.md); ssh would honour it"
            )
        if keyword in ("proxycommand", "proxyjump"):
            # The first of the two wins; ProxyCommand is the rest of the line.
            kind = "command" if keyword == "proxycommand" else "jump"
            s.values.setdefault("proxy", [kind, " ".join(args)])
        elif keyword in ACCUMULATED:
            s.values.setdefault(keyword, []).append(args[0])
        elif keyword in ("userknownhostsfile", "globalknownhostsfile"):
            s.values.setdefault(keyword, args)
        else:
            s.values.setdefault(keyword, [" ".join(args)])
        s.where.setdefault(keyword, where)

    def _include(
        self, args: list[str], where: str, s: Settings, active: list[bool], depth: int
    ) -> None:
        outer = active[0]
        for pattern in args:
            pattern = expand(pattern, s, "include")
            if not os.path.isabs(pattern):
                pattern = os.path.join(self.home_ssh, pattern)
            for path in sorted(glob.glob(pattern)):
                # Blocks of an included file never match inside a block that
                # does not, and do not leak out of the file.
                self._read(path, s, active, depth + 1, never_match=not outer)
                active[0] = outer

    def _match(self, args: list[str], where: str, s: Settings) -> bool:
        result = True
        i = 0
        while i < len(args):
            criterion = args[i].lower()
            negate = criterion.startswith("!")
            criterion = criterion.lstrip("!")
            if criterion in ("all", "canonical", "final"):
                # One pass and no canonicalisation: "final" is this pass.
                ok = criterion != "canonical"
                i += 1
            else:
                if i + 1 >= len(args):
                    raise SpoolError(f"{where}: Match {criterion} needs an argument")
                value = args[i + 1]
                i += 2
                ok = self._criterion(criterion, value, where, s)
            result = result and (ok != negate)
        return result

    def _criterion(self, criterion: str, value: str, where: str, s: Settings) -> bool:
        patterns = value.split(",")
        if criterion == "host":
            return _matches(patterns, s.hostname)
        if criterion == "originalhost":
            return _matches(patterns, s.original)
        if criterion == "user":
            return _matches(patterns, s.remote_user)
        if criterion == "localuser":
            return _matches(patterns, local_user())
        if criterion == "exec":
            shell = os.environ.get("SHELL") or "/bin/sh"
            command = expand(value, s, "exec")
            return subprocess.run([shell, "-c", command], check=False).returncode == 0
        raise SpoolError(f"{where}: Match {criterion} is not supported by fspl")


def read_settings(
    path: str, host: str, user: str | None = None, port: int | None = None
) -> Settings:
    return Reader(path).settings(host, user, port)


def config_path(options: Mapping[str, str]) -> tuple[str, bool]:
    """The config file to read and whether it was named explicitly."""
    named = options.get("ssh_config") or os.environ.get("FSPL_SSH_CONFIG")
    return os.path.expanduser(named or "~/.ssh/config"), bool(named)
