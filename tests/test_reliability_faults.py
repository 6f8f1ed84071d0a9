"""Faults: full disks, odd files, vanishing jobs, bad decoders and commands,
and concurrency; each with a defined, tested behaviour."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Runner, jobs_in
from helpers import one_error_line, wait_until

from spooler.api import header
from spooler.packet import Command


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs (we are root in CI); skipped with a reason elsewhere."""
    point = tmp_path / "small"
    point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield point
    finally:
        subprocess.run(["umount", str(point)], check=False)


def test_full_disk_during_queue_write(ours: Runner, small_fs: Path) -> None:
    queue = small_fs / "q"
    ours("queue-init", "-q", queue)
    big = ours("prepare", "-s", "-", "-i", "-", input=os.urandom(3 << 20)).stdout
    result = ours("queue-write", "-q", queue, input=big)
    one_error_line(result)
    assert "No space left on device" in result.err
    assert os.listdir(queue / "jobs") == []  # nothing partial, no temporary file
    small = ours("prepare", "-s", "-", "-i", "-", input=b"fits").stdout
    assert ours("queue-write", "-q", queue, input=small).returncode == 0
    done = ours("queue-process", "-q", queue, "cat")
    assert done.returncode == 0 and done.stdout == b"fits"


def test_full_disk_during_output_capture(ours: Runner, small_fs: Path) -> None:
    queue = small_fs / "q"
    ours("queue-init", "-q", queue)
    ours("queue-write", "-q", queue, input=ours("prepare", "-s", "-").stdout)
    result = ours(
        "queue-process",
        "-q",
        queue,
        "--output-to",
        "SaveBoth",
        "sh",
        "--",
        "-c",
        "head -c 4000000 /dev/zero",
    )
    one_error_line(result)
    assert len(jobs_in(queue)) == 1  # Retry: the job is kept, the seq not advanced
    assert (queue / "nextseq").read_text() == "1\n"
    for name in os.listdir(queue / "jobs"):
        if name.endswith(".out"):
            os.unlink(queue / "jobs" / name)  # free the space: the queue works again
    assert ours("queue-process", "-q", queue, "true").returncode == 0
    assert jobs_in(queue) == []


def test_odd_files_under_job_names_are_skipped(ours: Runner, queue: Path) -> None:
    (queue / "jobs" / "fspl-dir.fspl").mkdir()
    os.mkfifo(queue / "jobs" / "fspl-fifo.fspl")  # would hang a blocking open
    os.symlink("/nonexistent", queue / "jobs" / "fspl-dangling.fspl")
    ours("queue-write", "-q", queue, input=ours("prepare", "-s", "-").stdout)
    listing = ours("queue-ls", "-q", queue, timeout=20)
    assert listing.returncode == 0 and listing.out.count("\n") == 2
    assert ours("queue-process", "-q", queue, "true", timeout=20).returncode == 0
    assert "unparsable: 3" in ours("queue-status", "-q", queue, timeout=20).out


def test_job_deleted_between_scan_and_run(ours: Runner, queue: Path, tmp_path: Path) -> None:
    for seq in (1, 2):
        (queue / "jobs" / f"fspl-{seq}.fspl").write_bytes(header(Command(), seq=seq))
    # Job 1's command deletes job 2 after the scan has seen it.
    result = ours("queue-process", "-q", queue, "rm", "--", str(queue / "jobs" / "fspl-2.fspl"))
    assert "disappeared" in one_error_line(result)
    assert (queue / "nextseq").read_text() == "2\n"  # job 1 is done; nothing else happened


def test_failing_and_hanging_decoders(ours: Runner, queue: Path) -> None:
    ours("queue-write", "-q", queue, input=ours("prepare", "-s", "-").stdout)
    failing = ours("queue-ls", "-q", queue, "-d", "false")
    assert failing.returncode == 0 and failing.out.count("\n") == 1  # nothing decodes
    garbage = ours("queue-process", "-q", queue, "-d", "echo garbage", "true")
    assert garbage.returncode == 0 and len(jobs_in(queue)) == 1
    # fspl waits for a decoder, as the reference does; bound it with timeout(1).
    bounded = ours("queue-ls", "-q", queue, "-d", "timeout 0.2 sleep 30", timeout=20)
    assert bounded.returncode == 0


