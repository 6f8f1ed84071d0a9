"""A fork server: fspl processes without an interpreter start each.

``python -m spooler`` spends about 110 ms of CPU before it does anything
(the interpreter, ``site``, click).  The server is one ``python`` per
pytest process that imports fspl's command line once, then forks a child
per command.  The child is a new process (its own pid, descriptors 0–2 on
the caller's pipes and nothing else open, the caller's environment and
working directory, killed on a timeout) and its interpreter is a fresh one
that imported those modules: the server never runs a command, and holds no
thread, connection or cache.  The child runs ``spooler`` as ``-m`` does
and leaves through the interpreter's normal exit (``atexit``, flushing).

What a fork cannot stand in for is what the interpreter reads when it
starts: ``PYTHON*`` variables and the locale.  A ``PYTHONPATH`` the server
did not have is put on ``sys.path`` as the interpreter would, unless it
holds a module the server has imported or a ``sitecustomize``; any other
difference makes the child exec a real ``python -m spooler``.  Linux only
(``os.pidfd_open``); elsewhere :func:`available` is False and conftest
starts every process itself.

Protocol, per call, on a new connection to the server's socket: the
caller sends a 4-byte length with descriptors 0, 1 and 2 attached, then
that many bytes of JSON (``argv``, ``env``, ``cwd``); the server answers
the child's pid, then its exit status as ``subprocess`` reports it
(negative: killed by that signal), 8 bytes each.
"""

from __future__ import annotations

import json
import os
import runpy
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from importlib import import_module

#: Imported once by the server: what every fspl command line imports.
PRELOAD = (
    "spooler.cli",
    "spooler.cli.fast",
    "spooler.cli.app",
    "spooler.cli.actions",
    "spooler.queue",
    "spooler.registry",
    "spooler_plugins.local.transport",
)
_HERE = os.path.dirname(os.path.abspath(__file__))
_LENGTH = struct.Struct(">I")
_NUMBER = struct.Struct(">q")


#: Read by the interpreter as it starts (the search path, flags, the
#: locale of its streams and file names): a child stands in for
#: ``python -m spooler`` only if these are the server's (but see
#: :func:`_added_path`).
INTERPRETER_ENV = ("PYTHON", "LC_", "LANG")


def available() -> bool:
    return hasattr(os, "pidfd_open") and hasattr(socket, "send_fds")


def interpreter_env(env: Mapping[str, str]) -> dict[str, str]:
    """The variables of ``env`` that the interpreter reads when it starts."""
    return {key: value for key, value in env.items() if key.startswith(INTERPRETER_ENV)}


def _receive_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the fork server closed the connection")
        data += chunk
    return data


# -- the server ---------------------------------------------------------------------------


def serve(address: str) -> None:
    """Preload, listen on ``address``, fork a child per request until stdin
    closes (the pytest process is gone).  Runs in the server process; a
    child never returns from here (SystemExit ends its interpreter)."""
    for name in PRELOAD:
        import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(64)
    os.write(1, b"ready\n")
    children: dict[int, tuple[int, socket.socket]] = {}  # pidfd → (pid, connection)
    while True:
        ready, _, _ = select.select([0, listener, *children], [], [])
        if 0 in ready:
            return
        if listener in ready:
            conn, _ = listener.accept()
            header, fds, _, _ = socket.recv_fds(conn, _LENGTH.size, 3)
            request = json.loads(_receive_exactly(conn, _LENGTH.unpack(header)[0]))
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                _become(request, fds, [listener, conn, *(c for _, c in children.values())])
            for fd in fds:
                os.close(fd)
            conn.sendall(_NUMBER.pack(pid))
            children[os.pidfd_open(pid)] = (pid, conn)
        for pidfd in [fd for fd in ready if isinstance(fd, int) and fd in children]:
            pid, conn = children.pop(pidfd)
            os.close(pidfd)
            # The status first, reaping after: until the caller has the
            # status, the pid it may signal is still its child's.
            info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            assert info is not None
            status = info.si_status if info.si_code == os.CLD_EXITED else -info.si_status
            try:
                conn.sendall(_NUMBER.pack(status))
            except OSError:
                pass  # the caller gave up on it
            conn.close()
            os.waitpid(pid, 0)


def _become(request: dict[str, object], fds: list[int], sockets: list[socket.socket]) -> None:
    """In the child: take the caller's descriptors, environment and working
    directory, then run ``python -m spooler ARGS``; never returns."""
    for socket_ in sockets:
        socket_.detach()  # closed below, by number: their objects must not close reused ones
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    env = request["env"]
    argv = request["argv"]
    cwd = request["cwd"]
    assert isinstance(env, dict) and isinstance(argv, list) and isinstance(cwd, str)
    os.chdir(cwd)
    added = _added_path(dict(os.environ), env)
    if added is None:  # only a new interpreter starts as the caller asks
        os.execve(sys.executable, [sys.executable, "-m", "spooler", *argv], env)
    os.environ.clear()
    os.environ.update(env)
    time.tzset()
    # As for "python -m": the working directory first ("-c" put "" there),
    # then PYTHONPATH, and not this directory (the server's own import).
    rest = [p for p in sys.path[1:] if p != _HERE]
    sys.path[:] = [os.getcwd(), *added, *rest]
    sys.argv = ["-m", *argv]
    runpy.run_module("spooler", run_name="__main__", alter_sys=True)
    sys.exit(0)


