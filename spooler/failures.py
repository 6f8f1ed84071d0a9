"""Exceptions of libraries (botocore, aiohttp, paramiko…) as one-line errors.

A library reports a user's mistake or an outside failure with an
exception of its own; the CLI would call that an internal error.  Each
transport registers, for the library exceptions it can meet, a function
rendering one ``<what failed>: <why>`` line (with the fix when there is
one); :func:`explain` finds the function for an exception by the names of
its classes, so this module never imports a library.  Plugins register
theirs through :func:`spooler.plugin.explains`.
"""

from __future__ import annotations

from collections.abc import Callable

Explainer = Callable[[BaseException], str]
_EXPLAINERS: dict[str, Explainer] = {}
#: Queue locations opened so far (see :func:`note`): what an explanation names.
_WHERE: list[str] = []


def note(location: str) -> None:
    """Record that ``location`` is in use (the registry calls this for every
    transport it opens), so that a library's error can name it."""
    _WHERE.append(location)


def explains(*qualnames: str) -> Callable[[Explainer], Explainer]:
    """Register the decorated function for exceptions of the classes
    ``qualnames`` (``"module.Class"``, subclasses included)."""

    def register(fn: Explainer) -> Explainer:
        for name in qualnames:
            _EXPLAINERS[name] = fn
        return fn

    return register


def describe(exc: BaseException) -> str | None:
    """Why ``exc`` happened, on one line, or None if nobody explains it."""
    for cls in type(exc).__mro__:
        fn = _EXPLAINERS.get(f"{cls.__module__}.{cls.__qualname__}")
        if fn is not None:
            return fn(exc)
    return None


def explain(exc: BaseException) -> str | None:
    """The whole message for ``exc``, naming the queue locations in use, or
    None if nobody explains it (a bug)."""
    text = describe(exc)
    if text is None:
        return None
    where = ", ".join(dict.fromkeys(_WHERE))
    return f"{where}: {text}" if where and where not in text else text


def reason(exc: BaseException) -> str:
    """A library exception's text, never empty, on one line."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text.rstrip(":").rstrip() or type(exc).__name__


#: The extra that installs each optional library the built-in transports use.
EXTRAS = {
    "botocore": "s3",
    "s3fs": "s3",
    "aiobotocore": "s3",
    "aiohttp": "s3",
    "paramiko": "sftp",
    "fsspec": "fsspec",
}


@explains("builtins.ModuleNotFoundError")
def _missing_library(exc: BaseException) -> str:
    """A library missing at whatever depth it is first imported."""
    name = (getattr(exc, "name", None) or "").partition(".")[0]
    extra = EXTRAS.get(name)
    if extra is None:
        return f"a library is missing ({reason(exc)})"
    return f"{name} is not installed; install it with: pip install 'filespooler[{extra}]'"
