"""``fspl serve CONFIG``: one process watching and processing many queues.

CONFIG is TOML (docs/operations.md)::

    max_parallel = 4                 # jobs at once over all queues (default: CPUs)

    [defaults]                       # any queue-process option, by its long name
    poll = 30
    on_error = "Retry"

    [[queue]]
    queue = "/srv/queues/*"          # a glob: one queue per matching directory
    command = ["tar", "-xf", "-", "-C", "/backups/{name}"]

Loading checks everything before anything runs, and a mistake is one
:class:`ConfigError` naming the file, the line and the key.  A running
:class:`Server` re-expands its globs at every poll and at once when inotify
reports a directory created in or removed from a glob's parent, and re-reads
CONFIG on SIGHUP (keeping the old one if the new one is bad).  Queues whose
settings did not change keep running untouched.
"""

from __future__ import annotations

import glob
import os
import re
import shlex
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from . import log
from .errors import SpoolError
from .execute import RunOptions
from .inotify import IN_CREATE, IN_DELETE, IN_IGNORED, IN_ISDIR, IN_MOVED_FROM, IN_MOVED_TO
from .queue import OnError, Order, ProcessConfig
from .registry import split_scheme
from .watcher import LOCAL_POLL, QueueSpec, Watcher, run_until_signalled

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # pyright: ignore[reportMissingImports]

_log = log.Logger("spooler.serve")
_MAGIC = re.compile(r"[*?[]")
_DIR_CHANGES = IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM


class ConfigError(SpoolError):
    """A bad CONFIG: the message names the file, the line and the key."""


@dataclass(frozen=True)
class Entry:
    """One ``[[queue]]`` table with ``[defaults]`` applied."""

    pattern: str
    command: tuple[str, ...]
    options: tuple[tuple[str, str], ...] = ()
    order_by: Order = Order.SEQUENCE
    on_error: OnError = OnError.RETRY
    never_delete: bool = False
    save_output: bool = False
    decoder: str | None = None
    allow_job_params: bool = False
    ignore_payload: bool = False
    timeout: int | None = None
    poll: float | None = None
    #: 1-based position in CONFIG (for messages; not part of the settings).
    number: int = field(default=0, compare=False)

    @property
    def is_glob(self) -> bool:
        return bool(_MAGIC.search(self.pattern))

    def locations(self) -> list[str]:
        """The queues this entry names now (a glob: its matching directories)."""
        if not self.is_glob:
            return [self.pattern]
        return sorted(p for p in glob.glob(self.pattern) if os.path.isdir(p))

    def glob_parent(self) -> str:
        """The deepest directory of the pattern without wildcards (watched for changes)."""
        head = _MAGIC.split(self.pattern, 1)[0]
        return os.path.dirname(head) or "."


@dataclass(frozen=True)
class Resolved:
    """One queue to serve: a location and the entry whose settings it uses."""

    location: str
    entry: Entry

    @property
    def name(self) -> str:
        return os.path.basename(self.location.rstrip("/"))

    def argv(self) -> list[str]:
        return [part.replace("{name}", self.name) for part in self.entry.command]

    def spec(self) -> QueueSpec:
        from .api import command_runner

        entry = self.entry
        argv = [os.fsencode(part) for part in self.argv()]
        run = RunOptions(
            argv[0], tuple(argv[1:]), entry.allow_job_params, entry.ignore_payload, entry.timeout
        )
        config = ProcessConfig(
            entry.order_by, entry.on_error, entry.never_delete, None, entry.save_output
        )
        return QueueSpec(
            self.location,
            command_runner(run),
            config,
            entry.decoder,
            dict(entry.options),
            entry.poll,
        )

    def describe(self) -> str:
        e = self.entry
        poll = "default" if e.poll is None else f"{e.poll:g} s"
        extra = "".join(
            f", {name}"
            for name, on in (
                ("never-delete", e.never_delete),
                ("save-output", e.save_output),
                ("allow-job-params", e.allow_job_params),
                ("ignore-payload", e.ignore_payload),
            )
            if on
        )
        if e.timeout is not None:
            extra += f", timeout {e.timeout} s"
        if e.decoder is not None:
            extra += f", decoder {e.decoder!r}"
        if e.options:
            extra += ", options " + " ".join(f"{k}={v}" for k, v in e.options)
        return (
            f"{self.location}: {shlex.join(self.argv())} (entry {e.number}; order "
            f"{e.order_by.value}, on error {e.on_error.value}, poll {poll}{extra})"
        )


