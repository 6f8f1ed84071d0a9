"""One parser for every transport's ``-o KEY=VALUE`` options.

``-o`` values arrive as strings; each transport declares the options it
takes (:class:`Option`: a kind, a default, a range) and :func:`parse`
turns them into typed values, refusing an unknown key with the list of
known ones and a bad value with what was expected, as a usage error (exit
2).  Third-party transports get the same parser through
:mod:`spooler.plugin`, so every transport reports mistakes alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import UsageError

KINDS = ("str", "int", "float", "seconds", "bool", "json")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


@dataclass(frozen=True)
class Option:
    """One option: ``kind`` is one of :data:`KINDS`; numbers are checked
    against ``minimum``/``maximum`` (inclusive) when given."""

    name: str
    kind: str = "str"
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""


def parse(transport: str, options: Mapping[str, str], known: Iterable[Option]) -> dict[str, Any]:
    """Typed values of ``options`` (defaults filled in for the others)."""
    table = {option.name: option for option in known}
    unknown = sorted(set(options) - set(table))
    if unknown:
        raise UsageError(
            f"unknown {transport} option{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)} (known: {', '.join(sorted(table))})"
        )
    out: dict[str, Any] = {}
    for name, option in table.items():
        if name in options:
            out[name] = convert(option, options[name])
        elif option.default is not None:
            out[name] = option.default
    return out


def convert(option: Option, raw: str) -> Any:
    """One value, or a :class:`UsageError` naming ``-o name=raw`` and what was expected."""
    try:
        value = _CONVERTERS[option.kind](raw)
    except ValueError as exc:
        raise UsageError(f"-o {option.name}={raw}: {exc}") from None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        low, high = option.minimum, option.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            raise UsageError(f"-o {option.name}={raw}: {_range(option)}")
    return value


def _range(option: Option) -> str:
    low, high = option.minimum, option.maximum
    if low is not None and high is not None:
        return f"expected a value from {low:g} to {high:g}"
    if low is not None:
        return f"expected a value of at least {low:g}"
    return f"expected a value of at most {high:g}"


def _int(raw: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise ValueError("expected a whole number") from None


def _float(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ValueError("expected a number") from None
    if not math.isfinite(value):
        raise ValueError("expected a finite number")
    return value


def _seconds(raw: str) -> float:
    try:
        return _float(raw)
    except ValueError:
        raise ValueError("expected a number of seconds") from None


def _bool(raw: str) -> bool:
    low = raw.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("expected true or false")


def _json(raw: str) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"expected a JSON object ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError('expected a JSON object, e.g. {"key": "value"}')
    return value


_CONVERTERS: dict[str, Any] = {
    "str": str,
    "int": _int,
    "float": _float,
    "seconds": _seconds,
    "bool": _bool,
    "json": _json,
}
