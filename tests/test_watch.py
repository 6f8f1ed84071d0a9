"""queue-process --watch and spooler.watch(): real inotify, real signals, real servers."""

from __future__ import annotations

import json
import logging
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Runner, craft, jobs_in, make_queue, nextseq, put_job, require_reference
from helpers import one_error_line, wait_until
from watching import (
    Daemon,
    daemon_fixture,  # noqa: F401 - the "daemon" fixture
    lines,
    pid_alive,
    recorder,
)

import spooler
from spooler import seqfile
from spooler import watcher as watch_module

Start = Callable[..., Daemon]
TIMEOUT_S = 30


def watch_args(queue: Path | str, log: Path, *extra: str) -> list[str]:
    command = recorder(log)
    return ["queue-process", "-q", str(queue), "--watch", *extra, *command]


def shell_args(queue: Path | str, script: str, *extra: str) -> list[str]:
    """queue-process --watch running ``sh -c SCRIPT`` for each job."""
    return ["queue-process", "-q", str(queue), "--watch", *extra, "sh", "--", "-c", script]


@pytest.fixture
def q(tmp_path: Path) -> Path:
    return make_queue(tmp_path / "q")


def write_ours(ours: Runner, queue: Path, packet: bytes) -> None:
    assert ours("queue-write", "-q", queue, input=packet).returncode == 0