@dataclass(frozen=True)
class ServeConfig:
    path: str
    max_parallel: int
    entries: tuple[Entry, ...]

    def resolve(self) -> dict[str, Resolved]:
        """Every queue to serve now; a queue matched twice belongs to the first entry."""
        out: dict[str, Resolved] = {}
        for entry in self.entries:
            for location in entry.locations():
                out.setdefault(os.path.normpath(location), Resolved(location, entry))
        return {r.location: r for r in out.values()}


# -- loading ----------------------------------------------------------------------


class _Bad(Exception):
    """A value error for one key, located by :func:`load`."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _string(key: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise _Bad(key, f"expected a non-empty string, got {value!r}")
    return value


def _flag(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _Bad(key, f"expected true or false, got {value!r}")
    return value


def _choice(values: list[str]) -> Callable[[str, object], str]:
    def convert(key: str, value: object) -> str:
        if isinstance(value, str):
            for name in values:
                if value.lower() == name.lower():
                    return name
        raise _Bad(key, f"expected one of {', '.join(values)}, got {value!r}")

    return convert


def _whole(key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**64:
        raise _Bad(key, f"expected a whole number of seconds, got {value!r}")
    return value


def _seconds(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 86400:
        raise _Bad(key, f"expected a number of seconds above 0 and at most 86400, got {value!r}")
    return float(value)


def _argv(key: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not (isinstance(value, list) and value and all(isinstance(v, str) and v for v in value)):
        raise _Bad(
            key, f"expected a list of strings (the program, then its arguments), got {value!r}"
        )
    return tuple(value)


def _pairs(key: str, value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise _Bad(key, f"expected a table of transport options, got {value!r}")
    out = []
    for name, item in value.items():
        if isinstance(item, bool):
            item = "true" if item else "false"
        elif isinstance(item, int | float):
            item = str(item)
        if not isinstance(item, str):
            raise _Bad(f"{key}.{name}", f"expected a string, number or boolean, got {item!r}")
        out.append((name, item))
    return tuple(sorted(out))


_ORDER = _choice([o.value for o in Order])
_ON_ERROR = _choice([o.value for o in OnError])
_OUTPUT = _choice(["PassBoth", "SaveBoth"])

#: Per-queue keys (queue-process's long option names) → (Entry field, parse).
_KEYS: dict[str, tuple[str, Callable[[str, Any], Any]]] = {
    "command": ("command", _argv),
    "options": ("options", _pairs),
    "order_by": ("order_by", lambda k, v: Order(_ORDER(k, v))),
    "on_error": ("on_error", lambda k, v: OnError(_ON_ERROR(k, v))),
    "never_delete": ("never_delete", _flag),
    "output_to": ("save_output", lambda k, v: _OUTPUT(k, v) == "SaveBoth"),
    "decoder": ("decoder", _string),
    "allow_job_params": ("allow_job_params", _flag),
    "ignore_payload": ("ignore_payload", _flag),
    "timeout": ("timeout", _whole),
    "poll": ("poll", _seconds),
}
_REFUSED = {
    "maxjobs": "a server runs until it is stopped; use queue-process -n for a bounded run",
    "watch": "serve always watches",
}


def _fields(table: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for raw, value in table.items():
        key = raw.replace("-", "_")
        if key in _REFUSED:
            raise _Bad(raw, f"not supported by serve: {_REFUSED[key]}")
        if key not in _KEYS:
            known = ", ".join(sorted(_KEYS))
            raise _Bad(raw, f"unknown key in {where} (known: {known})")
        name, parse = _KEYS[key]
        out[name] = parse(raw, value)
    return out


def _entry(table: Any, number: int, defaults: dict[str, Any], base: str) -> Entry:
    if not isinstance(table, dict):
        raise _Bad("queue", "each [[queue]] must be a table")
    fields = dict(defaults)
    if "queue" not in table:
        raise _Bad("queue", "missing: every [[queue]] needs queue = PATH, URL or glob")
    pattern = _string("queue", table["queue"])
    fields.update(_fields({k: v for k, v in table.items() if k != "queue"}, "[[queue]]"))
    if "command" not in fields:
        raise _Bad("command", "missing: set command = [PROGRAM, ARGS...] here or in [defaults]")
    scheme, _ = split_scheme(pattern)
    local = scheme is None or scheme == "file"
    if _MAGIC.search(pattern) and not local:
        raise _Bad("queue", f"{pattern!r}: wildcards work for local paths only")
    if local and scheme is None and not os.path.isabs(pattern):
        pattern = os.path.join(base, pattern)  # relative to CONFIG, not to the cwd
    return Entry(pattern=pattern, number=number, **fields)


def _max_parallel(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _Bad("max_parallel", f"expected a whole number of at least 1, got {value!r}")
    return value


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load(path: str) -> ServeConfig:
    """Read and check CONFIG; raise ConfigError (file, line, key) on any mistake."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc} (os error {exc.errno})") from None
    text = raw.decode("utf-8", "replace")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}, {_syntax_error(str(exc), text)}") from None
    section: tuple[str, int] | None = None
    try:
        for key in doc:
            if key not in ("max_parallel", "defaults", "queue"):
                raise _Bad(
                    key, "unknown top-level key (known: max_parallel, [defaults], [[queue]])"
                )
        max_parallel = _max_parallel(doc.get("max_parallel", _cpus()))
        section = ("defaults", 0)
        defaults_table = doc.get("defaults", {})
        if not isinstance(defaults_table, dict):
            raise _Bad("defaults", "expected a table: [defaults]")
        defaults = _fields(defaults_table, "[defaults]")
        queues = doc.get("queue", [])
        section = None
        if not isinstance(queues, list) or not queues:
            raise _Bad("queue", "no queues: add at least one [[queue]] table")
        base = os.path.dirname(os.path.abspath(path))
        entries: list[Entry] = []
        for number, table in enumerate(queues, 1):
            section = ("queue", number)
            entries.append(_entry(table, number, defaults, base))
            _check_duplicate(entries)
    except _Bad as bad:
        line = _line_of(text, section, bad.key.split(".")[0])
        where = f"[[queue]] #{section[1]}, " if section and section[0] == "queue" else ""
        if section and section[0] == "defaults":
            where = "[defaults], "
        raise ConfigError(f'{path}, line {line}: {where}key "{bad.key}": {bad}') from None
    return ServeConfig(path, max_parallel, tuple(entries))


