#!/usr/bin/env python3
"""Crash torture: SIGKILL fspl at random moments, then prove nothing was lost.

Three harnesses, each usable from pytest (small numbers) and as a script:

    python tests/reliability/torture.py --runs 1000          # all three
    python tests/reliability/torture.py write --runs 500

* ``write``: ``queue-write`` of packets whose payload checksum travels in a
  param is killed mid-copy; afterwards every file under an ``fspl-*.fspl``
  name must parse and carry its complete payload (no partial job is ever
  visible), and every write that reported success must be there.
* ``prepare``: ``prepare -s SEQ -i FILE`` is killed at random; the sequence
  file must always hold a valid number, and numbers handed out to completed
  packets must never repeat.
* ``process``: a processor and its command are killed together (a power
  cut: the whole process group) at random moments while running jobs that
  log "start N" and "end N"; it is restarted until the queue is empty.  No
  job may be lost or run out of order; a job may run again only if it was
  interrupted, or finished just before the kill and before ``nextseq`` was
  advanced (the documented window).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from spooler.api import header  # noqa: E402 - the script also runs from a checkout
from spooler.errors import HeaderError  # noqa: E402
from spooler.packet import Command, parse_header  # noqa: E402
from spooler.seqfile import parse_seq  # noqa: E402

FSPL = [sys.executable, "-m", "spooler"]


def _kill_later(proc: subprocess.Popen[bytes], delay: float, group: bool = False) -> bool:
    """SIGKILL after ``delay`` unless it finished; True if it was killed."""
    try:
        proc.wait(delay)
        return False
    except subprocess.TimeoutExpired:
        if group:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
        proc.wait()
        return True


def check_queue_files(jobs: Path) -> int:
    """Every job-named file parses and its payload matches the sha256 param."""
    count = 0
    for name in os.listdir(jobs):
        if not (name.startswith("fspl-") and name.endswith(".fspl")):
            continue
        data = (jobs / name).read_bytes()
        head = parse_header(data)  # raises on a partial header
        assert isinstance(head.meta.cmd, Command)
        digest = head.meta.cmd.params[0].decode()
        assert hashlib.sha256(data[head.length :]).hexdigest() == digest, f"partial job {name}"
        count += 1
    return count


def torture_write(work: Path, runs: int, rng: random.Random) -> dict[str, int]:
    queue = work / "wq"
    subprocess.run([*FSPL, "queue-init", "-q", queue], check=True)
    kills = completed = 0
    for run in range(runs):
        payload = rng.randbytes(rng.randint(0, 3 << 20))
        digest = hashlib.sha256(payload).hexdigest().encode()
        packet = work / "packet"
        packet.write_bytes(header(Command((digest,), ()), seq=run + 1) + payload)
        with open(packet, "rb") as stdin:
            proc = subprocess.Popen(
                [*FSPL, "queue-write", "-q", queue], stdin=stdin, stderr=subprocess.DEVNULL
            )
            if _kill_later(proc, rng.uniform(0, 0.25)):
                kills += 1
            elif proc.returncode == 0:
                completed += 1
    present = check_queue_files(queue / "jobs")
    assert present >= completed, f"{completed} writes succeeded but only {present} jobs exist"
    return {
        "runs": runs,
        "kills": kills,
        "completed": completed,
        "jobs": present,
        "partial": 0,
        "lost": completed - min(present, completed),
    }


def torture_prepare(work: Path, runs: int, rng: random.Random) -> dict[str, int]:
    seq, payload = work / "sender.seq", work / "payload"
    payload.write_bytes(rng.randbytes(2 << 20))
    kills, seen = 0, Counter[int]()
    for _ in range(runs):
        out = work / "out.fspl"
        with open(out, "wb") as stdout:
            proc = subprocess.Popen(
                [*FSPL, "prepare", "-s", seq, "-i", payload],
                stdout=stdout,
                stderr=subprocess.DEVNULL,
            )
            killed = _kill_later(proc, rng.uniform(0, 0.2))
        kills += killed
        if seq.exists():
            parse_seq(seq.read_text(), str(seq))  # always a valid number
        if not killed and proc.returncode == 0:
            seen[parse_header(out.read_bytes()).meta.seq] += 1
    repeats = sum(n - 1 for n in seen.values() if n > 1)
    assert repeats == 0, f"sequence numbers handed out twice: {seen.most_common(3)}"
    return {"runs": runs, "kills": kills, "packets": sum(seen.values()), "repeated_seqs": 0}


JOB = (
    'echo "start $FSPL_SEQ" >> "$LOG"; sleep "$NAP"; cat > /dev/null; '
    'echo "end $FSPL_SEQ" >> "$LOG"'
)


def torture_process(work: Path, jobs: int, rng: random.Random) -> dict[str, int]:
    queue, log = work / "pq", work / "runs.log"
    subprocess.run([*FSPL, "queue-init", "-q", queue], check=True)
    for seq in range(jobs, 0, -1):  # delivered in reverse order
        data = header(Command((), ()), seq=seq, ctime=(1_700_000_000, seq)) + b"x" * 1000
        (queue / "jobs" / f"fspl-{seq:06d}.fspl").write_bytes(data)
    kills = restarts = 0
    env = {**os.environ, "LOG": str(log)}
    nextseq = queue / "nextseq"
    while parse_seq(nextseq.read_text(), "nextseq") <= jobs:
        restarts += 1
        env["NAP"] = f"{rng.uniform(0.01, 0.05):.3f}"
        proc = subprocess.Popen(
            [*FSPL, "queue-process", "-q", queue, "sh", "--", "-c", JOB],
            env=env,
            start_new_session=True,
            stderr=subprocess.DEVNULL,
        )
        kills += _kill_later(proc, rng.uniform(0.05, 0.3), group=True)
        assert restarts < jobs * 50, "no progress"
    events = [line.split() for line in log.read_text().splitlines()]
    starts = [int(n) for kind, n in events if kind == "start"]
    ends = Counter(int(n) for kind, n in events if kind == "end")
    collapsed = [s for i, s in enumerate(starts) if i == 0 or starts[i - 1] != s]
    assert collapsed == list(range(1, jobs + 1)), "a job was skipped or ran out of order"
    assert all(ends[s] >= 1 for s in range(1, jobs + 1)), "a job never completed"
    double = sum(n - 1 for n in ends.values())
    interrupted = len(starts) - sum(ends.values())
    # A kill between the nextseq write and the unlink leaves a done job's file
    # behind: below nextseq it is never run again (queue-status calls it stale).
    stale = [n for n in os.listdir(queue / "jobs") if n.startswith("fspl-")]
    for name in stale:
        done = parse_header((queue / "jobs" / name).read_bytes()).meta.seq
        assert ends[done] >= 1, f"{name} left behind but never completed"
    return {
        "jobs": jobs,
        "kills": kills,
        "restarts": restarts,
        "runs": len(starts),
        "interrupted_runs": interrupted,
        "completed_twice": double,
        "stale_files_left": len(stale),
        "lost": 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("which", nargs="*", default=["write", "prepare", "process"])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--seed", type=int, default=int(time.time()))
    args = parser.parse_args()
    rng = random.Random(args.seed)
    results = {"seed": args.seed}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.which:
            work = Path(tmp, name)
            work.mkdir()
            func = {"write": torture_write, "prepare": torture_prepare, "process": torture_process}[
                name
            ]
            started = time.monotonic()
            try:
                results[name] = func(work, args.runs, rng)
            except (AssertionError, HeaderError) as exc:
                print(json.dumps(results, indent=2))
                print(f"FAILED {name}: {exc}", file=sys.stderr)
                return 1
            results[name]["seconds"] = round(time.monotonic() - started, 1)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
