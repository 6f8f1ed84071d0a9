"""What a plugin declares about a transport: :class:`TransportSpec`.

Plain data, importing nothing: the plugin modules that every command
registers build these at import time, so they must stay cheap, and the
hook specifications (:mod:`spooler.hookspecs`) name the type without
depending on the registry that consumes it.
"""

from __future__ import annotations

from typing import NamedTuple


class TransportSpec(NamedTuple):
    """Schemes, and where the transport class lives.

    ``factory`` is a ``"module:Class"`` string so the module (and the heavy
    library behind it) is imported only when a URL with one of ``schemes``
    is actually used (see :func:`spooler.registry.load_class`).  The scheme
    ``"*"`` makes a catch-all for any ``scheme://`` URL no other transport
    claims.
    """

    name: str
    schemes: tuple[str, ...]
    factory: str
    description: str = ""
    #: What to install when the import fails, e.g. ``"filespooler[s3]"``.
    install_hint: str = ""
    #: Libraries the transport imports only when it needs them (deep in its
    #: code): checked by ``fspl transports`` and before the class is loaded,
    #: so that a missing one gets the install hint.
    requires: tuple[str, ...] = ()
    #: Filled in by the registry: where the declaring plugin came from.
    origin: str = ""
