"""The plugin author's guide documents every hook and every Transport method."""

from __future__ import annotations

import inspect
from pathlib import Path

from spooler import hookspecs
from spooler.transport import Transport

GUIDE = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text()


def test_every_hookspec_is_documented() -> None:
    specs = [
        name
        for name, fn in vars(hookspecs).items()
        if callable(fn) and getattr(fn, "filespooler_spec", None) is not None
    ]
    assert specs, "no hookspecs found"
    for name in specs:
        assert f"### `{name}`" in GUIDE, f"docs/plugins.md has no section for hook {name}"


def test_every_transport_method_is_documented() -> None:
    methods = [
        name
        for name, member in inspect.getmembers(Transport)
        if not name.startswith("_") and callable(member)
    ]
    for name in methods:
        assert f"`{name}(" in GUIDE, f"docs/plugins.md does not describe Transport.{name}"
