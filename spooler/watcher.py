"""Continuous processing: ``queue-process --watch``, ``fspl serve``, :func:`spooler.watch`.

A :class:`Watcher` serves any number of queues from one thread and a small
pool of workers:

* **One loop thread** waits in ``poll()`` on one inotify descriptor (every
  local queue's ``jobs/`` and root directory, and the parents of ``serve``
  globs), a wake-up pipe and the nearest timer.  Nothing runs while nothing
  happens: idle costs no CPU.
* **At most ``max_parallel`` worker threads** run *rounds*.  A round looks at
  the queue cheaply (its *fingerprint*: the job names, and the state of
  ``nextseq``) and, when something changed or an event said so, runs one
  ordinary pass, ``Queue.process``, under the queue's lock.  The lock is
  therefore held only while jobs run, never while idle, and each queue has at
  most one round at a time: strictly sequential per queue, concurrent across
  queues.
* **Local queues** are woken by inotify: a job published by rename
  (``IN_MOVED_TO``, the reference), by link (``IN_CREATE``, ours) or written
  in place (``IN_CLOSE_WRITE``), and a new ``nextseq`` (``queue-set-next``).
  A round every ``poll`` seconds (default 60) is the safety net for file
  systems that lose events (NFS, FUSE) or hosts without inotify.
* **Remote queues** are polled every ``poll`` seconds (default 30): one
  listing, nothing else, unless jobs are waiting that cannot run yet; then
  ``nextseq`` is read too (read-only, as ``queue-status`` does), so that
  ``queue-set-next`` is seen (docs/operations.md has the request counts).
* A failed round waits 1, 2, 4 … seconds, at most ``poll``, and a failing
  job is retried at once when its queue changes.  Each failure is one log
  line.  A lock held elsewhere is retried after 0.1, 0.2, 0.4 … seconds:
  usually it is the ``queue-set-next`` whose write woke the loop.
* :meth:`Watcher.stop` (the first SIGTERM or SIGINT) ends the loop at once
  when idle; running jobs finish, advance and are disposed of first, and no
  new job starts.  :meth:`Watcher.kill` (the second signal) kills the jobs'
  process groups.

A pass that has held a worker for more than :data:`SLICE` seconds while
other queues wait for one yields after its current job, so that one long
backlog cannot starve a thousand other queues.
"""

from __future__ import annotations

import errno
import functools
import heapq
import os
import select
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from queue import SimpleQueue

from . import execute, log
from .errors import CommandFailed, LockError, SpoolError
from .inotify import (
    IN_CLOSE_WRITE,
    IN_CREATE,
    IN_DELETE,
    IN_IGNORED,
    IN_ISDIR,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_ONLYDIR,
    IN_Q_OVERFLOW,
    Event,
    Inotify,
)
from .layout import JOBS_DIR, SEQ_NAME
from .queue import Order, ProcessConfig, Queue, Runner
from .registry import open_transport
from .transport import Transport, is_job_name

_log = log.Logger("spooler.watch")

#: Default seconds between safety re-scans of a local queue.
LOCAL_POLL = 60.0
#: Default seconds between listings of a remote queue.
REMOTE_POLL = 30.0
#: Seconds a pass may keep its worker while other queues wait for one.
SLICE = 1.0
#: First wait after finding the lock held (doubling), and the attempt at
#: which a lock still held is logged (after about 1.5 s).
LOCK_RETRY = 0.1
LOCK_PATIENCE = 5

#: One mask for every directory watch (the same inode can be watched for
#: several purposes, and a second inotify_add_watch replaces the mask).
DIR_MASK = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE | IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR
_ARRIVALS = IN_CREATE | IN_MOVED_TO | IN_CLOSE_WRITE

Handler = Callable[[Event], None]


@dataclass
class QueueSpec:
    """One queue for a :class:`Watcher`: where it is and how to process it."""

    location: str
    runner: Runner
    config: ProcessConfig = field(default_factory=ProcessConfig)
    decoder: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    #: Seconds between polls; None: :data:`LOCAL_POLL` or :data:`REMOTE_POLL`.
    poll: float | None = None
    #: An already opened queue (the CLI opens it first, to report errors as
    #: plain queue-process does).
    queue: Queue | None = None
    #: The watcher closes ``queue`` when done, and replaces it with a fresh
    #: one after an error that may have broken its connection.  False for a
    #: caller's queue: used as it is and left open.
    owned: bool = True
    #: Errors of the first round, other than a failing job or a lock held
    #: elsewhere, end :meth:`Watcher.run` (``queue-process --watch``: a
    #: missing queue is an error, not something to wait for).
    strict: bool = False