def _syntax_error(message: str, text: str) -> str:
    """``Unclosed array (at end of document)`` → ``line 3: unclosed array``."""
    match = re.search(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)", message)
    if match is None:
        return f"line 1: {message}"
    line = match.group(1) or str(max(text.count("\n") + (not text.endswith("\n")), 1))
    where = f"line {line}" + (f", column {match.group(2)}" if match.group(2) else "")
    return f"{where}: TOML syntax: {message[: match.start()]}"


def _check_duplicate(entries: list[Entry]) -> None:
    """The last entry must not name a queue an earlier one names (globs may overlap)."""
    last = entries[-1]
    if last.is_glob:
        return
    for entry in entries[:-1]:
        if not entry.is_glob and os.path.normpath(entry.pattern) == os.path.normpath(last.pattern):
            raise _Bad("queue", f"{last.pattern!r} is already entry {entry.number}")


_HEADER = re.compile(r"^\s*\[(\[)?\s*([A-Za-z0-9_.\"' -]+?)\s*\]")


def _line_of(text: str, section: tuple[str, int] | None, key: str) -> int:
    """The line where ``key`` is set in ``section`` (else the section's header)."""
    assign = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    current: tuple[str, int] | None = None
    counts: dict[str, int] = {}
    header_line = 0
    for number, line in enumerate(text.splitlines(), 1):
        match = _HEADER.match(line)
        if match:
            name = match.group(2).strip("\"'")
            if match.group(1):
                counts[name] = counts.get(name, 0) + 1
                current = (name, counts[name])
            elif name.split(".")[0] == "defaults" or name == "defaults":
                current = ("defaults", 0)
            else:
                continue  # a sub-table ([queue.options]) stays in its section
            if current == section:
                header_line = number
            continue
        if current == section and assign.match(line):
            return number
    return header_line or 1


