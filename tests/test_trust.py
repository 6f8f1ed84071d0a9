"""Moves and remote queues that keep their promises: no job lost, none run twice, no hang.

Against real storage: local directories, moto's S3 server, the test sshd and
the real rclone binary.  Clock skew between processors is real too: the
second processor runs under libfaketime, two minutes ahead or behind.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Runner, jobs_in
from fixtures_sftp import SFTPQueue, SSHServer, upload_in_progress
from helpers import one_error_line, poll_until, require

from spooler.api import open_queue
from spooler.testing import build_packet

FSPL = [sys.executable, "-m", "spooler"]


def _local_queue(ours: Runner, path: Path, *seqs: int, payload: bytes = b"") -> Path:
    assert ours("queue-init", "-q", path).returncode == 0
    for seq in seqs:
        assert ours("queue-write", "-q", path, input=build_packet(seq, payload)).returncode == 0
    return path


def _digests(queue: Path) -> list[str]:
    return sorted(
        hashlib.sha256((queue / "jobs" / n).read_bytes()).hexdigest() for n in jobs_in(queue)
    )


# -- queue-move never loses a job ----------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "slash", "symlink", "file-url"])
def test_move_onto_itself_is_refused(ours: Runner, tmp_path: Path, spelling: str) -> None:
    queue = _local_queue(ours, tmp_path / "q", 1, 2)
    (tmp_path / "link").symlink_to(queue)
    dst = {
        "same": str(queue),
        "slash": f"{queue}/",
        "symlink": str(tmp_path / "link"),
        "file-url": f"file://{queue}",
    }[spelling]
    before = _digests(queue)
    moved = ours("queue-move", queue, dst)
    assert moved.returncode == 1
    assert "same queue" in moved.err and moved.err.count("Error:") == 1
    assert _digests(queue) == before


def test_move_sftp_url_of_the_same_directory_is_refused(
    ours: Runner, sftp_queue: SFTPQueue, ssh_env: dict[str, str]
) -> None:
    ours("queue-write", "-q", sftp_queue.url, input=build_packet(1), env=ssh_env)
    moved = ours("queue-move", sftp_queue.local, sftp_queue.url, env=ssh_env)
    assert moved.returncode == 1 and "same queue" in moved.err
    assert len(jobs_in(sftp_queue.local)) == 1


def test_move_s3_onto_itself_is_refused(ours: Runner, bucket: str) -> None:
    url = f"s3://{bucket}/q"
    ours("queue-init", "-q", url)
    ours("queue-write", "-q", url, input=build_packet(1))
    moved = ours("queue-move", url, f"s3://{bucket}/q/")
    assert moved.returncode == 1 and "same queue" in moved.err
    assert len(open_queue(url).job_names()) == 1


def test_same_name_other_content_is_delivered_under_a_new_name(
    ours: Runner, tmp_path: Path
) -> None:
    src = _local_queue(ours, tmp_path / "src", 1)
    dst = _local_queue(ours, tmp_path / "dst", 9)
    (name,) = jobs_in(src)
    (dst / "jobs" / jobs_in(dst)[0]).rename(dst / "jobs" / name)  # a different job, same name
    theirs = (dst / "jobs" / name).read_bytes()
    ours_bytes = (src / "jobs" / name).read_bytes()
    moved = ours("queue-move", src, dst)
    assert moved.returncode == 0, moved.err
    assert "already holds a different job" in moved.err
    assert jobs_in(src) == []
    assert (dst / "jobs" / name).read_bytes() == theirs  # untouched
    assert sorted(_digests(dst)) == sorted(
        hashlib.sha256(b).hexdigest() for b in (theirs, ours_bytes)
    )


def test_identical_copy_in_destination_finishes_the_move(ours: Runner, tmp_path: Path) -> None:
    src = _local_queue(ours, tmp_path / "src", 1, 2)
    dst = _local_queue(ours, tmp_path / "dst")
    assert ours("queue-move", "--keep", src, dst).returncode == 0  # a copy, as a crash leaves
    moved = ours("queue-move", src, dst)
    assert moved.returncode == 0 and "finishing its move" in moved.err
    assert jobs_in(src) == [] and len(jobs_in(dst)) == 2


def test_keep_says_it_copied(ours: Runner, tmp_path: Path) -> None:
    src = _local_queue(ours, tmp_path / "src", 1)
    dst = _local_queue(ours, tmp_path / "dst")
    copied = ours("queue-move", "--keep", src, dst)
    assert copied.returncode == 0 and "Copied 1 job(s)" in copied.err
    assert jobs_in(src) == jobs_in(dst)


def test_leftover_temp_of_a_killed_move_never_blocks_a_rerun(ours: Runner, tmp_path: Path) -> None:
    src = _local_queue(ours, tmp_path / "src", 1)
    dst = _local_queue(ours, tmp_path / "dst")
    (name,) = jobs_in(src)
    (dst / "jobs" / f"tmp-{name}.tmp").write_bytes(b"half a job")  # the old fixed temp name
    (dst / "jobs" / f"tmp-{name}.0badc0de.tmp").write_bytes(b"half a job")
    os.utime(dst / "jobs" / f"tmp-{name}.0badc0de.tmp", (0, 0))  # left long ago
    assert ours("queue-move", src, dst).returncode == 0
    assert jobs_in(dst) == [name]
    assert not (dst / "jobs" / f"tmp-{name}.0badc0de.tmp").exists()  # stale: cleaned


def test_redelivered_processed_job_never_runs_again_in_sequence_order(
    ours: Runner, tmp_path: Path
) -> None:
    """The documented window: killed after DST got the job and before SRC
    lost it, and DST processed it meanwhile; the resumed move delivers it
    again, and sequence processing never runs it (its seq is below next)."""
    src = _local_queue(ours, tmp_path / "src", 1)
    dst = _local_queue(ours, tmp_path / "dst")
    runs = tmp_path / "runs"
    ours("queue-move", "--keep", src, dst)  # the move died before deleting the source
    ours("queue-process", "-q", dst, "sh", "--", "-c", f"echo ran >> {runs}")
    assert ours("queue-move", src, dst).returncode == 0
    ours("queue-process", "-q", dst, "sh", "--", "-c", f"echo ran >> {runs}")
    assert runs.read_text() == "ran\n"


def test_movers_killed_at_random_points_lose_and_duplicate_nothing(
    ours: Runner, tmp_path: Path
) -> None:
    rng = random.Random(1123)
    payload = os.urandom(4 * 1024 * 1024)
    src = _local_queue(ours, tmp_path / "src", *range(1, 7), payload=payload)
    dst = _local_queue(ours, tmp_path / "dst")
    expected = _digests(src)
    kills = 0
    for _ in range(40):
        if not jobs_in(src):
            break
        mover = subprocess.Popen([*FSPL, "queue-move", str(src), str(dst)], stderr=subprocess.PIPE)
        # The first mover is killed during its start-up, so at least one kill
        # happens however fast the machine; later ones at random points.
        time.sleep(0.02 if kills == 0 else rng.uniform(0.05, 0.6))
        if mover.poll() is None:
            mover.kill()
            kills += 1
        mover.wait()
    final = ours("queue-move", src, dst)
    assert final.returncode == 0, final.err
    assert kills > 0
    assert jobs_in(src) == []
    assert _digests(dst) == expected  # each job exactly once, byte for byte


# -- diagnostics are read-only; a missing queue is a missing queue --------------------


def test_status_leaves_an_expired_s3_lease_alone(ours: Runner, bucket: str) -> None:
    url = f"s3://{bucket}/q"
    ours("queue-init", "-q", url)
    store = open_queue(url).transport.lock_store
    body = b'{"owner": "x", "host": "elsewhere", "pid": 1, "expires": 0}'
    store.create(body)
    before = store.read()
    time.sleep(1)
    for command in ("queue-status", "queue-ls"):
        assert ours(command, "-q", url).returncode == 0
    after = store.read()
    assert before is not None and after is not None and before.body == body
    assert (after.body, after.version) == (body, before.version)  # untouched
    assert "locked: elsewhere (pid 1)" in ours("queue-status", "-q", url).out


def test_status_of_a_held_local_queue_reads_next(ours: Runner, tmp_path: Path) -> None:
    queue = _local_queue(ours, tmp_path / "q", 1)
    with open_queue(str(queue)).transport.lock_sequence():
        status = ours("queue-status", "-q", queue)
    assert status.returncode == 0 and "next: 1 (locked" in status.out


def test_write_to_a_missing_queue_fails_everywhere(
    ours: Runner,
    tmp_path: Path,
    bucket: str,
    rclone_local: dict[str, str],
    sshd: SSHServer,
    ssh_env: dict[str, str],
) -> None:
    for location in (
        str(tmp_path / "nope"),
        f"s3://{bucket}/nope",
        f"rclone:localr:{tmp_path}/nope-rclone",
        sshd.url(str(tmp_path / "nope-sftp")),
    ):
        for args, data in ((["queue-write"], build_packet(1)), (["queue-ls"], b"")):
            result = ours(*args, "-q", location, input=data, env=ssh_env)
            line = one_error_line(result)
            assert f'no queue at "{location}"' in line and "fspl queue-init -q" in line
        processing = ours("queue-process", "-q", location, "true", env=ssh_env)
        assert processing.returncode == 1 and "no queue at" in processing.err
        assert "append-only" not in processing.err
    assert not (tmp_path / "nope-rclone").exists() and not (tmp_path / "nope-sftp").exists()
    assert not open_queue(f"s3://{bucket}/nope").transport.fs.ls(f"{bucket}/", detail=False)


def test_append_only_only_when_the_queue_exists(ours: Runner, bucket: str) -> None:
    url = f"s3://{bucket}/ao"
    ours("queue-init", "--append-only", "-q", url)
    result = ours("queue-process", "-q", url, "true")
    assert result.returncode == 1 and "append-only" in result.err


# -- SFTP that survives real payloads --------------------------------------------------


def test_sftp_payload_longer_than_lock_refreshes(
    ours: Runner, sftp_queue: SFTPQueue, ssh_env: dict[str, str], tmp_path: Path
) -> None:
    payload = os.urandom(48 * 1024 * 1024)
    packet = tmp_path / "packet"
    packet.write_bytes(build_packet(1, payload))
    with open(packet, "rb") as fh:
        wrote = subprocess.run(
            [*FSPL, "queue-write", "-q", sftp_queue.url], stdin=fh, env={**os.environ, **ssh_env}
        )
    assert wrote.returncode == 0
    out = tmp_path / "out"
    # lock_ttl 1.5 s: a renewal every 0.5 s while the payload streams slowly.
    slow = (
        "import sys, time\n"
        f"with open({str(out)!r}, 'wb') as out:\n"
        "    while chunk := sys.stdin.buffer.read(4 << 20):\n"
        "        out.write(chunk)\n"
        "        time.sleep(0.2)\n"
    )
    done = ours(
        "queue-process",
        "-q",
        sftp_queue.url,
        "-o",
        "lock_ttl=1.5",
        sys.executable,
        "--",
        "-c",
        slow,
        env=ssh_env,
        timeout=180,
    )
    assert done.returncode == 0, done.err
    assert out.read_bytes() == payload
    assert jobs_in(sftp_queue.local) == []


def test_ctrl_c_during_sftp_upload_exits_130_and_cleans_up(
    sftp_queue: SFTPQueue, ssh_env: dict[str, str]
) -> None:
    writer = upload_in_progress(sftp_queue, ssh_env, 8 * 1024 * 1024)
    writer.send_signal(signal.SIGINT)
    _, err = writer.communicate(timeout=30)
    assert writer.returncode == 130, err
    assert b"internal error" not in err and b"Traceback" not in err
    assert os.listdir(sftp_queue.local / "jobs") == []


def test_rclone_processors_started_together_get_the_lock_message(
    ours: Runner, rclone_local: dict[str, str], tmp_path: Path
) -> None:
    url = f"rclone:localr:{tmp_path}/q"
    ours("queue-init", "-q", url)
    ours("queue-write", "-q", url, input=build_packet(1))
    runs = tmp_path / "runs"
    command = ["queue-process", "-q", url, "sh", "--", "-c", f"echo ran >> {runs}; sleep 2"]
    procs = [
        subprocess.Popen([*FSPL, *command], stderr=subprocess.PIPE, env=os.environ)
        for _ in range(2)
    ]
    results = [(p.wait(120), p.stderr.read() if p.stderr else b"") for p in procs]
    assert sorted(code for code, _ in results) == [0, 1], results
    (err,) = [err for code, err in results if code == 1]
    assert b"being processed" in err or b"at the same time" in err, err
    assert b"hash differ" not in err
    assert runs.read_text() == "ran\n"


# -- clocks ------------------------------------------------------------------------------


def _held_in_thread(
    url: str, options: dict[str, str], release: threading.Event
) -> threading.Thread:
    started = threading.Event()

    def hold() -> None:
        with open_queue(url, options=options).transport.lock_sequence():
            started.set()
            release.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    assert started.wait(30)
    return thread


@pytest.mark.parametrize("skew", ["+120s", "-120s"])
def test_skewed_processor_never_breaks_a_live_lock(
    ours: Runner,
    bucket: str,
    sftp_queue: SFTPQueue,
    ssh_env: dict[str, str],
    skew: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in ssh_env.items():
        monkeypatch.setenv(key, value)  # the in-process holder reaches sshd too
    require(shutil.which("faketime") is not None, "faketime", "apt-get install faketime")
    s3 = f"s3://{bucket}/q"
    ours("queue-init", "-q", s3)
    ttl = 2.0
    for url, option in ((s3, "lease_ttl"), (sftp_queue.url, "lock_ttl")):
        ours("queue-write", "-q", url, input=build_packet(1), env=ssh_env)
        release = threading.Event()
        holder = _held_in_thread(url, {option: str(ttl)}, release)
        try:
            # Back to back over more than a TTL of the holder (each run is
            # a fresh process: what it must not do is break a live lock on
            # sight, or after watching it for a TTL measured on a skewed clock).
            started, runs = time.monotonic(), 0
            while runs < 2 or time.monotonic() - started < 1.5 * ttl:
                runs += 1
                skewed = subprocess.run(
                    ["faketime", "-f", skew, *FSPL, "queue-process", "-q", url, "true"],
                    capture_output=True,
                    env={**os.environ, **ssh_env, "DONT_FAKE_MONOTONIC": "1"},
                    timeout=60,
                )
                assert skewed.returncode == 1, skewed.stderr
                assert b"being processed" in skewed.stderr
        finally:
            release.set()
            holder.join()
        ran = ours("queue-process", "-q", url, "true", env=ssh_env)
        assert ran.returncode == 0, ran.err


@pytest.mark.parametrize("where", ["s3", "sftp"])
def test_remote_processors_killed_at_random_points_lose_nothing(
    ours: Runner,
    bucket: str,
    sftp_queue: SFTPQueue,
    ssh_env: dict[str, str],
    tmp_path: Path,
    where: str,
) -> None:
    url = f"s3://{bucket}/q" if where == "s3" else sftp_queue.url
    if where == "s3":
        ours("queue-init", "-q", url)
    for seq in range(1, 6):
        ours("queue-write", "-q", url, input=build_packet(seq, b"%d\n" % seq), env=ssh_env)
    log = tmp_path / "log"
    log.touch()
    command = [*FSPL, "queue-process", "-q", url, "sh", "--", "-c", f"cat >> {log}; sleep 0.1"]
    rng = random.Random(7)
    env = {**os.environ, **ssh_env}
    kills = 0
    for _ in range(3):  # three processors killed while at work; a fourth finishes
        ran = log.stat().st_size
        proc = subprocess.Popen(command, env=env, start_new_session=True, stderr=subprocess.PIPE)
        # Killed at a random point once it is at work (it has run a job while
        # holding the lock): in the next job, its deletion or the sequence
        # write, not while the interpreter is still starting.
        poll_until(lambda p=proc, r=ran: p.poll() is not None or log.stat().st_size > r, 60)
        time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # processor and command die together
            kills += 1
        proc.wait()
    assert kills > 0, "the harness must actually kill processors"
    final = ours("queue-process", "-q", url, "sh", "--", "-c", f"cat >> {log}", env=ssh_env)
    assert final.returncode == 0, final.err
    assert ours("queue-get-next", "-q", url, env=ssh_env).out == "6\n"
    runs = [int(line) for line in log.read_text().split()]
    collapsed = [seq for i, seq in enumerate(runs) if i == 0 or runs[i - 1] != seq]
    assert collapsed == list(range(1, 6))  # in order, none lost; repeats only in the window
