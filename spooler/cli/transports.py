"""Listing the transports: fspl transports."""

from __future__ import annotations

from ..errors import SpoolError
from ..registry import load_class, registry
from ..spec import TransportSpec
from . import options


def describe(spec: TransportSpec) -> tuple[str, str]:
    """(status, capabilities) of a transport; importing it is the only real check."""
    try:
        cls = load_class(spec)
    except SpoolError as exc:
        status = f"needs {spec.install_hint}" if spec.install_hint else "unavailable"
        return status, str(exc)
    return "ok", ", ".join(sorted(cls.capabilities)) or "-"


@options.command("transports")
def transports() -> None:
    """List the registered transports: URL schemes, origin, status, capabilities.

    Built-in transports and those of installed plugins (the 'filespooler'
    entry-point group) are shown; a plugin that fails to load is reported
    here and does not affect other commands.
    """
    reg = registry()
    rows = [("SCHEMES", "TRANSPORT", "ORIGIN", "STATUS", "CAPABILITIES / DETAIL")]
    for spec in reg.specs():
        status, detail = describe(spec)
        rows.append((", ".join(spec.schemes), spec.name, spec.origin, status, detail))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[4]
        for row in rows
    ]
    for name, error in reg.broken:
        lines.append(f"broken plugin {name}: {error}")
    options.emit("".join(line.rstrip() + "\n" for line in lines))
