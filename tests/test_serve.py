"""fspl serve CONFIG: configuration checks, globs, reload, many queues in one process."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import Runner, craft, jobs_in, make_queue, require_reference
from helpers import one_error_line, wait_until
from watching import (
    Daemon,
    daemon_fixture,  # noqa: F401 - the "daemon" fixture
    lines,
)

Start = Callable[..., Daemon]


def record_command(log: Path) -> str:
    """A TOML command array appending "NAME SEQ PAYLOAD" lines to ``log``."""
    script = f'printf "%s %s %s\\n" "{{name}}" "$FSPL_SEQ" "$(cat)" >> "{log}"'
    return json.dumps(["sh", "-c", script])


def write_config(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "line", "expected"),
    [
        ("[[queue]]\nqueue = 'q'\ncommand = ['true']\ncolour = 'red'\n", 4, 'key "colour"'),
        (
            "[defaults]\non_error = 'Sometimes'\n[[queue]]\nqueue = 'q'\ncommand = ['true']\n",
            2,
            '[defaults], key "on_error": expected one of Retry, Delete, Leave',
        ),
        (
            "[[queue]]\nqueue = 'a'\ncommand = ['true']\n\n[[queue]]\nqueue = 'b'\n",
            5,
            '[[queue]] #2, key "command": missing',
        ),
        (
            "[[queue]]\nqueue = 'a'\ncommand = ['true']\n[[queue]]\nqueue = 'b'\n"
            "command = ['true']\npoll = 0\n",
            7,
            '[[queue]] #2, key "poll"',
        ),
        (
            "[[queue]]\nqueue = 's3://b/q/*'\ncommand = ['true']\n",
            2,
            "wildcards work for local paths only",
        ),
        ("[[queue]]\nqueue = 'a'\ncommand = ['true']\nmaxjobs = 3\n", 4, "not supported by serve"),
        ("[[queue]]\nqueue = 'a'\ncommand = []\n", 3, 'key "command": expected a list'),
        (
            "[[queue]]\nqueue = 'a'\ncommand = 'true'\noptions = { region = [1] }\n",
            4,
            'key "options.region"',
        ),
        ("max_parallel = 0\n[[queue]]\nqueue = 'a'\ncommand = 'x'\n", 1, 'key "max_parallel"'),
        ("[[queue]]\nqueue = 'a'\ncommand = 'x'\n[[queue]]\nqueue = 'a/'\ncommand = 'y'\n", 5,
         "already entry 1"),
        ("[[queue]]\nqueue = 'a'\ncommand = ['x'\n", 3, "TOML syntax: Unclosed array"),
        ("[[queue]]\nqueue = 'a' 'b'\ncommand = 'x'\n", 2, "column 13: TOML syntax"),
        ("", 1, "no queues"),
    ],
    ids=[
        "unknown-key",
        "bad-choice",
        "missing-command",
        "bad-poll",
        "remote-glob",
        "maxjobs",
        "empty-command",
        "bad-option",
        "max-parallel",
        "duplicate",
        "syntax-at-end",
        "syntax",
        "empty",
    ],
)  # fmt: skip
def test_a_bad_config_is_one_error_naming_file_line_and_key(
    ours: Runner, tmp_path: Path, text: str, line: int, expected: str
) -> None:
    config = write_config(tmp_path / "serve.toml", text)
    for args in (["serve", config, "--check"], ["serve", config]):
        result = ours(*args)
        message = one_error_line(result)
        assert str(config) in message and f"line {line}" in message, message
        assert expected in message, message


def test_missing_config_file(ours: Runner, tmp_path: Path) -> None:
    result = ours("serve", tmp_path / "none.toml", "--check")
    assert result.returncode == 1
    assert (
        result.err == f"Error: {tmp_path / 'none.toml'}: No such file or directory (os error 2)\n"
    )


def test_check_prints_the_resolved_queues(ours: Runner, tmp_path: Path) -> None:
    for name in ("host1", "host2"):
        make_queue(tmp_path / "queues" / name)
    (tmp_path / "queues" / ".hidden").mkdir()
    (tmp_path / "queues" / "file").write_text("not a directory")
    config = write_config(
        tmp_path / "serve.toml",
        "max_parallel = 3\n[defaults]\npoll = 30\non_error = 'retry'\n"
        "[[queue]]\nqueue = 'queues/*'\n"
        "command = ['tar', '-xf', '-', '-C', '/backups/{name}']\norder_by = 'Sequence'\n"
        "[[queue]]\nqueue = 's3://bucket/spool/host1'\ncommand = ['/usr/local/bin/apply']\n"
        "options = { region = 'eu-west-1' }\n"
        "[[queue]]\nqueue = 'empty/*'\ncommand = 'true'\n",
    )
    result = ours("serve", config, "--check")
    assert result.returncode == 0, result.err
    out = result.out.splitlines()
    assert out[0] == f"{config}: valid; at most 3 job(s) at once"
    assert out[1] == (
        f"{tmp_path}/queues/host1: tar -xf - -C /backups/host1 "
        "(entry 1; order Sequence, on error Retry, poll 30 s)"
    )
    assert out[2].startswith(f"{tmp_path}/queues/host2: tar -xf - -C /backups/host2 ")
    assert out[3] == (
        "s3://bucket/spool/host1: /usr/local/bin/apply (entry 2; order Sequence, "
        "on error Retry, poll 30 s, options region=eu-west-1)"
    )
    assert out[4] == f"entry 3 ({tmp_path}/empty/*): no matching directory yet"
    assert out[5] == "3 queue(s)"


def test_glob_gains_and_loses_directories(ours: Runner, daemon: Start, tmp_path: Path) -> None:
    require_reference()
    queues, log = tmp_path / "queues", tmp_path / "log"
    make_queue(queues / "a")
    config = write_config(
        tmp_path / "serve.toml",
        f"[defaults]\npoll = 3600\n[[queue]]\nqueue = '{queues}/*'\n"
        f"command = {record_command(log)}\n",
    )
    d = daemon("serve", config)
    d.wait_for_output("Serving 1 queue(s)")
    # A new directory is picked up at once (inotify on the glob's parent, poll 1 h),
    # whether our queue-init or the reference's made it.
    assert ours("queue-init", "-q", queues / "b").returncode == 0
    subprocess.run(["/usr/bin/fspl", "queue-init", "-q", queues / "c"], check=True)
    for name in ("a", "b", "c"):
        assert (
            ours("queue-write", "-q", queues / name, input=craft(1, name.encode())).returncode == 0
        )
    wait_until(lambda: sorted(lines(log)) == ["a 1 a", "b 1 b", "c 1 c"], "a job in each queue")
    subprocess.run(["rm", "-rf", queues / "b"], check=True)
    d.wait_for_output(f"{queues}/b: no longer served")
    assert ours("queue-init", "-q", queues / "b").returncode == 0  # and back again
    assert ours("queue-write", "-q", queues / "b", input=craft(1, b"again")).returncode == 0
    wait_until(lambda: "b 1 again" in lines(log), "the re-created queue's job")
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def test_sighup_rereads_config_and_keeps_it_if_bad(
    ours: Runner, daemon: Start, tmp_path: Path
) -> None:
    q, log1, log2 = make_queue(tmp_path / "q"), tmp_path / "log1", tmp_path / "log2"
    config = tmp_path / "serve.toml"
    body = f"[[queue]]\nqueue = '{q}'\ncommand = {{}}\n"
    write_config(config, body.format(record_command(log1)))
    d = daemon("serve", config)
    d.wait_for_output("Serving 1 queue(s)")
    assert ours("queue-write", "-q", q, input=craft(1, b"one")).returncode == 0
    wait_until(lambda: lines(log1) == ["q 1 one"], "job 1 with the first command")
    write_config(config, body.format(record_command(log2)))
    d.signal(signal.SIGHUP)
    d.wait_for_output("Reloaded")
    assert ours("queue-write", "-q", q, input=craft(2, b"two")).returncode == 0
    wait_until(lambda: lines(log2) == ["q 2 two"], "job 2 with the new command")
    write_config(config, body.format("'unterminated"))
    d.signal(signal.SIGHUP)
    d.wait_for_output("Not reloaded, still serving the previous configuration")
    assert ours("queue-write", "-q", q, input=craft(3, b"three")).returncode == 0
    wait_until(lambda: lines(log2) == ["q 2 two", "q 3 three"], "job 3, still the new command")
    assert lines(log1) == ["q 1 one"]
    d.signal(signal.SIGINT)
    assert d.wait() == 130


def test_queues_run_concurrently_each_in_order(ours: Runner, daemon: Start, tmp_path: Path) -> None:
    """Each queue's job waits for the other queue's job to start: only concurrency passes."""
    marks, log = tmp_path / "marks", tmp_path / "log"
    marks.mkdir()
    for name in ("a", "b"):
        make_queue(tmp_path / name)
    partner = f'"{marks}/$OTHER$FSPL_SEQ"'
    script = (
        f'touch "{marks}/{{name}}$FSPL_SEQ"; i=0; '
        f"while [ ! -e {partner} ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; "
        f'echo "{{name}} $FSPL_SEQ" >> "{log}"; [ -e {partner} ]'
    )
    config = write_config(
        tmp_path / "serve.toml",
        "max_parallel = 2\n"
        + "".join(
            f"[[queue]]\nqueue = '{tmp_path / name}'\n"
            f"command = {json.dumps(['env', f'OTHER={other}', 'sh', '-c', script])}\n"
            for name, other in (("a", "b"), ("b", "a"))
        ),
    )
    d = daemon("serve", config)
    for seq in (3, 1, 2):  # out of order, into both queues
        for name in ("a", "b"):
            data = craft(seq, b"")
            assert ours("queue-write", "-q", tmp_path / name, input=data).returncode == 0
    wait_until(lambda: len(lines(log)) == 6, "three jobs in each queue")
    for name in ("a", "b"):
        assert [line for line in lines(log) if line.startswith(name)] == [
            f"{name} 1", f"{name} 2", f"{name} 3"
        ]  # fmt: skip
        wait_until(lambda n=name: jobs_in(tmp_path / n) == [], f"{name}'s jobs deleted")
    assert "Aborting" not in d.output  # every job saw its partner running


def test_a_broken_queue_is_retried_and_never_stops_the_others(
    ours: Runner, daemon: Start, tmp_path: Path
) -> None:
    good, later, log = make_queue(tmp_path / "good"), tmp_path / "later", tmp_path / "log"
    config = write_config(
        tmp_path / "serve.toml",
        "[defaults]\npoll = 1\n"
        f"[[queue]]\nqueue = '{later}'\ncommand = {record_command(log)}\n"
        f"[[queue]]\nqueue = '{good}'\ncommand = {record_command(log)}\non_error = 'Delete'\n",
    )
    d = daemon("serve", config)
    d.wait_for_output(f"ERROR spooler.watch: {later}: ")
    assert ours("queue-write", "-q", good, input=craft(1, b"fine")).returncode == 0
    assert ours("queue-write", "-q", good, input=craft(2, kind="Fail")).returncode == 0
    wait_until(lambda: lines(log) == ["good 1 fine"], "the good queue's job")
    # The engine's own line about the failed job names its queue too.
    d.wait_for_output(f"WARN spooler.queue: {good}: Job 2 failed")
    make_queue(later)
    assert ours("queue-write", "-q", later, input=craft(1, b"late")).returncode == 0
    wait_until(lambda: "later 1 late" in lines(log), "the repaired queue's job")
    d.wait_for_output(f"{later}: working again")
    assert d.output.count(f"ERROR spooler.watch: {later}: ") == 1  # not one per retry


def test_remote_queue_with_transport_options(
    ours: Runner, daemon: Start, bucket: str, tmp_path: Path
) -> None:
    pytest.importorskip("s3fs")
    url, log = f"s3://{bucket}/spool/host1", tmp_path / "log"
    assert ours("queue-init", "-q", url).returncode == 0
    config = write_config(
        tmp_path / "serve.toml",
        f"[[queue]]\nqueue = '{url}'\ncommand = {record_command(log)}\npoll = 0.5\n"
        "options = { lease_ttl = 30 }\n",
    )
    d = daemon("serve", config)
    d.wait_for_output("Serving 1 queue(s)")
    assert ours("queue-write", "-q", url, input=craft(1, b"s3")).returncode == 0
    wait_until(lambda: lines(log) == ["host1 1 s3"], "the S3 job")
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


def test_a_thousand_queues_smoke(ours: Runner, daemon: Start, tmp_path: Path) -> None:
    """CI-sized scale check: 1,000 local queues, jobs in some, memory bounded."""
    queues, log = tmp_path / "queues", tmp_path / "log"
    for i in range(1000):
        make_queue(queues / f"h{i:04d}")
    config = write_config(
        tmp_path / "serve.toml",
        f"[[queue]]\nqueue = '{queues}/*'\ncommand = {record_command(log)}\n",
    )
    d = daemon("serve", config)
    d.wait_for_output("Serving 1000 queue(s)")
    picked = [f"h{i:04d}" for i in range(0, 1000, 97)]
    for name in picked:
        assert ours("queue-write", "-q", queues / name, input=craft(1, b"x")).returncode == 0
    wait_until(lambda: len(lines(log)) == len(picked), "a job in each picked queue")
    assert sorted(lines(log)) == [f"{name} 1 x" for name in picked]
    status = Path(f"/proc/{d.proc.pid}/status").read_text()
    peak_kib = int(
        next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]
    )
    assert peak_kib < 80 * 1024, f"peak RSS {peak_kib} KiB"
    d.signal(signal.SIGTERM)
    assert d.wait() == 0


EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "systemd"


def test_example_serve_config_checks(ours: Runner) -> None:
    result = ours("serve", EXAMPLES / "serve.toml", "--check")
    assert result.returncode == 0, result.err
    assert "s3://backup-bucket/spool/laptop: /usr/local/bin/apply-backup laptop" in result.out


def test_systemd_units_verify(tmp_path: Path) -> None:
    """systemd-analyze verify is clean for every example unit (instances named)."""
    analyze = shutil.which("systemd-analyze")
    fspl = Path(sys.executable).with_name("fspl")
    if analyze is None or not fspl.exists():
        pytest.skip("needs systemd-analyze and an installed fspl script")
    units = []
    for unit in sorted(EXAMPLES.glob("fspl-*")):
        text = unit.read_text().replace("/usr/local/bin/fspl", str(fspl))
        text = text.replace("/etc/fspl/serve.toml", str(EXAMPLES / "serve.toml"))
        name = unit.name.replace("@.", "@srv-queues-host1.")
        (tmp_path / unit.name).write_text(text)
        (tmp_path / name).write_text(text)
        units.append(f"./{name}")
    assert len(units) == 4
    result = subprocess.run(
        [analyze, "verify", "--man=no", *units], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )
