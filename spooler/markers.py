"""``hookimpl`` without importing pluggy, for plugin modules on the hot path.

Every plugin module marks its hooks at import, and the built-in ones are
imported by local commands (the local transport lives in one); importing
pluggy for that costs more than a whole ``queue-ls`` (pluggy loads
:mod:`inspect`).  A hook implementation marker only records its options on
the function, under the attribute pluggy's ``HookimplMarker`` would set;
this one does the same with the same signature (a test compares the two),
and pluggy reads it when the registry registers the plugin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar, overload

if TYPE_CHECKING:
    from .spec import TransportSpec

PROJECT = "filespooler"
_F = TypeVar("_F", bound=Callable[..., object])


class HookimplMarker:
    """pluggy's ``HookimplMarker(project)``, as a plain attribute setter."""

    def __init__(self, project_name: str) -> None:
        self.project_name = project_name

    @overload
    def __call__(
        self,
        function: _F,
        hookwrapper: bool = ...,
        optionalhook: bool = ...,
        tryfirst: bool = ...,
        trylast: bool = ...,
        specname: str | None = ...,
        wrapper: bool = ...,
    ) -> _F: ...

    @overload
    def __call__(
        self,
        function: None = ...,
        hookwrapper: bool = ...,
        optionalhook: bool = ...,
        tryfirst: bool = ...,
        trylast: bool = ...,
        specname: str | None = ...,
        wrapper: bool = ...,
    ) -> Callable[[_F], _F]: ...

    def __call__(
        self,
        function: _F | None = None,
        hookwrapper: bool = False,
        optionalhook: bool = False,
        tryfirst: bool = False,
        trylast: bool = False,
        specname: str | None = None,
        wrapper: bool = False,
    ) -> _F | Callable[[_F], _F]:
        opts = {
            "wrapper": wrapper,
            "hookwrapper": hookwrapper,
            "optionalhook": optionalhook,
            "tryfirst": tryfirst,
            "trylast": trylast,
            "specname": specname,
        }

        def mark(func: _F) -> _F:
            setattr(func, self.project_name + "_impl", dict(opts))
            return func

        return mark if function is None else mark(function)


hookimpl = HookimplMarker(PROJECT)


def provide(*specs: TransportSpec) -> Callable[[], list[TransportSpec]]:
    """An ``fspl_transports`` implementation returning ``specs``.

    The one-liner for plugins that only declare transports::

        fspl_transports = provide(TransportSpec(...))
    """

    @hookimpl
    def fspl_transports() -> list[TransportSpec]:
        return list(specs)

    return fspl_transports