def test_drains_then_runs_new_jobs_until_sigterm(
    ours: Runner, daemon: Start, q: Path, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    put_job(q, craft(1, b"one"))
    d = daemon(*watch_args(q, log))
    wait_until(lambda: lines(log) == ["1 one"], "the queued job")
    write_ours(ours, q, craft(2, b"two"))
    wait_until(lambda: lines(log) == ["1 one", "2 two"], "the new job")
    # Recorded after the command exits, as without --watch.
    wait_until(lambda: jobs_in(q) == [] and nextseq(q) == "3\n", "job 2 to be disposed of")
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


@pytest.mark.parametrize("publish", ["ours-link", "reference-rename", "written-in-place"])
def test_every_way_of_publishing_a_job_is_seen(
    publish: str, ours: Runner, daemon: Start, q: Path, tmp_path: Path
) -> None:
    """Link (IN_CREATE), rename (IN_MOVED_TO), a plain write (IN_CLOSE_WRITE); poll 1 h."""
    log = tmp_path / "log"
    d = daemon(*watch_args(q, log, "--poll", "3600"))
    d.wait_for_output("watching with inotify")
    packet = craft(1, b"x")
    if publish == "ours-link":
        write_ours(ours, q, packet)
    elif publish == "reference-rename":
        require_reference()
        subprocess.run(["/usr/bin/fspl", "queue-write", "-q", q], input=packet, check=True)
    else:
        with open(q / "jobs" / "fspl-direct.fspl", "wb") as fh:
            fh.write(packet[:10])  # the header is incomplete until the file is closed
            fh.flush()
            time.sleep(0.1)
            fh.write(packet[10:])
    wait_until(lambda: lines(log) == ["1 x"], "the job")


def test_out_of_order_arrival_runs_in_sequence(
    ours: Runner, daemon: Start, q: Path, tmp_path: Path
) -> None:
    log = tmp_path / "log"
    d = daemon(*watch_args(q, log))
    d.wait_for_output("watching with inotify")
    write_ours(ours, q, craft(3, b"c"))
    write_ours(ours, q, craft(1, b"a"))
    wait_until(lambda: lines(log) == ["1 a"], "job 1")
    wait_until(lambda: len(jobs_in(q)) == 1, "job 1 to be deleted")  # 3 waits for 2
    write_ours(ours, q, craft(2, b"b"))
    wait_until(lambda: len(lines(log)) == 3, "jobs 2 and 3")
    assert lines(log) == ["1 a", "2 b", "3 c"]


def test_idle_holds_no_lock_and_sees_reference_set_next(
    ours: Runner, ref: Runner, daemon: Start, q: Path, tmp_path: Path
) -> None:
    """A stalled queue (next 1, only job 5): the reference moves nextseq while we idle."""
    log = tmp_path / "log"
    put_job(q, craft(5, b"five"))
    d = daemon(*watch_args(q, log, "--poll", "3600"))
    d.wait_for_output("watching with inotify")
    status = ours("queue-status", "-q", q)
    assert "next: 1" in status.out and "locked" not in status.out
    result = ref("queue-set-next", "-q", q, "5")
    assert result.returncode == 0, result.err
    wait_until(lambda: lines(log) == ["5 five"], "job 5 after queue-set-next")
    # The job logs before the watcher advances nextseq: wait for that too.
    wait_until(lambda: ref("queue-get-next", "-q", q).out.strip() == "6", "nextseq 6")


def test_timestamp_order_and_maxjobs_total(
    ours: Runner, daemon: Start, q: Path, tmp_path: Path
) -> None:
    """-n keeps its meaning: N jobs in all, then exit 0; seqs are ignored by Timestamp."""
    log = tmp_path / "log"
    put_job(q, craft(7, b"a", ctime=(100, 0)))
    d = daemon(*watch_args(q, log, "--order-by", "Timestamp", "-n", "3"))
    wait_until(lambda: lines(log) == ["7 a"], "the first job")
    write_ours(ours, q, craft(9, b"b"))
    wait_until(lambda: len(lines(log)) == 2, "the second job")
    write_ours(ours, q, craft(9, b"c"))
    assert d.wait() == 0
    assert lines(log) == ["7 a", "9 b", "9 c"]


def test_failing_job_backs_off_one_line_each_and_retries_on_change(
    daemon: Start, q: Path, tmp_path: Path
) -> None:
    attempts = tmp_path / "attempts"
    put_job(q, craft(1, b"bad"))
    put_job(q, craft(2, b"good"))
    # Each attempt records its seq and its clock; job 1 always fails.
    script = f'echo "$FSPL_SEQ $(date +%s%N)" >> "{attempts}"; test "$FSPL_SEQ" != 1'
    d = daemon(*shell_args(q, script, "--poll", "60"))
    d.wait_for_output("retrying in 4 s")  # failures after 1 s and 2 s waits
    assert [w for w in ("in 1 s", "in 2 s", "in 4 s") if w in d.output] == [
        "in 1 s",
        "in 2 s",
        "in 4 s",
    ]
    failures = d.output.count("Aborting processing due to failure of job 1")
    assert failures == 3 == len(lines(attempts))
    # What queue-set-next does, without a process start: lock, write, rename,
    # then (here a slow) release.  The watcher wakes at the rename, finds the
    # lock still held, and must not then wait for its 4-s job retry.
    with seqfile.locked(str(q / "nextseq")) as seq:
        seq.write(2)
        time.sleep(0.5)
    wait_until(lambda: lines(attempts)[-1].startswith("2 "), "job 2")
    last_failure, job_2 = (int(line.split()[1]) for line in lines(attempts)[-2:])
    # At once, not at the retry 4 s after the last failure.
    assert (job_2 - last_failure) / 1e9 < 3.5, d.output
    assert d.output.count("Aborting processing") == failures
    d.signal(signal.SIGINT)
    assert d.wait() == 130


def test_sigterm_while_idle_and_while_retrying_exits_at_once(
    daemon: Start, q: Path, tmp_path: Path
) -> None:
    attempts = tmp_path / "attempts"
    put_job(q, craft(1))
    script = f'echo x >> "{attempts}"; exit 3'
    d = daemon(*shell_args(q, script))
    d.wait_for_output("retrying in 2 s")
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    assert len(lines(attempts)) == d.output.count("exited with status 3") == 2
    assert jobs_in(q) and nextseq(q) == "1\n"  # Retry: the job stays


def test_signal_mid_job_lets_it_finish_then_exits(daemon: Start, q: Path, tmp_path: Path) -> None:
    started, log = tmp_path / "started", tmp_path / "log"
    put_job(q, craft(1))
    put_job(q, craft(2))
    script = f'touch "{started}"; sleep 1; echo "$FSPL_SEQ" >> "{log}"'
    d = daemon(*shell_args(q, script, "--timeout", "60"))
    wait_until(started.exists, "the job to start")
    d.signal(signal.SIGINT)
    assert d.wait() == 130
    assert lines(log) == ["1"]  # finished, and job 2 never started
    assert nextseq(q) == "2\n" and len(jobs_in(q)) == 1  # advanced and disposed


def test_second_signal_kills_the_job_process_group(daemon: Start, q: Path, tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    put_job(q, craft(1))
    script = f'sleep 300 & echo $! > "{pids}"; wait'
    d = daemon(*shell_args(q, script))
    wait_until(lambda: pids.exists() and pids.read_text().strip(), "the job to start")
    grandchild = int(pids.read_text())
    d.signal(signal.SIGTERM)
    d.wait_for_output("send it again to kill them")
    assert pid_alive(grandchild)  # the first signal reached fspl only
    d.signal(signal.SIGTERM)
    assert d.wait() == 0
    wait_until(lambda: not pid_alive(grandchild), "the job's child to die")
    assert nextseq(q) == "1\n" and len(jobs_in(q)) == 1  # killed = failed: Retry keeps it


def test_timeout_works_from_the_worker_thread(daemon: Start, q: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    put_job(q, craft(1, b"slow"))
    put_job(q, craft(2, b"fast"))
    script = f'test "$FSPL_SEQ" = 1 && sleep 30; echo "$FSPL_SEQ" >> "{log}"'
    d = daemon(*shell_args(q, script, "--timeout", "1", "--on-error", "Delete"))
    wait_until(lambda: lines(log) == ["2"], "job 2 after job 1 timed out")
    assert "timed out after 1 seconds" in d.output
    wait_until(lambda: jobs_in(q) == [], "both jobs to be deleted")


def test_errors_at_start_are_plain_errors(ours: Runner, tmp_path: Path) -> None:
    missing = ours("queue-process", "-q", tmp_path / "nope", "--watch", "true")
    one_error_line(missing)
    make_queue(tmp_path / "ao", append_only=True)
    append_only = ours("queue-process", "-q", tmp_path / "ao", "--watch", "true")
    assert "append-only" in one_error_line(append_only)
    no_watch = ours("queue-process", "-q", tmp_path / "ao", "--poll", "5", "true")
    assert no_watch.returncode == 2 and "--poll needs --watch" in no_watch.err
    for bad in ("0", "-1", "nan", "inf", "1e3", "86401"):
        result = ours("queue-process", "-q", tmp_path / "ao", "--watch", "--poll", bad, "true")
        assert result.returncode == 2 and "not a number of seconds" in result.err, bad


# -- remote queues: polling ----------------------------------------------------------


def s3_requests(caplog: pytest.LogCaptureFixture, bucket: str) -> list[str]:
    """The requests moto's server (in this process) logged for ``bucket``: "GET /b?…"."""
    out = []
    for record in caplog.records:
        text = re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage())  # colours by status
        if record.name == "werkzeug" and f" /{bucket}" in text:
            out.append(text.split('"')[1])
    return out


def test_s3_polls_with_one_listing_and_releases_the_lease(
    ours: Runner,
    daemon: Start,
    s3_server: object,
    bucket: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    pytest.importorskip("s3fs")
    caplog.set_level(logging.INFO, logger="werkzeug")
    url = f"s3://{bucket}/spool/q"
    log, started = tmp_path / "log", tmp_path / "started"
    assert ours("queue-init", "-q", url).returncode == 0
    script = (
        f'touch "{started}$FSPL_SEQ"; test "$(cat)" = fast || sleep 1; echo "$FSPL_SEQ" >> "{log}"'
    )
    d = daemon(*shell_args(url, script, "--poll", "0.5"))
    d.wait_for_output("polling every 0.5 s")
    time.sleep(0.5)  # the first round's requests are done
    caplog.clear()
    time.sleep(3)
    idle = s3_requests(caplog, bucket)
    assert 3 <= len(idle) <= 8, idle  # about one per 0.5 s
    for request in idle:
        assert request.startswith(f"GET /{bucket}?list-type=2&prefix=spool/q/jobs/"), request
    write_ours(ours, url, craft(5, b"fast"))  # stalled: 1 is next
    time.sleep(1.5)  # the rounds the new listing causes are done
    caplog.clear()
    time.sleep(3)
    stalled = s3_requests(caplog, bucket)
    # Per poll: the listing, and nextseq read-only (the lease, then the value).
    lease, seq = f"GET /{bucket}/spool/q/nextseq.lease", f"GET /{bucket}/spool/q/nextseq "
    assert 9 <= len(stalled) <= 24, stalled
    for request in stalled:
        assert request.startswith((f"GET /{bucket}?list-type=2", lease, seq)), request
    assert ours("queue-set-next", "-q", url, "5").returncode == 0
    wait_until(lambda: lines(log) == ["5"], "the S3 job after queue-set-next")
    write_ours(ours, url, craft(6, b"slow"))
    wait_until(Path(f"{started}6").exists, "job 6 to start")
    d.signal(signal.SIGTERM)  # mid-job: finish, advance, release the lease
    assert d.wait() == 0
    assert lines(log) == ["5", "6"]
    listing = s3_server.client().list_objects_v2(Bucket=bucket)  # type: ignore[attr-defined]
    keys = [obj["Key"] for obj in listing.get("Contents", [])]
    assert not [k for k in keys if k.endswith("nextseq.lease")], keys
    assert ours("queue-get-next", "-q", url).out.strip() == "7"


def test_sftp_queue_is_polled(
    ours: Runner, daemon: Start, sftp_queue: object, ssh_env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "log"
    url = sftp_queue.url  # type: ignore[attr-defined]
    d = daemon(*watch_args(url, log, "--poll", "0.5"), env=ssh_env)
    d.wait_for_output("polling every 0.5 s")
    for seq in (2, 1):
        assert ours("queue-write", "-q", url, input=craft(seq, b"s"), env=ssh_env).returncode == 0
    wait_until(lambda: lines(log) == ["1 s", "2 s"], "both SFTP jobs")
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


# -- the Python API ------------------------------------------------------------------


def test_api_watch_stops_from_another_thread(ours: Runner, q: Path) -> None:
    seen: list[tuple[int, bytes]] = []
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            spooler.watch(
                str(q), callback=lambda meta, payload: seen.append((meta.seq, payload.read())),
                stop=stop,
            )
        )
    )  # fmt: skip
    thread.start()
    try:
        write_ours(ours, q, craft(1, b"a"))
        write_ours(ours, q, craft(2, b"b"))
        wait_until(lambda: len(seen) == 2, "both callbacks")
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    assert result == [2] and seen == [(1, b"a"), (2, b"b")]
    assert callable(spooler.watch)  # importing the watcher module did not shadow it


def test_without_inotify_local_queues_are_polled(
    monkeypatch: pytest.MonkeyPatch, ours: Runner, q: Path
) -> None:
    def unavailable() -> None:
        raise OSError("inotify is not available: test")

    monkeypatch.setattr(watch_module, "Inotify", unavailable)
    watcher = watch_module.Watcher(exit_when_done=True)
    assert watcher.inotify_error
    seen: list[int] = []
    runner = spooler.api.callback_runner(lambda meta, payload: seen.append(meta.seq))
    config = spooler.ProcessConfig(maxjobs=2)
    watcher.add(watch_module.QueueSpec(str(q), runner, config, poll=0.2), quiet=True)
    thread = threading.Thread(target=watcher.run)
    thread.start()
    try:
        write_ours(ours, q, craft(1))
        write_ours(ours, q, craft(2))
        thread.join(TIMEOUT_S)
    finally:
        watcher.stop()
        thread.join(10)
    assert seen == [1, 2]


def test_plain_queue_process_imports_no_watch_module(q: Path, tmp_path: Path) -> None:
    put_job(q, craft(1))
    probe = (
        "import json, sys\n"
        "from spooler.cli import main\n"
        f"main(['queue-process', '-q', {str(q)!r}, 'true'])\n"
        "main(['--help'])\n"
        "print(json.dumps(sorted(sys.modules)), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60
    )
    loaded = set(json.loads(result.stderr.splitlines()[-1]))
    assert not loaded & {"spooler.watcher", "spooler.serve", "spooler.inotify", "ctypes", "tomllib"}
    assert jobs_in(q) == []  # the probe did process
