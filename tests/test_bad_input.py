"""Bad input on every transport: one ``Error:`` line, the right status, nothing written.

Each row is a mistake a user makes (or an outside failure: a dead
endpoint, a port that is not SSH) and the words its one line must hold.
``{q}`` is a fresh queue of the row's transport, ``{dead}`` an unused
loopback port (in the arguments, the environment and the words).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from helpers import one_error_line

from spooler.testing import free_port


class Case(NamedTuple):
    args: tuple[str, ...]
    status: int
    needle: str
    stdin: bytes = b""
    env: tuple[tuple[str, str], ...] = ()


LOCAL: dict[str, Case] = {
    "process-junk-job": Case(("queue-info", "-q", "{q}", "-j", "1"), 1, "1"),
    "write-no-queue": Case(("queue-write", "-q", "{q}/nope"), 1, "queue-init"),
    "ls-no-queue": Case(("queue-ls", "-q", "{q}/nope"), 1, "queue-init"),
    "status-no-queue": Case(("queue-status", "-q", "{q}/nope"), 1, "queue-init"),
    "info-no-job": Case(("queue-info", "-q", "{q}", "-j", "7"), 1, "7"),
    "info-bad-id": Case(("queue-info", "-q", "{q}", "-j", "abc"), 2, "ID"),
    "payload-bad-id": Case(("queue-payload", "-q", "{q}", "-j", "-1"), 2, ""),
    "set-next-bad": Case(("queue-set-next", "-q", "{q}", "x"), 2, ""),
    "local-option": Case(("queue-ls", "-q", "{q}", "-o", "a=1"), 1, "no options"),
    "option-no-equals": Case(("queue-ls", "-q", "{q}", "-o", "a"), 2, "KEY=VALUE"),
    "file-url-host": Case(("queue-ls", "-q", "file://example/q"), 1, "host"),
    "unknown-scheme": Case(("queue-ls", "-q", "nosuch+x://h/q"), 1, "nosuch+x"),
    "empty-location": Case(("queue-ls", "-q", ""), 1, "Empty"),
    "move-empty-target": Case(("queue-move", "{q}", ""), 1, "Empty"),
    "move-empty-source": Case(("queue-move", "", "{q}"), 1, "Empty"),
    "process-empty": Case(("queue-process", "-q", "", "true"), 1, "Empty"),
    "move-sftp-no-host": Case(("queue-move", "{q}", "sftp://"), 2, "no host"),
    "move-rclone-bare": Case(("queue-move", "{q}", "rclone:"), 2, "rclone:REMOTE:PATH"),
    "status-sftp-no-host": Case(("queue-status", "-q", "sftp://"), 2, "no host"),
    "bad-log-level": Case(("-l", "loud", "queue-ls", "-q", "{q}"), 2, "loud"),
    "unknown-command": Case(("queue-lss", "-q", "{q}"), 2, "queue-lss"),
    "process-bad-order": Case(("queue-process", "-q", "{q}", "--order-by", "x", "true"), 2, ""),
    "process-bad-on-error": Case(("queue-process", "-q", "{q}", "--on-error", "x", "true"), 2, ""),
    "init-exists": Case(("queue-init", "-q", "{q}"), 1, "exists"),
    "move-no-target": Case(("queue-move", "{q}", "{q}/nope"), 1, "queue-init -q {q}/nope"),
    "prepare-bad-seqfile": Case(("prepare", "-s", "{q}/no/dir/seq", "-i", "-"), 1, "no/dir"),
    "stdin-info-junk": Case(("stdin-info",), 1, "filespooler", b"x" * 40),
}
S3: dict[str, Case] = {
    "s3-one-slash": Case(("queue-ls", "-q", "s3:/b/q"), 2, "s3://BUCKET/PREFIX"),
    "s3-move-bare": Case(("queue-move", "s3:", ""), 2, "s3://BUCKET/PREFIX"),
    "s3-move-to-bare": Case(("queue-move", "{q}", "s3:"), 2, "s3://BUCKET/PREFIX"),
    "s3-no-bucket-write": Case(("queue-write", "-q", "s3://"), 2, "no bucket"),
    "s3-bad-bucket": Case(("queue-ls", "-q", "s3://Bad_Bucket/q"), 2, "not a valid bucket"),
    "s3-bogus-option": Case(("queue-ls", "-q", "{q}", "-o", "bogus=1"), 2, "known: anon"),
    "s3-ttl-text": Case(("queue-process", "-q", "{q}", "-o", "lease_ttl=abc", "true"), 2, "sec"),
    "s3-ttl-negative": Case(("queue-process", "-q", "{q}", "-o", "lease_ttl=-5", "true"), 2, "1"),
    "s3-parallel-zero": Case(("queue-ls", "-q", "{q}", "-o", "read_parallel=0"), 2, "1"),
    "s3-anon-word": Case(("queue-ls", "-q", "{q}", "-o", "anon=maybe"), 2, "true or false"),
    "s3-config-not-json": Case(("queue-ls", "-q", "{q}", "-o", "config_kwargs={x"), 2, "JSON"),
    "s3-client-list": Case(("queue-ls", "-q", "{q}", "-o", "client_kwargs=[1]"), 2, "JSON"),
    "s3-extra-not-json": Case(("queue-ls", "-q", "{q}", "-o", "s3_additional_kwargs=1"), 2, "JSON"),
    "s3-no-queue": Case(("queue-write", "-q", "{q}-nope"), 1, "queue-init"),
    "s3-no-bucket": Case(("queue-ls", "-q", "s3://fspl-no-such-bucket-x/q"), 1, "bucket"),
    "s3-profile": Case(("queue-ls", "-q", "{q}"), 1, "nosuch", env=(("AWS_PROFILE", "nosuch"),)),
    "s3-endpoint-down": Case(
        ("queue-ls", "-q", "{q}"),
        1,
        "endpoint",
        env=(("AWS_ENDPOINT_URL", "http://127.0.0.1:{dead}"),),
    ),
    "s3-write-endpoint-down": Case(
        ("queue-write", "-q", "{q}"),
        1,
        "endpoint",
        env=(("AWS_ENDPOINT_URL", "http://127.0.0.1:{dead}"),),
    ),
    "s3-move-no-target": Case(("queue-move", "{q}", "{q}-nope"), 1, "queue-init -q {q}-nope"),
    "s3-bad-id": Case(("queue-payload", "-q", "{q}", "-j", "x"), 2, "ID"),
    "s3-info-no-job": Case(("queue-info", "-q", "{q}", "-j", "9"), 1, "9"),
}
SFTP: dict[str, Case] = {
    "sftp-password": Case(("queue-ls", "-q", "sftp://u:SECRET@127.0.0.1/q"), 2, "identity_file"),
    "sftp-port-text": Case(("queue-ls", "-q", "sftp://127.0.0.1:abc/q"), 2, "65535"),
    "sftp-port-big": Case(("queue-ls", "-q", "sftp://127.0.0.1:99999/q"), 2, "65535"),
    "sftp-no-host": Case(("queue-ls", "-q", "sftp:///q"), 2, "no host"),
    "sftp-no-path": Case(("queue-ls", "-q", "sftp://127.0.0.1/"), 2, "no queue path"),
    "sftp-lock-ttl": Case(("queue-process", "-q", "{q}", "-o", "lock_ttl=abc", "true"), 2, "sec"),
    "sftp-timeout": Case(("queue-ls", "-q", "{q}", "-o", "timeout=-1"), 2, "at least"),
    "sftp-bogus": Case(("queue-ls", "-q", "{q}", "-o", "bogus=1"), 2, "known: identity_file"),
    "sftp-dead-port": Case(
        ("queue-ls", "-q", "sftp://127.0.0.1:{dead}/q"),
        1,
        "cannot connect to [127.0.0.1]:{dead}: Connection refused",
    ),
    "sftp-no-queue": Case(("queue-ls", "-q", "{q}/nope"), 1, "queue-init"),
    "sftp-write-no-queue": Case(("queue-write", "-q", "{q}/nope"), 1, "queue-init"),
    "sftp-init-no-parent": Case(("queue-init", "-q", "{q}/a/b/c"), 1, "/a/b"),
    "sftp-config-missing": Case(
        ("queue-ls", "-q", "{q}", "-o", "ssh_config=/nonexist"), 1, "exist"
    ),
    "sftp-move-no-target": Case(("queue-move", "{q}", "{q}/nope"), 1, "queue-init -q {q}/nope"),
    "sftp-info-no-job": Case(("queue-info", "-q", "{q}", "-j", "9"), 1, "9"),
}
RCLONE: dict[str, Case] = {
    "rclone-no-path": Case(("queue-ls", "-q", "rclone:localr"), 2, "rclone:REMOTE:PATH"),
    "rclone-bogus": Case(("queue-ls", "-q", "{q}", "-o", "bogus=1"), 2, "known: config"),
    "rclone-ttl": Case(("queue-process", "-q", "{q}", "-o", "lock_ttl=x", "true"), 2, "seconds"),
    "rclone-settle": Case(("queue-ls", "-q", "{q}", "-o", "lock_settle=-1"), 2, "at least 0"),
    "rclone-flags": Case(("queue-ls", "-q", "{q}", "-o", 'flags="open'), 1, "flags"),
    "rclone-no-remote": Case(("queue-ls", "-q", "rclone:nosuchr:q"), 1, "no remote named"),
    "rclone-no-queue": Case(("queue-ls", "-q", "{q}/nope"), 1, "queue-init"),
    "rclone-move-no-target": Case(("queue-move", "{q}", "{q}/nope"), 1, "queue-init -q {q}/nope"),
    "rclone-bad-config": Case(
        ("queue-ls", "-q", "{q}", "-o", "config=/etc/hostname"), 1, "could not parse line"
    ),
    "rclone-s3-ca-bundle": Case(
        ("queue-ls", "-q", "rclone:rs:b/q"),
        1,
        "failed to open custom CA bundle PEM file (caused by: open /nonexistent",
        env=(
            ("AWS_CA_BUNDLE", "/nonexistent"),
            ("RCLONE_CONFIG_RS_TYPE", "s3"),
            ("RCLONE_CONFIG_RS_ENDPOINT", "http://127.0.0.1:{dead}"),
        ),
    ),
    "rclone-bad-flag": Case(("queue-ls", "-q", "{q}", "-o", "flags=--no-such-flag"), 1, "flag"),
}
FSSPEC: dict[str, Case] = {
    "memory-no-queue": Case(("queue-ls", "-q", "memory://fspl-bad/nope"), 1, "queue-init"),
    # Options every supported fsspec has (global_store is newer than the floor).
    "memory-bad-option": Case(
        ("queue-ls", "-q", "{q}", "-o", "x=1"), 2, "unknown memory option x (known: "
    ),
    "memory-bool-word": Case(
        ("queue-ls", "-q", "{q}", "-o", "skip_instance_cache=maybe"), 2, "true or"
    ),
    "memory-max-paths": Case(("queue-ls", "-q", "{q}", "-o", "max_paths=0"), 2, "at least 1"),
    "zip-json-option": Case(
        ("queue-ls", "-q", "zip://q::file:///nonexistent.zip", "-o", "target_options=1"),
        2,
        "JSON object",
    ),
    "memory-move-no-target": Case(
        ("queue-move", "{q}", "memory://fspl-bad/nope"), 1, "queue-init -q memory://fspl-bad/nope"
    ),
    "fsspec-unknown": Case(("queue-ls", "-q", "nosuchproto://h/q"), 1, ""),
    "memory-write-no-queue": Case(("queue-write", "-q", "memory://fspl-bad/q"), 1, "queue-init"),
}


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "nextseq.lock"
    }


def _check(
    ours: Any, case: Case, q: str, env: dict[str, str], snapshot: Callable[[], object]
) -> None:
    dead = str(free_port())
    fill = lambda s: s.replace("{q}", q).replace("{dead}", dead)  # noqa: E731
    before = snapshot()
    # No timeout= (which would force a process): local and S3 cases run in
    # this process, as cheap as the check itself; the others are processes.
    result = ours(
        *map(fill, case.args), input=case.stdin, env={**env, **{k: fill(v) for k, v in case.env}}
    )
    line = one_error_line(result, case.status)
    assert fill(case.needle) in line, line
    assert "SECRET" not in line
    assert snapshot() == before, "the queue changed"


def init_queue(location: str) -> None:
    """queue-init through the API: the command under test is what runs as
    fspl; a remote queue-init process would only add its start-up."""
    from spooler import api

    with api.open_queue(location) as queue:
        queue.init()


@pytest.mark.parametrize("name", sorted(LOCAL))
def test_local(ours: Any, queue: Path, name: str) -> None:
    if name == "unknown-scheme":  # an unknown scheme is fsspec's to refuse
        pytest.importorskip("fsspec")
    if "sftp" in name:  # without paramiko the line is the install hint instead
        pytest.importorskip("paramiko")
    _check(ours, LOCAL[name], str(queue), {}, lambda: _tree(queue.parent))


@pytest.mark.parametrize("name", sorted(S3))
def test_s3(ours: Any, s3_server: Any, bucket: str, name: str) -> None:
    q = f"s3://{bucket}/q"
    init_queue(q)
    client = s3_server.client()

    def keys() -> list[str]:
        listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return sorted((o["Key"], o["ETag"]) for o in listed)

    _check(ours, S3[name], q, {}, keys)


@pytest.mark.parametrize("name", sorted(SFTP))
def test_sftp(ours: Any, sftp_queue: Any, ssh_env: dict[str, str], name: str) -> None:
    _check(ours, SFTP[name], sftp_queue.url, ssh_env, lambda: _tree(sftp_queue.local.parent))


@pytest.mark.parametrize("name", sorted(RCLONE))
def test_rclone(ours: Any, rclone_local: dict[str, str], tmp_path: Path, name: str) -> None:
    q = f"rclone:localr:{tmp_path}/q"
    init_queue(q)
    _check(ours, RCLONE[name], q, {}, lambda: _tree(tmp_path))


@pytest.mark.parametrize("name", sorted(FSSPEC))
def test_fsspec(ours: Any, tmp_path: Path, name: str) -> None:
    pytest.importorskip("fsspec")
    # memory:// lives in the one process: nothing to compare afterwards
    # but the local directory the command runs in.
    os.chdir(tmp_path)
    _check(ours, FSSPEC[name], "memory://fspl-bad/q", {}, lambda: _tree(tmp_path))


def test_sftp_password_never_exported(ours: Any, tmp_path: Path) -> None:
    """The refused URL is printed with its password masked."""
    pytest.importorskip("paramiko")
    line = one_error_line(ours("queue-ls", "-q", "sftp://me:SECRET@127.0.0.1/q"), 2)
    assert "sftp://me:***@127.0.0.1/q" in line


def test_redaction_in_job_environment() -> None:
    from spooler.redact import redact

    assert redact("webdav://u:pw@h/q/jobs/x") == "webdav://u:***@h/q/jobs/x"
    assert redact("s3://b/q") == "s3://b/q"
    assert redact("sftp://u@h/q") == "sftp://u@h/q"


def test_at_least_sixty_cases() -> None:
    assert sum(map(len, (LOCAL, S3, SFTP, RCLONE, FSSPEC))) >= 60


@pytest.mark.parametrize(
    ("library", "location", "extra"),
    [("botocore", "s3://bkt/q", "s3"), ("paramiko", "sftp://127.0.0.1/q", "sftp")],
)
def test_missing_library_gives_the_install_hint(
    ours: Any, tmp_path: Path, library: str, location: str, extra: str
) -> None:
    """A library made unimportable (a shim first on the path): the hint, not an internal error."""
    shim = tmp_path / library
    shim.mkdir()
    (shim / "__init__.py").write_text(
        f"raise ModuleNotFoundError({'No module named ' + library!r}, name={library!r})\n"
    )
    result = ours("queue-write", "-q", location, env={"PYTHONPATH": str(tmp_path)})
    line = one_error_line(result)
    assert f"pip install 'filespooler[{extra}]'" in line, line


def test_transports_says_what_to_install(ours: Any, tmp_path: Path) -> None:
    """botocore unimportable (a finder refusing it): s3 needs its extra, not "ok"."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.partition('.')[0] == 'botocore':\n"
        "            raise ModuleNotFoundError(f'No module named {name!r}', name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
    )
    result = ours("transports", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 0, result.err
    s3 = next(line for line in result.out.splitlines() if line.startswith("s3,"))
    assert "needs filespooler[s3]" in s3 and "pip install" in s3, s3
    write = ours("queue-write", "-q", "s3://bkt/q", env={"PYTHONPATH": str(tmp_path)})
    assert "pip install 'filespooler[s3]'" in one_error_line(write)


def test_directory_as_stdin_writes_nothing(queue: Path) -> None:
    """CPython refuses it before fspl runs (docs/cli.md): a failure, nothing written."""
    import subprocess
    import sys

    before = _tree(queue)
    fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "spooler", "queue-write", "-q", str(queue)],
            stdin=fd,
            capture_output=True,
        )
    finally:
        os.close(fd)
    assert proc.returncode != 0 and b"is a directory" in proc.stderr
    assert _tree(queue) == before
