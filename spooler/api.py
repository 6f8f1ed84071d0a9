"""The Python API: send and process jobs without the command line.

The CLI is a thin layer over these functions, so both behave identically::

    import spooler

    q = spooler.open_queue("/srv/queue")              # or s3://…, sftp://…
    q.init()
    q.write(spooler.make_packet(b"payload", params=[b"x"], seqfile="/var/lib/fspl-seq"))
    for job in q.listing():
        print(job.meta.seq, job.name)
    spooler.process(q, command=["tar", "-xf", "-"])   # or callback=fn

See docs/api.md for the whole surface.
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, BinaryIO, cast

from . import seqfile
from .errors import SpoolError
from .jobenv import JobRef, job_environment
from .packet import CmdType, Command, Meta, Special, encode_header
from .queue import OnError, Order, Outcome, ProcessConfig, Queue, Runner
from .streams import copy_stream_to_fd, write_all

if TYPE_CHECKING:
    import threading
    from typing import TypedDict

    from typing_extensions import Unpack

    from .execute import RunOptions

    class ProcessOptions(TypedDict, total=False):
        """The keyword arguments of :func:`process`, for :func:`watch`."""

        command: Sequence[str | bytes] | None
        callback: Callback | None
        order_by: Order | str
        on_error: OnError | str
        never_delete: bool
        maxjobs: int | None
        save_output: bool
        allow_job_params: bool
        ignore_payload: bool
        timeout: float | None


SAVED_PREFIX = b"FSPL_SET_"
Payload = bytes | BinaryIO | str | os.PathLike[str] | None


def now() -> tuple[int, int]:
    """The current time as (seconds, nanoseconds) since the epoch."""
    return divmod(time.time_ns(), 1_000_000_000)


def saved_environment(environ: Mapping[bytes, bytes] | None = None) -> list[tuple[bytes, bytes]]:
    """The ``FSPL_SET_*`` variables a sender saves, prefix removed, in order."""
    env = os.environb if environ is None else environ
    return [(k[len(SAVED_PREFIX) :], v) for k, v in env.items() if k.startswith(SAVED_PREFIX)]


def header(
    cmd: CmdType | None = None,
    *,
    seq: int | None = None,
    seqfile_path: str | None = None,
    ctime: tuple[int, int] | None = None,
) -> bytes:
    """Build a packet header, taking the seq from ``seqfile_path`` if given.

    ``seqfile_path`` follows ``prepare -s``: the file is created holding 1
    when missing, advanced under its lock, and ``"-"`` means seq 1.
    """
    if seq is None:
        seq = seqfile.take_next(seqfile_path or "-")
    secs, nanos = ctime or now()
    return encode_header(Meta(seq, secs, nanos, Command() if cmd is None else cmd))


def command(
    params: Iterable[bytes] = (), env: Iterable[tuple[bytes, bytes]] | None = None
) -> Command:
    """A Command packet body; ``env=None`` saves the ``FSPL_SET_*`` variables."""
    saved = saved_environment() if env is None else list(env)
    return Command(tuple(params), tuple(saved))


def write_packet(out: int | BinaryIO, head: bytes, payload: Payload = None) -> None:
    """Write a header and stream the payload after it (no payload in memory)."""
    fd = out if isinstance(out, int) else None
    if fd is None:
        out.write(head)  # type: ignore[union-attr]
        out.flush()  # type: ignore[union-attr]
        fd = out.fileno()  # type: ignore[union-attr]
    else:
        write_all(fd, head)
    if payload is None:
        return
    if isinstance(payload, bytes):
        write_all(fd, payload)
    elif isinstance(payload, str | os.PathLike):
        with open(payload, "rb", buffering=0) as src:
            copy_stream_to_fd(src, fd)
    else:
        copy_stream_to_fd(payload, fd)


def make_packet(
    payload: bytes = b"",
    *,
    params: Sequence[bytes] = (),
    env: Iterable[tuple[bytes, bytes]] | None = None,
    seqfile: str | None = None,
    seq: int | None = None,
    kind: Special | None = None,
) -> bytes:
    """A complete packet in memory (for small payloads; stream big ones)."""
    body: CmdType = kind if kind is not None else command(params, env)
    return header(body, seq=seq, seqfile_path=seqfile) + payload


def open_queue(
    location: str, *, decoder: str | None = None, options: Mapping[str, str] | None = None
) -> Queue:
    """Open a queue by path or URL (``s3://``, ``sftp://``… with their plugins)."""
    from .registry import open_transport  # pluggy: only when a location is resolved

    return Queue(open_transport(location, options), decoder)


def move(
    src: Queue | str,
    dst: Queue | str,
    *,
    maxjobs: int | None = None,
    order_by: Order | str = Order.SEQUENCE,
    keep: bool = False,
) -> int:
    """Move jobs between queues on any transports (see :mod:`spooler.transfer`)."""
    from .transfer import move_jobs

    order = Order(order_by) if isinstance(order_by, str) else order_by
    with _using(src) as source, _using(dst) as target:
        return move_jobs(source, target, maxjobs=maxjobs, order_by=order, keep=keep)


def _using(queue: Queue | str) -> AbstractContextManager[Queue]:
    """A queue given by location is opened here and closed after use; a
    caller's Queue object stays open, theirs to close."""
    return open_queue(queue) if isinstance(queue, str) else nullcontext(queue)


def command_runner(opts: RunOptions) -> Runner:
    """A Runner that executes ``opts.command`` the way ``queue-process`` does."""
    from .execute import build_argv, run_command  # process-only: keep listing fast

    def run(meta: Meta, job: JobRef | None, payload_fd: int, output: int | None) -> Outcome:
        assert isinstance(meta.cmd, Command)
        argv = build_argv(opts, meta.cmd.params)
        stdin = None if opts.ignore_payload else payload_fd
        return run_command(argv, job_environment(meta, job), stdin, output, opts.timeout)

    return run


Callback = Callable[[Meta, BinaryIO], bool | None]


def callback_runner(callback: Callback) -> Runner:
    """A Runner calling ``callback(meta, payload_stream)``; False/raise = failure."""

    def run(meta: Meta, job: JobRef | None, payload_fd: int, output: int | None) -> Outcome:
        with io.FileIO(payload_fd, "rb", closefd=False) as stream:
            try:
                result = callback(meta, stream)
            except Exception as exc:
                return Outcome(False, f"callback raised {type(exc).__name__}: {exc}")
        return Outcome(result is not False, "callback")

    return run


def _plan(
    command: Sequence[str | bytes] | None,
    callback: Callback | None,
    order_by: Order | str,
    on_error: OnError | str,
    never_delete: bool,
    maxjobs: int | None,
    save_output: bool,
    allow_job_params: bool,
    ignore_payload: bool,
    timeout: float | None,
) -> tuple[Runner, ProcessConfig]:
    """The runner and configuration that :func:`process` and :func:`watch` share."""
    if (command is None) == (callback is None):
        raise SpoolError("process() needs exactly one of command= or callback=")
    from .execute import RunOptions

    if callback is not None:
        runner = callback_runner(callback)
    else:
        argv = [os.fsencode(part) for part in command or ()]
        if not argv:
            raise SpoolError("process() needs a non-empty command")
        runner = command_runner(
            RunOptions(argv[0], tuple(argv[1:]), allow_job_params, ignore_payload, timeout)
        )
    config = ProcessConfig(
        Order(order_by) if isinstance(order_by, str) else order_by,
        OnError(on_error) if isinstance(on_error, str) else on_error,
        never_delete,
        maxjobs,
        save_output,
    )
    return runner, config


def process(
    queue: Queue | str,
    *,
    command: Sequence[str | bytes] | None = None,
    callback: Callback | None = None,
    order_by: Order | str = Order.SEQUENCE,
    on_error: OnError | str = OnError.RETRY,
    never_delete: bool = False,
    maxjobs: int | None = None,
    save_output: bool = False,
    allow_job_params: bool = False,
    ignore_payload: bool = False,
    timeout: float | None = None,
) -> int:
    """Process a queue with a command or a callback; return jobs run."""
    runner, config = _plan(
        command,
        callback,
        order_by,
        on_error,
        never_delete,
        maxjobs,
        save_output,
        allow_job_params,
        ignore_payload,
        timeout,
    )
    with _using(queue) as q:
        return q.process(config, runner)


def watch(
    queue: Queue | str,
    *,
    poll: float | None = None,
    stop: threading.Event | None = None,
    **options: Unpack[ProcessOptions],
) -> int:
    """Process a queue, then wait for new jobs and process them as they arrive.

    ``options`` are those of :func:`process` (``command=`` or ``callback=``,
    ``order_by=``, ``on_error=``…).  Returns the number of jobs run once
    ``stop`` is set (from any thread) or ``maxjobs`` jobs have run.  ``poll``
    is the seconds between re-scans (default 60 for local queues, which
    inotify wakes at once, 30 for remote ones).  Like ``fspl queue-process
    --watch``, but signals are left to the caller; see docs/operations.md and
    :mod:`spooler.watcher`.
    """
    from .watcher import QueueSpec, Watcher

    # process()'s keyword defaults, so that the two cannot drift apart.
    defaults = cast("ProcessOptions", process.__kwdefaults__ or {})
    merged: ProcessOptions = {**defaults, **options}
    runner, config = _plan(**merged)
    q = open_queue(queue) if isinstance(queue, str) else queue
    watcher = Watcher(exit_when_done=True)
    # A caller's Queue stays theirs: used as it is, left open.
    owned = isinstance(queue, str)
    spec = QueueSpec(
        q.location, runner, config, q.decoder, poll=poll, queue=q, owned=owned, strict=True
    )
    watcher.add(spec, quiet=True)
    if stop is not None:
        # An Event has no descriptor to wait on with the loop; this daemon
        # thread turns it into a wake-up, and ends when the event is set.
        import threading

        def relay() -> None:
            stop.wait()
            watcher.stop()

        threading.Thread(target=relay, daemon=True, name="fspl-stop").start()
    return watcher.run()