def test_commands_that_cannot_run(ours: Runner, ref: Runner, queue: Path, tmp_path: Path) -> None:
    ours("queue-write", "-q", queue, input=ours("prepare", "-s", "-").stdout)
    script = tmp_path / "not-executable"
    script.write_text("#!/bin/sh\ntrue\n")
    for command in ("/nonexistent/command", str(script)):
        for run in (ours, ref):
            result = run("queue-process", "-q", queue, "--on-error", "Delete", command)
            assert result.returncode == 1  # an error, whatever --on-error says
        one_error_line(ours("queue-process", "-q", queue, command))
    assert len(jobs_in(queue)) == 1 and (queue / "nextseq").read_text() == "1\n"


#: Concurrent senders of three jobs each (each job is two fspl processes).
WRITERS = 8


def test_concurrent_writers_while_processing(tmp_path: Path) -> None:
    """Every job runs exactly once, and each sender's jobs in its order."""
    queue, log = tmp_path / "q", tmp_path / "log"
    fspl = [sys.executable, "-m", "spooler"]
    subprocess.run([*fspl, "queue-init", "-q", queue], check=True)
    writer = (
        "for j in 1 2 3; do printf 'w%s %s\\n' \"$W\" $j | "
        f"{' '.join(fspl)} prepare -s {tmp_path}/seq-$W -i - | "
        f"{' '.join(fspl)} queue-write -q {queue}; done"
    )
    drain = [*fspl, "queue-process", "-q", queue, "--order-by", "Timestamp"]
    drain += ["sh", "--", "-c", f"cat >> {log}"]
    stop = threading.Event()

    def process_loop() -> None:
        while not stop.is_set():
            subprocess.run(drain, capture_output=True)
            stop.wait(0.05)  # leave the cores to the writers between drains

    processor = threading.Thread(target=process_loop)
    processor.start()
    writers = [
        subprocess.Popen(["sh", "-c", writer], env={**os.environ, "W": str(w)})
        for w in range(WRITERS)
    ]
    for proc in writers:
        assert proc.wait(300) == 0
    stop.set()
    processor.join()
    subprocess.run(drain, check=True)
    lines = log.read_text().split("\n")[:-1]
    assert sorted(lines) == sorted(f"w{w} {j}" for w in range(WRITERS) for j in range(1, 4))
    for w in range(WRITERS):
        mine = [int(line.split()[1]) for line in lines if line.split()[0] == f"w{w}"]
        assert mine == [1, 2, 3]


def test_two_processors_one_refuses(ours: Runner, queue: Path, tmp_path: Path) -> None:
    ours("queue-write", "-q", queue, input=ours("prepare", "-s", "-").stdout)
    started, release = tmp_path / "started", tmp_path / "release"
    job = f"touch {started}; while [ ! -e {release} ]; do sleep 0.02; done"
    first = subprocess.Popen(
        [sys.executable, "-m", "spooler", "queue-process", "-q", queue, "sh", "--", "-c", job]
    )
    try:
        wait_until(started.exists, "the first processor's job")
        second = ours("queue-process", "-q", queue, "true")
        assert second.returncode == 1 and "lock" in second.err.lower()
    finally:
        release.touch()
        assert first.wait(30) == 0


def _world_readable_runtime(base: Path) -> Path:
    """Copies of the packages queue-ls imports, for a user who cannot read
    this checkout or its virtualenv (CI clones into a private directory)."""
    import click
    import msgpack
    import pluggy
    import spooler_plugins

    import spooler

    runtime = base / "runtime"
    for package in (spooler, spooler_plugins, click, msgpack, pluggy):
        source = Path(package.__file__).parent
        shutil.copytree(
            source, runtime / package.__name__, ignore=shutil.ignore_patterns("__pycache__")
        )
    return runtime


@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv is needed")
def test_unreadable_job_file(ours: Runner) -> None:
    """As an unprivileged user, an unreadable job is skipped by listings."""
    base = Path(tempfile.mkdtemp(prefix="fspl-perm-"))  # outside pytest's private dirs
    try:
        os.chmod(base, 0o755)
        queue = base / "q"
        ours("queue-init", "-q", queue)
        ours("queue-write", "-q", queue, input=ours("prepare", "-s", "-").stdout)
        secret = queue / "jobs" / "fspl-secret.fspl"
        secret.write_bytes(header(Command(), seq=2))
        os.chmod(secret, 0)
        for name in os.listdir(queue / "jobs"):
            if name != secret.name:
                os.chmod(queue / "jobs" / name, 0o644)
        result = subprocess.run(
            [
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                sys.executable,
                "-m",
                "spooler",
                "queue-ls",
                "-q",
                str(queue),
            ],
            capture_output=True,
            text=True,
            cwd="/",
            env={**os.environ, "HOME": "/", "PYTHONPATH": str(_world_readable_runtime(base))},
        )
    finally:
        shutil.rmtree(base)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 2  # the header and the readable job
