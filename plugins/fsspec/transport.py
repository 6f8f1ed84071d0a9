"""Queues on any fsspec filesystem (``memory://``, ``gcs://``, ``abfs://``…).

The generic transport delivers, lists, inspects and deletes jobs through the
fsspec API.  fsspec offers no atomic "create if absent" that holds across
implementations, so a generic location cannot host the sequence lock: such
queues are for delivery and inspection, and are processed after moving their
jobs down with ``fspl queue-move`` (or through a transport with real
conditional writes, like the S3 one built on this class).
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, BinaryIO

from spooler import log, transport_options
from spooler.delivery import StagedTransport
from spooler.errors import SpoolError, TransportUnavailable, append_only, no_queue
from spooler.failures import describe, reason
from spooler.layout import PLACEHOLDER, SEQ_NAME
from spooler.plugin import Capability, SequenceState
from spooler.streams import BUFSIZE, spooled_upload
from spooler.transport_options import Option

if TYPE_CHECKING:
    import fsspec

_log = log.Logger("spooler.fsspec")
#: Keeps ``jobs/`` in existence on stores without directories; not a job name.


#: AbstractFileSystem's own storage options, which every filesystem takes.
COMMON_OPTIONS = (
    Option("use_listings_cache", "bool"),
    Option("listings_expiry_time", "seconds", minimum=0),
    Option("max_paths", "int", minimum=1),
    Option("skip_instance_cache", "bool"),
)
_KIND_OF_DEFAULT = {bool: "bool", int: "int", float: "float", dict: "json"}


def options_of(cls: type) -> tuple[Option, ...]:
    """The ``-o`` options of an fsspec filesystem class: the keyword
    parameters of its ``__init__`` chain, typed by their defaults (a
    ``*_kwargs``/``*_options`` parameter takes a JSON object), and the
    storage options every filesystem takes.  Keys passed on through
    ``**kwargs`` cannot be known, so only these are accepted."""
    import inspect

    found: dict[str, Option] = {option.name: option for option in COMMON_OPTIONS}
    for klass in reversed(cls.__mro__):
        init = vars(klass).get("__init__")
        if init is None or klass is object:
            continue
        for param in list(inspect.signature(init).parameters.values())[1:]:
            if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                continue
            default = None if param.default is param.empty else param.default
            kind = _KIND_OF_DEFAULT.get(type(default), "str")
            if default is None and param.name.endswith(("_kwargs", "_options")):
                kind = "json"
            found[param.name] = Option(param.name, kind)
    return tuple(found.values())


def copy_stream(source: BinaryIO, out: BinaryIO) -> int:
    total = 0
    while chunk := source.read(BUFSIZE):
        out.write(chunk)
        total += len(chunk)
    return total


class FsspecTransport(StagedTransport):
    """A queue under a path of an fsspec filesystem."""

    capabilities = frozenset({Capability.CONCURRENT_HEADERS})

    def __init__(self, location: str, fs: fsspec.AbstractFileSystem | None, root: str) -> None:
        """``fs=None``: a subclass provides ``fs`` itself, created on first use."""
        super().__init__(location)
        if fs is not None:
            self.fs = fs
        self.root = root.rstrip("/")
        self.jobs = f"{self.root}/jobs"

    @classmethod
    def from_url(cls, url: str, options: Mapping[str, str]) -> FsspecTransport:
        import fsspec  # here, so that subclasses can deliver without it (S3)

        try:
            # A chain (simplecache::s3://…) takes the outermost filesystem's
            # options, and one JSON object per inner protocol (-o s3={…}).
            chain = [fsspec.core.split_protocol(part)[0] or "file" for part in url.split("::")]
            protocol = chain[0]
            known = options_of(fsspec.get_filesystem_class(protocol))
            known += tuple(Option(inner, "json") for inner in chain[1:])
            kwargs = transport_options.parse(protocol, options, known) if options else {}
            fs, root = fsspec.core.url_to_fs(url, **kwargs)
        except ImportError as exc:
            raise TransportUnavailable(f"{url}: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise SpoolError(f"{url}: {exc}") from None
        return cls(url, fs, root)

    def path(self, name: str) -> str:
        return f"{self.jobs}/{name}"

    # -- jobs ------------------------------------------------------------
    def list_names(self) -> list[str]:
        self.fs.invalidate_cache(self.jobs)
        try:
            entries = self.fs.ls(self.jobs, detail=False)
        except FileNotFoundError:
            raise no_queue(self.location) from None
        except PermissionError as exc:  # a 403: the library's own error says why
            why = (describe(exc.__cause__) if exc.__cause__ else None) or reason(exc)
            raise SpoolError(f"{self.location}: listing jobs failed: {why}") from None
        return [entry.rstrip("/").rsplit("/", 1)[-1] for entry in entries]

    def open_job(self, name: str) -> BinaryIO:
        stream: BinaryIO = self.fs.open(self.path(name), "rb")
        return stream

    def read_prefixes(
        self, names: Iterable[str], size: int
    ) -> Iterator[tuple[str, bytes | OSError]]:
        """One ``cat_ranges`` call: concurrent ranged reads on async stores."""
        todo = list(names)
        if not todo:
            return
        paths = [self.path(n) for n in todo]
        results = self.fs.cat_ranges(paths, [0] * len(paths), [size] * len(paths))
        for name, result in zip(todo, results, strict=True):
            if isinstance(result, bytes | OSError):
                yield name, result
            else:
                yield name, OSError(f"{name}: {result}")

    # -- delivery (the protocol of spooler.delivery) ---------------------------
    def write_staged(self, temp: str, source: BinaryIO, progress: Callable[[int], None]) -> None:
        if not self.fs.exists(self.jobs):
            raise no_queue(self.location)
        with self.fs.open(self.path(temp), "wb") as out:
            progress(copy_stream(source, out))

    def publish(self, temp: str, final: str) -> None:
        # Best effort: fsspec has no create-only move that holds everywhere.
        if self.fs.exists(self.path(final)):
            raise FileExistsError(errno.EEXIST, "Job exists", self.path(final))
        self.fs.mv(self.path(temp), self.path(final))

    def discard(self, temp: str) -> None:
        try:
            self.fs.rm_file(self.path(temp))
        except Exception:  # cleanup must not mask the original error
            pass

    def delete(self, name: str) -> None:
        self.fs.rm_file(self.path(name))

    def open_output(self, name: str) -> AbstractContextManager[BinaryIO]:
        return spooled_upload(lambda spool: self._upload(spool, self.path(name)))

    def _upload(self, spool: BinaryIO, path: str) -> None:
        with self.fs.open(path, "wb") as out:
            copy_stream(spool, out)

    # -- queue structure and sequence -------------------------------------
    def _exists(self) -> bool:
        self.fs.invalidate_cache(self.root)
        return bool(self.fs.exists(self.root) and self.fs.ls(self.root, detail=False))

    def init(self, append_only: bool = False) -> None:
        if self._exists():
            raise SpoolError(f'Queue "{self.location}" already exists')
        self.fs.makedirs(self.jobs, exist_ok=True)
        self.fs.pipe_file(self.path(PLACEHOLDER), b"")
        if not append_only:
            self.fs.pipe_file(f"{self.root}/{SEQ_NAME}", b"1\n")

    def is_append_only(self) -> bool:
        if self.fs.exists(f"{self.root}/{SEQ_NAME}"):
            return False
        if not self.fs.exists(self.jobs):
            raise no_queue(self.location)
        return True

    def lock_sequence(self) -> AbstractContextManager[SequenceState]:
        if self.is_append_only():
            raise append_only(self.location)
        raise SpoolError(
            f"{type(self.fs).__name__} offers no atomic create, so {self.location} cannot be "
            "processed in place; move its jobs to a local queue with 'fspl queue-move'"
        )