def _added_path(server: dict[str, str], call: dict[str, str]) -> list[str] | None:
    """The directories to put on ``sys.path`` for an interpreter started
    with ``call`` rather than ``server`` (the server's environment): those
    of a PYTHONPATH the server did not have.  None if the difference is
    more than that: other start-up variables, or a directory holding a
    module the server has imported or a ``sitecustomize`` (which ``site``
    would run)."""
    mine, theirs = interpreter_env(server), interpreter_env(call)
    my_path, path = mine.pop("PYTHONPATH", ""), theirs.pop("PYTHONPATH", "")
    if mine != theirs or (my_path and path != my_path):
        return None
    if path == my_path:
        return []
    dirs = [os.path.abspath(d) for d in path.split(os.pathsep) if d]
    loaded = {name.partition(".")[0] for name in sys.modules} | {"sitecustomize", "usercustomize"}
    for directory in dirs:
        try:
            names = os.listdir(directory)
        except OSError:
            continue
        if any(name.partition(".")[0] in loaded for name in names):
            return None
    return dirs


# -- the caller ---------------------------------------------------------------------------


class ForkServer:
    """The server process for this pytest process, started on first use."""

    def __init__(self, env: Mapping[str, str], cwd: str) -> None:
        """Start the server with ``env`` and in ``cwd``: its children's
        interpreters start as ``python -m spooler`` would with them."""
        self.env = dict(env)
        self.address = f"\0fspl-test-forkserver-{os.getpid()}-{id(self)}"
        code = (
            f"import sys; sys.path.append({_HERE!r}); "
            f"import forkserver; forkserver.serve({self.address!r})"
        )
        self.process = subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
            cwd=cwd,
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline() != b"ready\n":
            _, err = self.process.communicate()
            raise RuntimeError(f"the fork server did not start: {err.decode(errors='replace')}")

    def close(self) -> None:
        """Stop the server (its stdin closes) and reap it."""
        for pipe in (self.process.stdin, self.process.stdout, self.process.stderr):
            assert pipe is not None
            pipe.close()
        self.process.wait()

    def start(
        self, argv: Sequence[str], env: Mapping[str, str], cwd: str, fds: Sequence[int]
    ) -> Child:
        """``python -m spooler ARGV`` as a child of the server, on
        descriptors ``fds`` (0, 1 and 2; the caller may close its copies)."""
        request = json.dumps({"argv": list(argv), "env": dict(env), "cwd": cwd}).encode()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(self.address)
            socket.send_fds(conn, [_LENGTH.pack(len(request))], list(fds))
            conn.sendall(request)
            pid = _NUMBER.unpack(_receive_exactly(conn, _NUMBER.size))[0]
        except BaseException:
            conn.close()
            raise
        return Child(conn, pid, ["fspl", *argv])

    def run(
        self,
        argv: Sequence[str],
        input: bytes,
        env: Mapping[str, str],
        cwd: str,
        timeout: float,
    ) -> tuple[int, bytes, bytes]:
        """Run ``python -m spooler ARGV`` to completion, ``input`` on its
        stdin: (status, stdout, stderr), or ``subprocess.TimeoutExpired``
        after killing it, as ``subprocess.run`` would."""
        deadline = time.monotonic() + timeout
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        stderr_r, stderr_w = os.pipe()
        try:
            child = self.start(argv, env, cwd, (stdin_r, stdout_w, stderr_w))
        finally:
            for fd in (stdin_r, stdout_w, stderr_w):
                os.close(fd)
        out: list[bytes] = []
        err: list[bytes] = []
        threads = [feed(stdin_w, input), drain(stdout_r, out), drain(stderr_r, err)]
        try:
            status = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
            raise
        for thread in threads:  # until end of file, as subprocess.run reads
            thread.join(max(deadline - time.monotonic(), 0))
            if thread.is_alive():  # a descendant holds the pipe
                raise subprocess.TimeoutExpired(child.args, timeout)
        return status, b"".join(out), b"".join(err)


class Child:
    """A child of the fork server, as much of ``subprocess.Popen`` as the
    tests use: ``pid``, ``returncode``, ``poll``, ``wait``, ``send_signal``,
    ``kill``.  Its status comes from the server over ``conn``."""

    def __init__(self, conn: socket.socket, pid: int, args: list[str]) -> None:
        self.conn, self.pid, self.args = conn, pid, args
        self.returncode: int | None = None
        self._received = b""

    def _receive(self, timeout: float | None) -> bool:
        """Read the status for up to ``timeout`` seconds; True once it is in."""
        self.conn.settimeout(timeout)
        try:
            while len(self._received) < _NUMBER.size:
                chunk = self.conn.recv(_NUMBER.size - len(self._received))
                if not chunk:
                    raise ConnectionError("the fork server closed the connection")
                self._received += chunk
        except (TimeoutError, BlockingIOError):
            return False
        self.returncode = _NUMBER.unpack(self._received)[0]
        self.conn.close()
        return True

    def poll(self) -> int | None:
        if self.returncode is None:
            self._receive(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and not self._receive(timeout):
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.poll() is None:  # not reaped yet (the server reaps after reporting): our pid
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def drain(fd: int, into: list[bytes]) -> threading.Thread:
    def read() -> None:
        while chunk := os.read(fd, 1 << 16):
            into.append(chunk)
        os.close(fd)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def feed(fd: int, data: bytes) -> threading.Thread:
    def write() -> None:
        try:
            with open(fd, "wb") as pipe:
                pipe.write(data)
        except BrokenPipeError:
            pass

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread
