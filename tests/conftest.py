"""Shared fixtures: run our fspl and the reference fspl the same way; craft packets.

``ours`` runs ``python -m spooler`` and ``ref`` runs ``/usr/bin/fspl``; both
return a :class:`Result` (bytes ``stdout``/``stderr``, ``returncode``) and
take ``input=`` bytes, ``env=`` extras and ``cwd=``.  ``impl`` is each of them
in turn (ids ``ours`` and ``ref``) for scenarios both must pass.

Without the reference, tests that need it are skipped locally but FAIL when
``CI`` is set: the reference is installed in CI and interop tests must never
skip silently there.

The packet helpers below build packets from the wire format (docs/architecture.md) with
msgpack directly, independently of :mod:`spooler.packet`, so that tests of
our encoder compare it with something it did not produce.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest
from forkserver import ForkServer, drain, feed
from forkserver import available as forkserver_available
from helpers import require

REFERENCE = "/usr/bin/fspl"
OURS_ARGV = [sys.executable, "-m", "spooler"]
#: Fixture modules that start servers or need server programs (sshd, moto, rclone).
pytest_plugins = ["fixtures_s3", "fixtures_sftp", "fixtures_rclone"]

#: A creation time with non-zero nanoseconds (2022-05-07T19:38:31-05:00).
CTIME = (1_651_970_311, 425_412_511)


@dataclass
class Result:
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def out(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    @property
    def err(self) -> str:
        return self.stderr.decode("utf-8", "replace")


Runner = Callable[..., Result]
Arg = str | bytes | os.PathLike[str]


def _arg(value: Arg) -> str | bytes:
    return value if isinstance(value, bytes) else os.fspath(value)


#: How long a command may take unless the caller says otherwise.
DEFAULT_TIMEOUT = 60.0


def make_runner(name: str, argv0: list[str]) -> Runner:
    """A function running ``argv0 + args`` to completion, stdin from ``input``."""

    def run(
        *args: Arg,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Result:
        proc = subprocess.run(
            [*argv0, *map(_arg, args)],
            input=b"" if input is None else input,
            capture_output=True,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    run.name = name  # type: ignore[attr-defined]
    run.argv0 = argv0  # type: ignore[attr-defined]
    return run


#: What only a fresh process sees the same way: variables read at start-up
#: (the interpreter's, plugin discovery), remote locations other than S3
#: (paramiko's connections, rclone's processes, fsspec chains and
#: ``memory://`` live per process), commands that run until signalled
#: (serve without --check, queue-process --watch), and calls given a
#: timeout (they guard against a hang).  ``s3://`` runs in this process:
#: the only state s3fs keeps between calls is its instance cache (a client
#: and a listing cache per set of options), which
#: :func:`_fresh_process_state` empties.
_IMPORT_TIME_ENV = ("PYTHON", "FSPL_PLUGINS")
_IN_PROCESS_URLS = ("file://", "s3://")


def _needs_a_process(args: Sequence[str | bytes], env: dict[str, str], timeout: float) -> bool:
    if timeout != DEFAULT_TIMEOUT or any(k.startswith(_IMPORT_TIME_ENV) for k in env):
        return True
    for arg in args:
        text = arg.decode("utf-8", "replace") if isinstance(arg, bytes) else arg
        if text == "--watch" or text.startswith("rclone:") or "::" in text:
            return True
        if text == "serve" and "--check" not in args:
            return True
        if "://" in text and not text.startswith(_IN_PROCESS_URLS):
            return True
    return False


def _fresh_process_state() -> None:
    """Undo what a previous in-process call (or the environment changed since)
    left in the engine's per-process state: the time zone and the local-time
    cache, the environment copy given to jobs, the log level, the queue
    locations an error message names, fsspec's instance caches."""
    from spooler import execute, failures, log
    from spooler.jobenv import _rfc3339_local

    time.tzset()
    _rfc3339_local.cache_clear()
    execute._base_env = None
    failures._WHERE.clear()
    log.set_level(log.INFO)
    log.set_context(None)
    fsspec = sys.modules.get("fsspec")
    if fsspec is not None:  # a later call must list the bucket afresh, as a new process
        for implementation in list(fsspec.registry.values()):
            implementation.clear_instance_cache()


def run_in_process(
    args: Sequence[str | bytes],
    input: bytes,
    env: dict[str, str],
    cwd: str | os.PathLike[str] | None,
) -> Result:
    """``fspl ARGS`` through :func:`spooler.cli.main` in this process, as a
    subprocess would see it: pipes on descriptors 0, 1 and 2 (commands use
    them directly), fresh ``sys`` streams on them, the environment, working
    directory and time zone set for the call, and all of it restored after.
    About 100 times cheaper than starting ``python -m spooler``."""
    from spooler.cli import main

    argv = [os.fsdecode(a) for a in args]
    pipes = [os.pipe() for _ in range(3)]
    saved_fds = [os.dup(fd) for fd in (0, 1, 2)]
    saved_streams = (sys.stdin, sys.stdout, sys.stderr)
    saved_env, saved_cwd = dict(os.environ), os.getcwd()
    out: list[bytes] = []
    err: list[bytes] = []
    for fd, (read_end, write_end) in enumerate(pipes):
        os.dup2(read_end if fd == 0 else write_end, fd)
        os.close(read_end if fd == 0 else write_end)
    threads = [
        feed(pipes[0][1], input),
        drain(pipes[1][0], out),
        drain(pipes[2][0], err),
    ]
    status: int
    try:
        os.environ.update(env)
        _fresh_process_state()
        if cwd is not None:
            os.chdir(cwd)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - closed below
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
        try:
            status = main(argv)
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        finally:
            for stream in (sys.stdin, sys.stdout, sys.stderr):
                try:
                    stream.close()  # flushes; the descriptor stays open
                except OSError:
                    pass
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved_streams
        for fd, saved in enumerate(saved_fds):
            os.dup2(saved, fd)  # closes our pipe ends: the threads see EOF
            os.close(saved)
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)
        _fresh_process_state()
    for thread in threads:
        thread.join(DEFAULT_TIMEOUT)
    return Result(status, b"".join(out), b"".join(err))


#: This process's fork server, started on first use (see :func:`forked`)
#: with the environment and directory pytest started in, before any test
#: changed them.
_forkserver: list[ForkServer] = []
_SESSION_ENV, _SESSION_CWD = dict(os.environ), os.getcwd()


def fork_server() -> ForkServer | None:
    """This process's fork server, or None where there is none or every
    call must be a ``python -m spooler`` (``FSPL_TEST_SUBPROCESS=1``)."""
    if not forkserver_available() or os.environ.get("FSPL_TEST_SUBPROCESS") == "1":
        return None
    if not _forkserver:
        _forkserver.append(ForkServer(_SESSION_ENV, _SESSION_CWD))
    return _forkserver[0]


def forked(
    args: Sequence[str | bytes],
    input: bytes,
    env: dict[str, str],
    cwd: str | os.PathLike[str] | None,
    timeout: float,
) -> Result | None:
    """``python -m spooler ARGS`` as a child of the fork server
    (tests/forkserver.py): a process, without an interpreter start unless
    the call's ``PYTHON*`` or locale variables need one; None where there
    is no fork server."""
    server = fork_server()
    if server is None:
        return None
    status, out, err = server.run(
        [os.fsdecode(a) for a in args],
        input,
        {**os.environ, **env},
        os.fspath(cwd) if cwd is not None else os.getcwd(),
        timeout,
    )
    return Result(status, out, err)


def pytest_unconfigure() -> None:
    for server in _forkserver:
        server.close()


def make_ours() -> Runner:
    """Our fspl: in this process where that is indistinguishable from a
    subprocess (:func:`_needs_a_process`), else a child of the fork server
    (a fresh interpreter, forked; it execs ``python -m spooler`` itself when
    the call's start-up variables need a new interpreter), else, where
    there is no fork server, ``python -m spooler``;
    ``FSPL_TEST_SUBPROCESS=1`` makes every call a ``python -m spooler``."""
    spawn = make_runner("ours", OURS_ARGV)
    if os.environ.get("FSPL_TEST_SUBPROCESS") == "1":
        return spawn

    def run(
        *args: Arg,
        input: bytes | None = None,
        env: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Result:
        argv = [_arg(a) for a in args]
        stdin = b"" if input is None else input
        if not _needs_a_process(argv, env or {}, timeout):
            return run_in_process(argv, stdin, env or {}, cwd)
        result = forked(argv, stdin, env or {}, cwd, timeout)
        if result is None:
            result = spawn(*args, input=input, env=env, cwd=cwd, timeout=timeout)
        return result

    run.name = "ours"  # type: ignore[attr-defined]
    run.argv0 = OURS_ARGV  # type: ignore[attr-defined]
    return run


def reference_available() -> bool:
    return os.access(REFERENCE, os.X_OK)


def require_reference() -> None:
    """Skip without the reference, except under CI, where that is a failure."""
    require(reference_available(), REFERENCE, "apt-get install filespooler")


@pytest.fixture
def ours() -> Runner:
    """Our fspl (in this process where a subprocess would behave the same)."""
    return make_ours()


@pytest.fixture
def ref() -> Runner:
    """The reference fspl 1.2.2."""
    require_reference()
    return make_runner("ref", [REFERENCE])


@pytest.fixture(params=["ours", "ref"])
def impl(request: pytest.FixtureRequest) -> Runner:
    """Each implementation in turn, for scenarios that both must pass."""
    if request.param == "ref":
        require_reference()
        return make_runner("ref", [REFERENCE])
    return make_ours()


@pytest.fixture
def queue(tmp_path: Path, ours: Runner) -> Path:
    """A fresh queue directory, made by our queue-init."""
    path = tmp_path / "queue"
    result = ours("queue-init", "-q", path)
    assert result.returncode == 0, result.err
    return path


#: The source trees every ``python -m spooler`` subprocess imports from.
SOURCES = [Path(__file__).resolve().parents[1] / name for name in ("spooler", "plugins")]


def pytest_sessionstart(session: pytest.Session) -> None:
    """Byte-compile the checkout once: the suite starts hundreds of fspl
    processes, and where ``PYTHONDONTWRITEBYTECODE`` is set (CI's machines
    set it) each of them would otherwise compile every module it imports
    from source again (about 70 ms of a 200 ms start)."""
    import compileall

    for source in SOURCES:
        compileall.compile_dir(source, quiet=2)


@pytest.hookimpl(hookwrapper=True)
def pytest_collection() -> Iterator[None]:
    """Let pytest cache the test modules it rewrites (``__pycache__/*-pytest-*.pyc``)
    even under ``PYTHONDONTWRITEBYTECODE``, as the checkout is compiled
    above: rewriting every test module again costs each xdist worker about
    1.5 s of its collection."""
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, False
    yield
    sys.dont_write_bytecode = saved


def _needs_a_server(item: pytest.Item) -> bool:
    """True if a fixture of ``item`` (directly or not) comes from a server
    fixture module or is named ``*_server`` (the plugin kit's convention)."""
    info = getattr(item, "_fixtureinfo", None)
    for name, defs in info.name2fixturedefs.items() if info else ():
        if name.endswith("_server") or any(d.func.__module__ in pytest_plugins for d in defs):
            return True
    return False


#: Test modules marked ``slow`` as a whole: crash torture, faults, fuzzing.
SLOW_MODULES = "test_reliability_"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``server`` tests, so that ``-m "not server"`` is the core suite,
    and ``slow`` ones, which CI runs on the default interpreter only.

    Then order the server and slow tests first (a stable sort: each module
    keeps its order): they hold the long tests, and pytest-xdist hands tests
    out in collection order, so the long ones start early and the many short
    core tests at the end even out the workers instead of one of them
    finishing a 15-second test alone."""
    for item in items:
        if _needs_a_server(item):
            item.add_marker(pytest.mark.server)
        module = getattr(item, "module", None)
        if module is not None and module.__name__.startswith(SLOW_MODULES):
            item.add_marker(pytest.mark.slow)
    items.sort(key=lambda item: not any(item.get_closest_marker(m) for m in ("server", "slow")))


@pytest.fixture(autouse=True)
def _stable_timezone(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Tests compare local-time output: pin a zone with a non-zero offset."""
    monkeypatch.setenv("TZ", "America/Chicago")
    yield


@pytest.fixture(autouse=True)
def _own_cache_home(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Each test its own ``XDG_CACHE_HOME`` (the local transport's header
    cache lives there): nothing is written to the real ``~/.cache``, and no
    test sees another's cache (a reused inode would make it look valid)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))


# -- queues on disk -------------------------------------------------------------


def jobs_in(queue: Path) -> list[str]:
    """Job file names (fspl-*.fspl) present in ``queue``, sorted."""
    return sorted(
        p.name
        for p in (queue / "jobs").iterdir()
        if p.name.startswith("fspl-") and p.name.endswith(".fspl")
    )


def make_queue(path: Path, append_only: bool = False) -> Path:
    """The queue layout (``nextseq``, ``nextseq.lock``, ``jobs/``), made by hand."""
    (path / "jobs").mkdir(parents=True)
    if not append_only:
        (path / "nextseq").write_text("1\n")
        (path / "nextseq.lock").touch()
    return path


def put_job(queue: Path, data: bytes, name: str | None = None) -> str:
    """Drop a packet into ``queue/jobs`` under ``fspl-NAME.fspl``."""
    if name is None:
        name = f"t{len(list((queue / 'jobs').iterdir())):04d}"
    filename = f"fspl-{name}.fspl"
    (queue / "jobs" / filename).write_bytes(data)
    return filename


def nextseq(queue: Path) -> str:
    return (queue / "nextseq").read_text()


# -- packets, built from the contract ------------------------------------------


def frame(
    block: bytes,
    *,
    tag: bytes = b"*FILESPOOLER",
    version: int = 1,
    length: int | None = None,
    meta_crc: int | None = None,
    head_crc: int | None = None,
) -> bytes:
    """The 30 fixed bytes around ``block`` (CRCs computed unless given) + block."""
    prefix = struct.pack(
        ">12sHQI",
        tag,
        version,
        len(block) if length is None else length,
        zlib.crc32(block) if meta_crc is None else meta_crc,
    )
    crc = zlib.crc32(prefix) if head_crc is None else head_crc
    return prefix + struct.pack(">I", crc) + block


def byte_array(data: bytes) -> list[int]:
    """A byte string as the wire carries it: an array of small integers."""
    return list(data)


def cmd_doc(
    kind: str | None = None, params: Sequence[bytes] = (), env: Sequence[tuple[bytes, bytes]] = ()
) -> object:
    """The ``cmd_type`` value: ``"NOP"``, ``"Fail"`` or a Command map."""
    if kind is not None:
        return kind
    return {
        "Command": {
            "params": [byte_array(p) for p in params],
            "env": [[byte_array(k), byte_array(v)] for k, v in env],
        }
    }


def meta_block(
    seq: int = 1,
    *,
    ctime: tuple[int, int] = CTIME,
    kind: str | None = None,
    params: Sequence[bytes] = (),
    env: Sequence[tuple[bytes, bytes]] = (),
    cmd: object = None,
) -> bytes:
    """A metadata block as the reference writes it (``cmd`` overrides the rest)."""
    doc = {
        "seq": seq,
        "ctime": list(ctime),
        "cmd_type": cmd_doc(kind, params, env) if cmd is None else cmd,
    }
    return msgpack.packb(doc, use_bin_type=True)


def craft(
    seq: int = 1,
    payload: bytes = b"",
    *,
    ctime: tuple[int, int] = CTIME,
    kind: str | None = None,
    params: Sequence[bytes] = (),
    env: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    """A complete, valid packet."""
    return frame(meta_block(seq, ctime=ctime, kind=kind, params=params, env=env)) + payload


def pack(doc: object) -> bytes:
    """MessagePack with str keys as str (the reference's encoding)."""
    return msgpack.packb(doc, use_bin_type=True)


def _doc(cmd: object = "NOP", **fields: object) -> bytes:
    """A metadata block with seq 1, ctime [5, 6] and ``cmd``, fields overridden."""
    return pack({"seq": 1, "ctime": [5, 6], "cmd_type": cmd, **fields})


def _cmd(params: list[object] | None = None, env: list[object] | None = None) -> dict:
    return {"Command": {"params": params or [], "env": env or []}}


_TOP = b"\xa3seq\x01\xa5ctime\x92\x05\x06\xa8cmd_type"

#: Metadata blocks and whether fspl 1.2.2 accepts them (observed with its
#: stdin-info).  The reference decodes with serde, so it accepts every
#: encoding serde does: structs as maps (keys str, bin or field index;
#: unknown keys ignored; duplicates refused) or as arrays of exact length,
#: enum variants by name or index, or as one-entry maps; bytes after the
#: value are ignored.  Byte strings must be arrays of integers 0..255: bin,
#: str and booleans are refused.  test_packet checks ours against this
#: table; test_interop checks that the reference still agrees with it.
DECODING_CASES: dict[str, tuple[bytes, bool]] = {
    "canonical": (_doc(), True),
    "reordered-keys": (pack({"cmd_type": "NOP", "ctime": [5, 6], "seq": 1}), True),
    "unknown-key": (_doc(x=[1, {}]), True),
    "bin-keys": (b"\x83\xc4\x03seq\x01\xc4\x05ctime\x92\x05\x06\xc4\x08cmd_type\xa3NOP", True),
    "index-keys": (msgpack.packb({0: 1, 1: [5, 6], 2: "NOP", 9: 0}), True),
    "struct-as-array": (pack([1, [5, 6], "NOP"]), True),
    "command-as-array": (pack([1, [5, 6], {"Command": [[[97]], [[[66], [67]]]]}]), True),
    "trailing-bytes": (_doc() + b"\xc1\x00", True),
    "nop-as-map": (_doc({"NOP": None}), True),
    "fail-bin-name": (_doc(b"Fail"), True),
    "variant-index": (_doc(1), True),
    "command-index": (msgpack.packb({"seq": 1, "ctime": [5, 6], "cmd_type": {0: [[], []]}}), True),
    "command-extra-key": (_doc({"Command": {"params": [], "env": [], "z": 1}}), True),
    "negative-secs": (_doc(ctime=[-5, 6]), True),
    "max-seq": (_doc(seq=2**64 - 1), True),
    "seq-int8": (b"\x83\xa3seq\xd0\x05\xa5ctime\x92\x05\x06\xa8cmd_type\xa3NOP", True),
    "empty-block": (b"", False),
    "not-msgpack": (b"\xc1", False),
    "int-array": (pack([1, 2, 3]), False),
    "short-array": (pack([1, [5, 6]]), False),
    "long-array": (pack([1, [5, 6], "NOP", 0]), False),
    "missing-ctime": (pack({"seq": 1, "cmd_type": "NOP"}), False),
    "duplicate-seq": (b"\x84\xa3seq\x01" + _TOP + b"\xa3NOP", False),
    "nil-key": (b"\x84\xc0\x01" + _TOP + b"\xa3NOP", False),
    "negative-seq": (_doc(seq=-1), False),
    "float-seq": (_doc(seq=1.0), False),
    "bool-seq": (_doc(seq=True), False),
    "short-ctime": (_doc(ctime=[5]), False),
    "ctime-as-map": (_doc(ctime={"secs": 5, "nanos": 6}), False),
    "negative-nanos": (_doc(ctime=[5, -1]), False),
    "lowercase-variant": (_doc("nop"), False),
    "unknown-variant": (_doc("Other"), False),
    "variant-index-3": (_doc(3), False),
    "command-unit": (_doc("Command"), False),
    "nop-with-value": (_doc({"NOP": 1}), False),
    "two-variants": (_doc({"NOP": None, "Fail": None}), False),
    "command-no-env": (_doc({"Command": {"params": []}}), False),
    "command-dup-params": (
        _TOP + b"\x81\xa7Command\x83\xa6params\x90\xa6params\x90\xa3env\x90",
        False,
    ),
    "bin-param": (_doc(_cmd([b"ab"])), False),
    "str-param": (_doc(_cmd(["ab"])), False),
    "bin-env-name": (_doc(_cmd(env=[[b"A", [66]]])), False),
    "str-env-value": (_doc(_cmd(env=[[[65], "B"]])), False),
    "env-triple": (_doc(_cmd(env=[[[65], [66], [67]]])), False),
    "env-as-map": (_doc({"Command": {"params": [], "env": {"A": "B"}}}), False),
    "byte-256": (_doc(_cmd([[256]])), False),
    "byte-negative": (_doc(_cmd([[-1]])), False),
    "byte-bool": (_doc(_cmd([[True]])), False),
    "param-nil": (_doc(_cmd([None])), False),
}
