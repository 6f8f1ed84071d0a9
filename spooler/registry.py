"""The transport registry: from a ``-q`` value to a Transport instance.

As in fsspec's registry, each scheme maps to a ``"module:Class"`` string that
is imported on first use, with an install hint when the library behind it is
missing.  The specs come from plugins through the ``fspl_transports`` hook:
the built-ins are ordinary plugins registered through the ``filespooler``
entry-point group, exactly like third-party ones.  Scanning entry points
means reading the metadata of every installed distribution, which is slow,
so the built-ins are registered from :data:`BUILTIN_PLUGINS` (a mirror of our
own entry-point table, checked by a test) and the scan runs only when a
location uses a scheme no built-in knows, or when every transport is listed.
A third-party plugin that fails to import (or implements a hook we do not
define) is recorded in :attr:`Registry.broken` and reported, never fatal to
other commands.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from importlib import import_module
from importlib.util import find_spec

import pluggy

from . import failures, hookspecs, log
from .errors import SpoolError, TransportUnavailable
from .spec import TransportSpec
from .transport import Transport

ENTRY_POINT_GROUP = "filespooler"
#: Module paths of the built-in plugins; mirrors ``[project.entry-points]``.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "spooler_plugins.local",
    "spooler_plugins.s3",
    "spooler_plugins.sftp",
    "spooler_plugins.rclone",
    "spooler_plugins.fsspec",
)
LOCAL_SCHEME = "file"
WILDCARD = "*"

_log = log.Logger("spooler.registry")


class Registry:
    """Registered plugins and the transports they declare, by scheme."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self._by_scheme: dict[str, TransportSpec] = {}
        self._specs: list[TransportSpec] = []
        self.broken: list[tuple[str, str]] = []
        self._scanned = False
        for module_name in BUILTIN_PLUGINS:
            self._register(import_module(module_name), module_name, "built-in")

    def _register(self, plugin: object, name: str, origin: str) -> None:
        if self.pm.is_registered(plugin) or self.pm.has_plugin(name):
            return
        self.pm.register(plugin, name=name)
        try:
            self.pm.check_pending()  # a misspelt hook is an error, not ignored
            others = [p for p in self.pm.get_plugins() if p is not plugin]
            declared = self.pm.subset_hook_caller("fspl_transports", others)()
        except BaseException:
            self.pm.unregister(plugin)
            raise
        for specs in declared:
            for spec in specs:
                self._add(spec._replace(origin=origin))

    def _add(self, spec: TransportSpec) -> None:
        self._specs.append(spec)
        for scheme in spec.schemes:
            # First registration wins: built-ins cannot be shadowed.
            self._by_scheme.setdefault(scheme.lower(), spec)

    def scan_entry_points(self) -> None:
        """Register third-party plugins from the entry-point group (once)."""
        if self._scanned:
            return
        self._scanned = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.value in BUILTIN_PLUGINS:
                continue
            dist = ep.dist.name if ep.dist is not None else "unknown distribution"
            try:
                plugin = ep.load()
                self._register(plugin, ep.name, dist)
            except Exception as exc:  # a broken plugin must not break fspl
                self.broken.append((f"{ep.name} ({dist})", f"{type(exc).__name__}: {exc}"))
                _log.warn("Plugin %s from %s failed to load: %s", ep.name, dist, exc)

    def lookup(self, scheme: str) -> TransportSpec | None:
        spec = self._by_scheme.get(scheme)
        if spec is None and not self._scanned:
            self.scan_entry_points()
            spec = self._by_scheme.get(scheme)
        return spec

    def specs(self) -> list[TransportSpec]:
        """Every declared transport, third-party ones included."""
        self.scan_entry_points()
        return list(self._specs)

    def claim_path(self, path: str) -> TransportSpec | None:
        claimed: TransportSpec | None = self.pm.hook.fspl_claim_path(path=path)
        return claimed


_registry: Registry | None = None


def registry() -> Registry:
    global _registry
    if _registry is None:
        _registry = Registry()
    return _registry


def _is_chained(location: str, scheme: str) -> bool:
    """fsspec URL chaining (``simplecache::s3://b/q``), which is fsspec's as a
    whole: ``PROTOCOL::…::URL`` ending in a ``scheme://`` URL (so that a
    path like ``a::b`` stays a path)."""
    return location.startswith(f"{scheme}::") and "://" in location.rsplit("::", 1)[1]


def resolve_spec(location: str) -> TransportSpec:
    """Pick the transport for a ``-q`` value."""
    if not location:
        raise SpoolError("Empty queue location")
    reg = registry()
    scheme, slashes = split_scheme(location)
    if scheme is not None and _is_chained(location, scheme):
        chained = reg.lookup(WILDCARD)
        if chained is not None:
            return chained
    if scheme is not None:
        spec = reg.lookup(scheme)
        if spec is not None:
            return spec
        if slashes:
            spec = reg.lookup(WILDCARD)
            if spec is not None:
                return spec
            raise SpoolError(f"No transport handles {scheme}:// URLs (see 'fspl transports')")
    if os.environ.get("FSPL_PLUGINS") == "all":
        reg.scan_entry_points()  # third-party claim hooks, at a start-up cost
    claimed = reg.claim_path(location)
    if claimed is not None:
        return claimed
    local = reg.lookup(LOCAL_SCHEME)
    if local is None:  # pragma: no cover - the local plugin ships with us
        raise SpoolError("The local transport is not registered")
    return local


def load_class(spec: TransportSpec) -> type[Transport]:
    """Import the transport class of ``spec``, with an actionable error if missing."""
    module_name, _, attr = spec.factory.partition(":")
    try:
        for required in spec.requires:  # found, not imported: stays cheap
            if find_spec(required) is None:
                raise ModuleNotFoundError(f"No module named {required!r}", name=required)
        module = import_module(module_name)
    except ImportError as exc:
        hint = f"; install it with: pip install '{spec.install_hint}'" if spec.install_hint else ""
        raise TransportUnavailable(
            f"The {spec.name} transport is not available ({exc}){hint}"
        ) from None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Transport)):
        raise TransportUnavailable(f"{spec.factory} is not a Transport class")
    return cls


_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):(//)?")


def split_scheme(location: str) -> tuple[str | None, bool]:
    """Return ``(scheme, has_slashes)`` of ``location``, or ``(None, False)``.

    ``s3://b/q`` → ``("s3", True)``; ``rclone:remote:path`` →
    ``("rclone", False)``; ``/srv/q`` and ``queue`` → ``(None, False)``.
    Whether an opaque ``name:`` prefix is a scheme is decided by the
    resolver (only registered schemes count), so ``foo:bar`` stays a path.
    """
    match = _URL.match(location)
    if match is None:
        return None, False
    return match.group(1).lower(), bool(match.group(2))


def open_transport(location: str, options: Mapping[str, str] | None = None) -> Transport:
    """Resolve a ``-q`` value (path or URL) to a Transport instance."""
    failures.note(location)
    return load_class(resolve_spec(location)).from_url(location, dict(options or {}))