# -- running --------------------------------------------------------------------------


class Server:
    """Keeps a :class:`Watcher` serving what CONFIG currently names."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        self.watcher = Watcher(max_parallel=config.max_parallel)
        self.watcher.signal_handlers[signal.SIGHUP] = self.reload
        self.current: dict[str, Resolved] = {}
        self._parents: dict[str, int] = {}
        self._rescan_pending = False
        self._timer = 0

    def start(self) -> None:
        """Serve every queue CONFIG names now (logged in one line)."""
        self._apply(quiet=True)
        _log.info(
            "Serving %d queue(s) from %s, at most %d job(s) at once",
            len(self.current),
            self.config.path,
            self.config.max_parallel,
        )

    def run(self) -> int:
        """Serve until SIGTERM or SIGINT; SIGHUP re-reads CONFIG.  Returns the exit status."""
        self.start()
        return run_until_signalled(self.watcher, signal.SIGHUP)

    def reload(self) -> None:
        try:
            config = load(self.config.path)
        except SpoolError as exc:
            _log.error("Not reloaded, still serving the previous configuration: %s", exc)
            return
        self.config = config
        self.watcher.max_parallel = config.max_parallel
        _log.info("Reloaded %s", config.path)
        self._apply(quiet=False)

    def _apply(self, quiet: bool) -> None:
        """Add, drop or restart queues so that they match the configuration."""
        wanted = self.config.resolve()
        for location, old in list(self.current.items()):
            if wanted.get(location) != old:
                self.watcher.remove(location)
                del self.current[location]
                if location not in wanted:
                    _log.info("%s: no longer served", location)
        for location, resolved in wanted.items():
            if location not in self.current:
                self.current[location] = resolved
                self.watcher.add(resolved.spec(), quiet=quiet)
        self._watch_parents()
        self._schedule_rescan()

    def _watch_parents(self) -> None:
        parents = {e.glob_parent() for e in self.config.entries if e.is_glob}
        for parent in set(self._parents) - parents:
            self.watcher.unwatch_directory(self._parents.pop(parent), ("glob", parent))
        for parent in parents - set(self._parents):
            wd = self.watcher.watch_directory(parent, ("glob", parent), self._parent_event)
            if wd is not None:
                self._parents[parent] = wd

    def _parent_event(self, event: Any) -> None:
        if event.mask & IN_IGNORED:
            self._parents = {p: wd for p, wd in self._parents.items() if wd != event.wd}
        elif event.mask & IN_ISDIR and event.mask & _DIR_CHANGES and not self._rescan_pending:
            self._rescan_pending = True
            self.watcher.call_soon(self._rescan)

    def _schedule_rescan(self) -> None:
        polls = [e.poll or LOCAL_POLL for e in self.config.entries if e.is_glob]
        if not polls:
            return
        self._timer += 1
        generation = self._timer

        def fire() -> None:
            if generation == self._timer:
                self._rescan()

        self.watcher.call_later(min(polls), fire)

    def _rescan(self) -> None:
        self._rescan_pending = False
        self._apply(quiet=False)


def check(path: str) -> list[str]:
    """``serve --check``: the resolved queue list, one line each."""
    config = load(path)
    lines = [f"{path}: valid; at most {config.max_parallel} job(s) at once"]
    resolved = config.resolve()
    for entry in config.entries:
        mine = [r for r in resolved.values() if r.entry is entry]
        if entry.is_glob and not mine:
            lines.append(f"entry {entry.number} ({entry.pattern}): no matching directory yet")
        lines.extend(r.describe() for r in mine)
    lines.append(f"{len(resolved)} queue(s)")
    return lines