class _State(Enum):
    IDLE = "idle"
    DUE = "due"  # waiting for a worker
    RUNNING = "running"
    WAITING = "waiting"  # after a failure, until its retry time


@dataclass
class _Result:
    done: int = 0
    error: BaseException | None = None
    preempted: bool = False


@dataclass
class _Pass:
    """What a running pass tells its loop through ``proceed``."""

    start: float
    started: int = 0
    preempted: bool = False


def local_paths(transport: Transport) -> tuple[str, str, str] | None:
    """``(root, jobs, nextseq)`` of a queue on a local (or mounted) directory."""
    root = transport.local_directory()
    if root is None:
        return None
    return root, os.path.join(root, JOBS_DIR), os.path.join(root, SEQ_NAME)


class _Slot:
    """A queue's state in the loop.

    The loop thread owns every field except while the slot is RUNNING, when
    its worker owns ``queue`` and ``seen``.
    """

    def __init__(self, spec: QueueSpec) -> None:
        self.spec = spec
        self.label = spec.location
        self.queue = spec.queue
        self.owned = spec.owned
        self.paths: tuple[str, str, str] | None = None
        self.state = _State.IDLE
        self.force = False  # the next round passes even if nothing seems changed
        self.dirty = False  # a change was seen while the slot was running
        self.seen: object = None  # the fingerprint taken before the last pass
        self.failures = 0
        self.lock_failures = 0
        self.wake_on_change = True  # False while the lock is held elsewhere
        self.timer = 0  # generation: only the newest timer of a slot counts
        self.wds: dict[str, int] = {}
        self.done = 0
        self.first = True
        self.retired = False
        self.last_error = ""
        self.announce = False  # log how it is watched after the first round

    @property
    def poll(self) -> float:
        if self.spec.poll is not None:
            return self.spec.poll
        return LOCAL_POLL if self.paths is not None else REMOTE_POLL

    def remaining(self) -> int | None:
        limit = self.spec.config.maxjobs
        return None if limit is None else max(limit - self.done, 0)


class _Directories:
    """inotify watches shared by many users: wd → {key: handler}."""

    def __init__(self) -> None:
        self.inotify = Inotify()
        self.users: dict[int, dict[object, Handler]] = {}

    def watch(self, path: str, key: object, handler: Handler) -> int:
        wd = self.inotify.add_watch(path, DIR_MASK)
        self.users.setdefault(wd, {})[key] = handler
        return wd

    def unwatch(self, wd: int, key: object) -> None:
        users = self.users.get(wd)
        if users is None:
            return
        users.pop(key, None)
        if not users:
            del self.users[wd]
            self.inotify.rm_watch(wd)

    def dispatch(self, overflow: Callable[[], None]) -> None:
        while events := self.inotify.read():
            for event in events:
                if event.mask & IN_Q_OVERFLOW:
                    overflow()
                    continue
                users = self.users.get(event.wd)
                if not users:
                    continue
                for handler in list(users.values()):
                    handler(event)
                if event.mask & IN_IGNORED:  # the directory is gone
                    self.users.pop(event.wd, None)

    def close(self) -> None:
        self.inotify.close()


_local = threading.local()
_hook_lock = threading.Lock()
_hook_users = 0


def _log_prefix() -> str:
    label = getattr(_local, "label", None)
    return f"{label}: " if label else ""


@contextmanager
def _job_group(pgid: int) -> Iterator[None]:
    """execute.group_hook: record a running job's group with its watcher."""
    owner: Watcher | None = getattr(_local, "owner", None)
    if owner is None:
        yield
        return
    owner.job_started(pgid)
    try:
        yield
    finally:
        owner.job_ended(pgid)


@contextmanager
def _hooks_installed() -> Iterator[None]:
    """Install the group hook and the log prefix while any watcher runs."""
    global _hook_users
    with _hook_lock:
        _hook_users += 1
        execute.group_hook = _job_group
        log.set_context(_log_prefix)
    try:
        yield
    finally:
        with _hook_lock:
            _hook_users -= 1
            if _hook_users == 0:
                execute.group_hook = None
                log.set_context(None)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


