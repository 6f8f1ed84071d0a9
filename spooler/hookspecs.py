"""The hooks a filespooler plugin can implement.

A plugin is a module (or object) with functions decorated by
:data:`hookimpl`, registered through the ``filespooler`` entry-point group::

    [project.entry-points.filespooler]
    webdav = "fspl_webdav.plugin"

Plugin authors import what they need from :mod:`spooler.plugin` (the facade:
``hookimpl``, ``provide``, ``TransportSpec``, ``Transport``…), not from here.
Keep the plugin module light: declare transports by ``"module:Class"``
strings and import your storage library inside the transport module, which
is loaded only when a URL needs it.  See docs/plugins.md for a walk-through.
"""

from __future__ import annotations

import pluggy

from .markers import PROJECT, hookimpl, provide

__all__ = ["PROJECT", "fspl_claim_path", "fspl_transports", "hookimpl", "hookspec", "provide"]
from .spec import TransportSpec

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def fspl_transports() -> list[TransportSpec]:
    """Declare the transports this plugin provides.

    Return a list of :class:`spooler.spec.TransportSpec`.  Called once
    per process, when the first queue location is resolved; must not import
    anything heavy.
    """
    raise NotImplementedError  # a specification: plugins implement it


@hookspec(firstresult=True)
def fspl_claim_path(path: str) -> TransportSpec | None:
    """Claim a plain local path (no URL scheme) for a special transport.

    Lets a plugin give paths on special mounts (for instance an rclone FUSE
    mount) behaviour of their own.  Return a spec to claim ``path``, or None
    to leave it to the local transport.  Must be cheap: it runs for every
    local queue.
    """
    raise NotImplementedError  # a specification: plugins implement it