class Watcher:
    """Watch and process queues until :meth:`stop`; see the module docstring.

    ``add``, ``remove``, ``call_later`` and ``watch_directory`` belong to the
    loop's thread (before :meth:`run`, or from callbacks the loop runs);
    ``stop``, ``kill``, ``signal`` and ``call_soon`` may be called from any
    thread or a signal handler.
    """

    def __init__(self, *, max_parallel: int = 1, exit_when_done: bool = False) -> None:
        self.max_parallel = max(1, max_parallel)
        #: Stop once every queue has reached its ``maxjobs``.
        self.exit_when_done = exit_when_done
        #: 0, or 130 after SIGINT: the exit status for the command line.
        self.exit_status = 0
        self.jobs_run = 0
        self.signal_handlers: dict[int, Callable[[], None]] = {}
        self._slots: dict[str, _Slot] = {}
        #: Removed queues whose pass is still running (a re-added queue waits).
        self._retiring: dict[str, _Slot] = {}
        self._due: deque[_Slot] = deque()
        self._running = 0
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = 0
        self._calls: deque[Callable[[], None]] = deque()
        self._results: deque[tuple[_Slot, _Result]] = deque()
        self._signals: deque[int] = deque()
        self._stopping = False
        self._killing = False
        self._fatal: BaseException | None = None
        self._groups: set[int] = set()
        self._groups_lock = threading.Lock()
        self._tasks: SimpleQueue[Callable[[], None] | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_lock = threading.RLock()
        self._watch_limit_logged = False
        self._dirs: _Directories | None
        try:
            self._dirs = _Directories()
            self.inotify_error = ""
        except OSError as exc:
            self._dirs = None
            self.inotify_error = str(exc)

    # -- queues -------------------------------------------------------------
    def add(self, spec: QueueSpec, *, quiet: bool = False) -> None:
        """Start serving a queue (its first round runs as soon as a worker is free)."""
        if spec.location in self._slots:
            raise SpoolError(f"{spec.location} is already being watched")
        slot = _Slot(spec)
        self._slots[spec.location] = slot
        slot.announce = not quiet
        if slot.queue is not None:
            self._attach(slot)
        if spec.location not in self._retiring:  # else: when the old pass ends
            self._make_due(slot, force=True)

    def describe(self, slot: _Slot) -> str:
        if slot.queue is None:
            return "watching"
        if slot.paths is None:
            return f"polling every {slot.poll:g} s"
        if slot.wds:
            return f"watching with inotify, re-scanning every {slot.poll:g} s"
        why = self.inotify_error or "no inotify watch"
        return f"polling every {slot.poll:g} s ({why})"

    def remove(self, location: str) -> None:
        """Stop serving a queue; a running pass finishes first."""
        slot = self._slots.pop(location, None)
        if slot is None:
            return
        slot.retired = True
        self._detach(slot)
        if slot.state is _State.RUNNING:
            self._retiring[location] = slot
        else:
            self._close(slot)

    def locations(self) -> list[str]:
        return list(self._slots)

    # -- thread-safe controls -------------------------------------------------
    def stop(self) -> None:
        """Finish the running jobs, start no other, and return from :meth:`run`."""
        self._stopping = True
        self._wake()

    def kill(self) -> None:
        """Kill the process groups of the running jobs (and of any that start)."""
        self._killing = True
        with self._groups_lock:
            groups = list(self._groups)
        for pgid in groups:
            _kill_group(pgid)

    def signal(self, signum: int) -> None:
        """For a signal handler: handled by the loop (stop, kill, or a registered handler)."""
        self._signals.append(signum)
        self._wake()

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in the loop's thread."""
        self._calls.append(fn)
        self._wake()

    def call_later(self, delay: float, fn: Callable[[], None]) -> None:
        self._timer_seq += 1
        heapq.heappush(self._timers, (time.monotonic() + delay, self._timer_seq, fn))

    def watch_directory(self, path: str, key: object, handler: Handler) -> int | None:
        """Call ``handler`` for inotify events in ``path``; None without inotify."""
        if self._dirs is None:
            return None
        try:
            return self._dirs.watch(path, key, handler)
        except OSError as exc:
            if exc.errno == errno.ENOSPC and not self._watch_limit_logged:
                self._watch_limit_logged = True
                _log.warn(
                    "The inotify watch limit is reached (fs.inotify.max_user_watches): "
                    "%s and later queues are only polled",
                    path,
                )
            _log.debug("Cannot watch %s: %s", path, exc)
            return None

    def unwatch_directory(self, wd: int, key: object) -> None:
        if self._dirs is not None:
            self._dirs.unwatch(wd, key)

    def job_started(self, pgid: int) -> None:
        with self._groups_lock:
            self._groups.add(pgid)
        if self._killing:
            _kill_group(pgid)

    def job_ended(self, pgid: int) -> None:
        with self._groups_lock:
            self._groups.discard(pgid)

    # -- the loop ---------------------------------------------------------------
    def run(self) -> int:
        """Serve until stopped; return the number of jobs run."""
        poller = select.poll()
        poller.register(self._wake_r, select.POLLIN)
        if self._dirs is not None:
            poller.register(self._dirs.inotify.fd, select.POLLIN)
        try:
            with _hooks_installed():
                self._loop(poller)
        finally:
            self._shutdown()
        if self._fatal is not None:
            raise self._fatal
        return self.jobs_run

    def _loop(self, poller: select.poll) -> None:
        while True:
            self._dispatch()
            if self._stopping and self._running == 0:
                return
            poller.poll(self._timeout())
            self._drain_wake()
            if self._dirs is not None:
                # Before the results: a pass's own nextseq writes then arrive
                # while its slot is still RUNNING, and are recognised as its own.
                self._dirs.dispatch(self._overflow)
            while self._signals:
                self._on_signal(self._signals.popleft())
            while self._calls:
                self._calls.popleft()()
            while self._results:
                self._finish(*self._results.popleft())
            self._fire_timers()

    def _timeout(self) -> int | None:
        if self._calls or self._results or self._signals or (self._stopping and not self._running):
            return 0
        if not self._timers:
            return None
        return max(0, int((self._timers[0][0] - time.monotonic()) * 1000) + 1)

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            heapq.heappop(self._timers)[2]()

    def _wake(self) -> None:
        # Re-entrant: a signal handler may run inside _shutdown's critical
        # section, in the same thread; it then finds the pipe open or gone.
        with self._wake_lock:
            if self._wake_w < 0:
                return  # the loop has ended
            try:
                os.write(self._wake_w, b"\0")
            except BlockingIOError:
                pass  # full: a wake-up is pending anyway

    def _drain_wake(self) -> None:
        try:
            while os.read(self._wake_r, 4096):
                pass
        except BlockingIOError:
            pass

    def _on_signal(self, signum: int) -> None:
        handler = self.signal_handlers.get(signum)
        if handler is not None:
            handler()
            return
        name = signal.Signals(signum).name
        if not self._stopping:
            self.exit_status = 130 if signum == signal.SIGINT else 0
            if self._running:
                _log.info("%s: stopping after the running job(s); send it again to kill them", name)
            self.stop()
        elif self._running:
            _log.warn("%s again: killing the running job(s)", name)
            self.kill()

    def _shutdown(self) -> None:
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        for slot in self._slots.values():
            self._close(slot)
        if self._dirs is not None:
            self._dirs.close()
            self._dirs = None
        with self._wake_lock:
            write, self._wake_w = self._wake_w, -1
            os.close(write)
        os.close(self._wake_r)

    # -- scheduling -------------------------------------------------------------
    def _make_due(self, slot: _Slot, force: bool) -> None:
        slot.force = slot.force or force
        if slot.state is not _State.DUE:
            slot.state = _State.DUE
            self._due.append(slot)

    def _changed(self, slot: _Slot) -> None:
        """Something in the queue changed: a round soon, whatever its state."""
        if slot.state is _State.RUNNING:
            slot.dirty = True
        elif slot.state is _State.WAITING and not slot.wake_on_change:
            slot.dirty = True  # the retry timer runs the round
        else:
            self._make_due(slot, force=True)

    def _overflow(self) -> None:
        _log.debug("inotify queue overflow: re-scanning every queue")
        for slot in self._slots.values():
            self._changed(slot)

    def _schedule(self, slot: _Slot, delay: float, retry: bool) -> None:
        slot.timer += 1
        generation = slot.timer

        def fire() -> None:
            if slot.timer != generation or slot.retired:
                return
            if retry and slot.state is _State.WAITING:
                self._make_due(slot, force=True)
            elif not retry and slot.state is _State.IDLE:
                self._make_due(slot, force=False)

        self.call_later(delay, fire)

    def _dispatch(self) -> None:
        while self._due and self._running < self.max_parallel and not self._stopping:
            slot = self._due.popleft()
            if slot.retired or slot.state is not _State.DUE:
                continue
            slot.state = _State.RUNNING
            force, slot.force, slot.dirty = slot.force, False, False
            self._running += 1
            if len(self._threads) < self._running:
                thread = threading.Thread(target=self._worker, name="fspl-worker", daemon=True)
                thread.start()
                self._threads.append(thread)
            self._tasks.put(functools.partial(self._work, slot, force))

    def _worker(self) -> None:
        while (task := self._tasks.get()) is not None:
            task()

    # -- rounds (worker threads) ----------------------------------------------------
    def _work(self, slot: _Slot, force: bool) -> None:
        _local.owner, _local.label = self, slot.label
        try:
            result = self._round(slot, force)
        except BaseException as exc:  # a bug must not kill the worker or the loop
            result = _Result(error=exc)
        finally:
            _local.owner = _local.label = None
        self._results.append((slot, result))
        self._wake()

    def _round(self, slot: _Slot, force: bool) -> _Result:
        spec = slot.spec
        if slot.queue is None:
            transport = open_transport(spec.location, spec.options)
            slot.queue = Queue(transport, spec.decoder)
            slot.owned = True
        queue = slot.queue
        if slot.paths is None:
            slot.paths = local_paths(queue.transport)
        fingerprint = self._fingerprint(slot, queue)
        if not force and fingerprint == slot.seen:
            return _Result()
        slot.seen = fingerprint
        config = spec.config
        remaining = slot.remaining()
        if remaining is not None:
            config = config._replace(maxjobs=remaining)
        state = _Pass(time.monotonic())
        try:
            done = queue.process(config, spec.runner, lambda: self._proceed(state))
        except CommandFailed as exc:
            return _Result(max(state.started - 1, 0), exc)
        except BaseException as exc:
            return _Result(state.started, exc)
        return _Result(done, preempted=state.preempted)

    def _proceed(self, state: _Pass) -> bool:
        if self._stopping:
            return False
        if state.started and self._due and time.monotonic() - state.start > SLICE:
            state.preempted = True
            return False
        state.started += 1
        return True

    @staticmethod
    def _fingerprint(slot: _Slot, queue: Queue) -> object:
        """What a poll compares: job names, and the sequence state when it matters."""
        names = frozenset(n for n in queue.transport.list_names() if is_job_name(n))
        if slot.paths is not None:
            try:
                st = os.stat(slot.paths[2])
                return names, (st.st_ino, st.st_mtime_ns, st.st_size)
            except OSError:
                return names, None
        if not names or slot.spec.config.order_by is not Order.SEQUENCE:
            return names  # one listing, nothing else
        # Jobs wait that did not run: a new nextseq (queue-set-next) would
        # let them, and a listing cannot show it.  Read-only: no lock taken.
        return names, queue.transport.peek_sequence().next_seq

    # -- results (loop thread) ----------------------------------------------------
    def _finish(self, slot: _Slot, result: _Result) -> None:
        self._running -= 1
        self.jobs_run += result.done
        slot.done += result.done
        first, slot.first = slot.first, False
        if slot.retired:
            self._close(slot)
            self._retiring.pop(slot.spec.location, None)
            successor = self._slots.get(slot.spec.location)
            if successor is not None:
                self._make_due(successor, force=True)
            return
        if self._attach(slot):
            slot.dirty = True  # events before the watch existed were missed
        if result.error is not None:
            self._failed(slot, result.error, first)
            if self._fatal is not None:
                return
        if slot.announce:
            slot.announce = False
            _log.info("%s: %s", slot.label, self.describe(slot))
        if result.error is not None:
            return
        if slot.last_error:
            _log.info("%s: working again", slot.label)
        slot.failures, slot.lock_failures, slot.last_error = 0, 0, ""
        if slot.remaining() == 0:
            self.remove(slot.spec.location)
            if self.exit_when_done and not self._slots:
                self.stop()
            return
        if self._stopping:
            slot.state = _State.IDLE
        elif result.preempted or slot.dirty:
            slot.state = _State.IDLE
            self._make_due(slot, force=True)
        else:
            slot.state = _State.IDLE
            self._schedule(slot, slot.poll, retry=False)

    def _failed(self, slot: _Slot, error: BaseException, first: bool) -> None:
        slot.state = _State.WAITING
        locked = isinstance(error, LockError)
        job_failure = isinstance(error, CommandFailed)
        if first and slot.spec.strict and not (job_failure or locked):
            self._fatal = error
            self.stop()
            return
        message = str(error) if isinstance(error, SpoolError) else _describe(error)
        if self._stopping:
            _log.warn("%s: %s", slot.label, message)
            return
        slot.wake_on_change = not locked
        if locked:
            # queue-init and queue-set-next hold the lock for a moment, and it
            # is their own write that woke us: retry soon.  Still held after a
            # second or two, it is another processor: say so, once.
            slot.lock_failures += 1
            delay = min(LOCK_RETRY * 2 ** (slot.lock_failures - 1), slot.poll)
            loud = slot.lock_failures == LOCK_PATIENCE
            level = _log.warn
        else:
            slot.lock_failures = 0
            slot.failures += 1
            delay = min(2.0 ** (slot.failures - 1), slot.poll)
            loud = job_failure or message != slot.last_error
            level = _log.warn if job_failure else _log.error
            if not job_failure:
                self._close(slot)  # a broken connection is not reused
        (level if loud else _log.debug)("%s: %s; retrying in %g s", slot.label, message, delay)
        if loud or not locked:
            slot.last_error = message
        self._schedule(slot, delay, retry=True)

    # -- inotify ------------------------------------------------------------------------
    def _attach(self, slot: _Slot) -> bool:
        """Add the watches a local queue is missing; True if any was added."""
        if self._dirs is None or slot.queue is None:
            return False
        if slot.paths is None:
            slot.paths = local_paths(slot.queue.transport)
            if slot.paths is None:
                return False
        root, jobs, _ = slot.paths
        added = False
        for kind, path, handler in (
            ("root", root, lambda ev: self._root_event(slot, ev)),
            ("jobs", jobs, lambda ev: self._jobs_event(slot, ev)),
        ):
            if kind in slot.wds:
                continue
            wd = self.watch_directory(path, (id(slot), kind), handler)
            if wd is not None:
                slot.wds[kind] = wd
                added = True
        return added

    def _detach(self, slot: _Slot) -> None:
        for kind, wd in slot.wds.items():
            self.unwatch_directory(wd, (id(slot), kind))
        slot.wds.clear()

    def _jobs_event(self, slot: _Slot, event: Event) -> None:
        if event.mask & IN_IGNORED:
            slot.wds.pop("jobs", None)
        elif event.mask & _ARRIVALS and is_job_name(event.name):
            self._changed(slot)

    def _root_event(self, slot: _Slot, event: Event) -> None:
        if event.mask & IN_IGNORED:
            slot.wds.pop("root", None)
        elif event.name == "nextseq" and event.mask & (IN_MOVED_TO | IN_CLOSE_WRITE):
            # While a pass runs it holds the lock, so the new nextseq is its own.
            if slot.state is not _State.RUNNING:
                self._changed(slot)
        elif event.name == "jobs" and event.mask & IN_ISDIR and event.mask & _ARRIVALS:
            self._attach(slot)
            self._changed(slot)

    def _close(self, slot: _Slot) -> None:
        """Close the slot's queue if it is the watcher's (it is reopened when needed)."""
        if not slot.owned:
            return
        queue, slot.queue = slot.queue, None
        if queue is not None:
            try:
                queue.transport.close()
            except Exception as exc:
                _log.debug("%s: closing: %s", slot.label, exc)


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        where = f'"{error.filename}": ' if error.filename else ""
        return f"{where}{error.strerror} (os error {error.errno})"
    return f"{type(error).__name__}: {error}"


def run_until_signalled(watcher: Watcher, *extra: int) -> int:
    """Run ``watcher`` with SIGTERM and SIGINT (and ``extra``) routed to it.

    Returns the exit status: 0 (SIGTERM, or done), 130 (SIGINT).
    """
    signums = (signal.SIGTERM, signal.SIGINT, *extra)
    previous = {s: signal.signal(s, lambda n, _f: watcher.signal(n)) for s in signums}
    try:
        watcher.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return watcher.exit_status
