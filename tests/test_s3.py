"""The S3 and generic fsspec transports, against moto's real S3 server."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import Runner, jobs_in
from fixtures_s3 import S3Server
from helpers import one_error_line, poll_until

from spooler.api import open_queue, process
from spooler.errors import LockError, SpoolError
from spooler.lease import GRACE, Lease, Observations
from spooler.testing import TransportSuite, build_packet

pytest.importorskip("s3fs")


class TestS3Conformance(TransportSuite):
    @pytest.fixture
    def queue_location(self, bucket: str) -> str:
        return f"s3://{bucket}/spool/q"


class TestMemoryConformance(TransportSuite):
    shared_between_processes = False

    @pytest.fixture
    def queue_location(self, tmp_path: Path) -> str:
        return f"memory://fspl-tests/{tmp_path.name}/q"


def objects(server: S3Server, bucket: str) -> list[str]:
    listing = server.client().list_objects_v2(Bucket=bucket)
    return sorted(obj["Key"] for obj in listing.get("Contents", []))


def uploads(server: S3Server, bucket: str) -> list[str]:
    return [
        u["Key"] for u in server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    ]


def test_every_command_on_a_bucket(
    ours: Runner, ref: Runner, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    url = f"s3://{bucket}/backups/q"
    assert ours("queue-init", "-q", url).returncode == 0
    assert ours("queue-init", "-q", url).returncode == 1  # exists
    seq = tmp_path / "seq"
    packets = [
        ours("prepare", "-s", seq, "-i", "-", "--", f"p{i}", input=b"job %d\n" % i).stdout
        for i in (1, 2, 3)
    ]
    for packet in (packets[2], packets[0], packets[1]):  # out of order
        assert ours("queue-write", "-q", url, input=packet).returncode == 0
    listing = ours("queue-ls", "-q", url)
    assert [r.split()[0] for r in listing.out.splitlines()[1:]] == ["1", "2", "3"]
    info = ours("queue-info", "-q", url, "-j", "2")
    assert "FSPL_PARAM_1=p2\n" in info.out and f"FSPL_JOB_QUEUEDIR={url}\n" in info.out
    assert ours("queue-payload", "-q", url, "-j", "3").stdout == b"job 3\n"
    assert ours("queue-get-next", "-q", url).out == "1\n"
    status = ours("queue-status", "-q", url)
    assert "next: 1" in status.out and "jobs: 3" in status.out
    done = ours("queue-process", "-q", url, "-n", "2", "--output-to", "SaveBoth", "cat")
    assert done.returncode == 0, done.err
    assert ours("queue-get-next", "-q", url).out == "3\n"
    keys = objects(s3_server, bucket)
    assert sum(k.endswith(".fspl.out") for k in keys) == 2
    assert ours("queue-set-next", "-q", url, "3").returncode == 0
    assert ours("queue-process", "-q", url, "cat").stdout == b"job 3\n"
    # Interop: what remains can be copied down and read by the reference.
    assert ours("queue-write", "-q", url, input=packets[0]).returncode == 0
    local = tmp_path / "local"
    ref("queue-init", "-q", local)
    client = s3_server.client()
    for key in objects(s3_server, bucket):
        name = key.rsplit("/", 1)[-1]
        if name.startswith("fspl-") and name.endswith(".fspl"):
            body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
            (local / "jobs" / name).write_bytes(body)
    assert ref("queue-process", "-q", local, "cat").stdout == b"job 1\n"


def test_append_only_bucket_queue(ours: Runner, bucket: str, s3_server: S3Server) -> None:
    url = f"s3://{bucket}/ao"
    assert ours("queue-init", "-q", url, "--append-only").returncode == 0
    assert objects(s3_server, bucket) == ["ao/jobs/.fspl-keep"]
    assert (
        ours("queue-write", "-q", url, input=ours("prepare-nop", "-s", "-").stdout).returncode == 0
    )
    assert ours("queue-ls", "-q", url).out.count("\n") == 2
    refused = ours("queue-process", "-q", url, "true")
    assert refused.returncode == 1 and "append-only" in refused.err


def test_queue_move_down_from_bucket(ours: Runner, bucket: str, tmp_path: Path) -> None:
    url = f"s3://{bucket}/in"
    ours("queue-init", "-q", url, "--append-only")
    for i in (2, 1):
        packet = ours("prepare", "-s", tmp_path / f"s{i}", "-i", "-", input=b"%d" % i).stdout
        ours("queue-write", "-q", url, input=packet)
    local = tmp_path / "local"
    ours("queue-init", "-q", local)
    assert ours("queue-move", url, local).returncode == 0
    assert ours("queue-ls", "-q", url).out.count("\n") == 1
    assert len(jobs_in(local)) == 2


def test_large_multipart_delivery(s3_server: S3Server, bucket: str) -> None:
    queue = open_queue(f"s3://{bucket}/big")
    queue.init()
    payload = os.urandom(20 * 1024 * 1024 + 123)  # three parts
    name = queue.write(build_packet(1, payload))
    with queue.open(name) as source:
        received = bytearray()
        while chunk := os.read(source.fd, 1 << 20):
            received += chunk
    assert bytes(received) == payload
    assert uploads(s3_server, bucket) == []


@pytest.mark.parametrize("checksums", ["when_supported", "when_required"])
def test_cli_delivery_from_a_pipe(
    ours: Runner, s3_server: S3Server, bucket: str, checksums: str
) -> None:
    """A pipe gives 64 KiB per read; parts must still be whole and in order,
    carry a CRC32 each (unless the user turned optional checksums off for a
    store without them) and combine into a checked object."""
    url = f"s3://{bucket}/pipe"
    ours("queue-init", "-q", url)
    packet = build_packet(1, os.urandom(17 * 1024 * 1024 + 5))  # three growing parts
    feeder = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    writer = subprocess.Popen(
        [sys.executable, "-m", "spooler", "queue-write", "-q", url],
        stdin=feeder.stdout,
        env={**os.environ, "AWS_REQUEST_CHECKSUM_CALCULATION": checksums},
    )
    assert feeder.stdin is not None and feeder.stdout is not None
    feeder.stdout.close()
    feeder.stdin.write(packet)
    feeder.stdin.close()
    assert writer.wait(60) == 0 and feeder.wait(10) == 0
    (key,) = [k for k in objects(s3_server, bucket) if k.endswith(".fspl")]
    client = s3_server.client()
    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == packet
    head = client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    assert ("ChecksumCRC32" in head) == (checksums == "when_supported")
    assert uploads(s3_server, bucket) == []


def test_part_sizes_grow_within_the_part_limit() -> None:
    from spooler_plugins.s3.upload import PART_SIZE, PARTS_PER_SIZE, part_size

    assert part_size(1) == part_size(PARTS_PER_SIZE) == PART_SIZE
    assert part_size(PARTS_PER_SIZE + 1) == 2 * PART_SIZE
    assert sum(part_size(n) for n in range(1, 10_001)) > 250 * 1024**3  # S3: 10,000 parts


def test_queue_write_imports_no_s3fs(ours: Runner, s3_server: S3Server, bucket: str) -> None:
    """Delivery uses botocore alone: s3fs, fsspec and aiobotocore stay out."""
    url = f"s3://{bucket}/lean"
    ours("queue-init", "-q", url)
    code = (
        "import runpy, sys\n"
        "sys.argv = ['fspl', 'queue-write', '-q', sys.argv[1]]\n"
        "try:\n    runpy.run_module('spooler', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'s3fs', 'fsspec', 'aiobotocore'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, url], input=build_packet(1), capture_output=True, check=True
    )
    assert result.stdout == b"[]\n"
    assert len([k for k in objects(s3_server, bucket) if "lean/jobs/fspl-" in k]) == 1


def test_failed_multipart_upload_is_aborted(s3_server: S3Server, bucket: str) -> None:
    queue = open_queue(f"s3://{bucket}/q")
    queue.init()

    class Broken(io.RawIOBase):
        sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buf) -> int:
            if self.sent > 12 * 1024 * 1024:
                raise OSError("connection cut")
            n = len(buf)
            buf[:n] = b"x" * n
            self.sent += n
            return n

    with pytest.raises(OSError, match="connection cut"):
        queue.write(io.BufferedReader(Broken()))
    assert uploads(s3_server, bucket) == []
    assert [k for k in objects(s3_server, bucket) if k.endswith(".fspl")] == []


def test_refused_completion_leaves_no_orphan(s3_server: S3Server, bucket: str) -> None:
    queue = open_queue(f"s3://{bucket}/q")
    queue.init()
    data = build_packet(1, b"z" * (9 * 1024 * 1024))
    name = queue.write(data)
    with pytest.raises(FileExistsError):
        queue.transport.deliver(io.BytesIO(data), name=name)  # create-only, multipart
    with pytest.raises(FileExistsError):
        queue.transport.deliver(io.BytesIO(b"small"), name=name)  # create-only, single put
    assert uploads(s3_server, bucket) == []


def test_writer_killed_mid_upload(s3_server: S3Server, bucket: str, tmp_path: Path) -> None:
    url = f"s3://{bucket}/q"
    queue = open_queue(url)
    queue.init()
    writer = subprocess.Popen(
        [sys.executable, "-m", "spooler", "queue-write", "-q", url], stdin=subprocess.PIPE
    )
    assert writer.stdin is not None
    writer.stdin.write(build_packet(1, b"a" * (10 * 1024 * 1024)))  # one part out, then stall
    writer.stdin.flush()
    time.sleep(1.5)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert [k for k in objects(s3_server, bucket) if k.endswith(".fspl")] == []
    assert queue.listing() == []


def test_concurrent_writers(bucket: str) -> None:
    queue = open_queue(f"s3://{bucket}/q")
    queue.init()
    names: list[str] = []
    threads = [
        threading.Thread(target=lambda i=i: names.append(queue.write(build_packet(i))))
        for i in range(1, 11)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(names)) == 10
    assert [job.meta.seq for job in queue.listing()] == list(range(1, 11))


def test_lease_contention_and_expiry(ours: Runner, bucket: str, tmp_path: Path) -> None:
    url = f"s3://{bucket}/q"
    first = open_queue(url, options={"lease_ttl": "2"})
    first.init()
    with first.transport.lock_sequence():
        with (
            pytest.raises(LockError, match="being processed"),
            open_queue(url).transport.lock_sequence(),
        ):
            pass
        blocked = ours("queue-process", "-q", url, "true")
        assert blocked.returncode == 1 and "being processed" in blocked.err
    # A holder on another host that died: broken once the *server's* clock
    # says it went a TTL (+ grace) without renewal.  The wall clock claimed
    # in the document ("expires" in the past) counts for nothing, and this
    # host's clock is frozen, so only the server's can break it.
    store = open_queue(url).transport.lock_store
    store.create(b'{"owner": "x", "host": "gone", "pid": 1, "expires": 0}')
    breaker = Lease(store, url, 1.0, clock=lambda: 0.0, observations=Observations(str(tmp_path)))
    started = time.monotonic()
    with pytest.raises(LockError, match="being processed"):
        breaker.acquire()
    assert ours("queue-status", "-q", url).returncode == 0  # diagnostics break nothing

    def broken() -> bool:
        try:
            breaker.acquire()
        except LockError:
            return False
        return True

    assert poll_until(broken, timeout=GRACE + 10), "the dead lease was never broken"
    assert time.monotonic() - started > GRACE, "broken before a TTL + grace went by"
    breaker.release()
    with open_queue(url).transport.lock_sequence() as state:
        assert state.read() == 1


def test_two_processors_never_run_a_job_twice(bucket: str, tmp_path: Path) -> None:
    url = f"s3://{bucket}/q"
    queue = open_queue(url)
    queue.init()
    for seq in range(1, 7):
        queue.write(build_packet(seq, b"%d\n" % seq))
    log = tmp_path / "runs"
    errors: list[BaseException] = []

    def worker() -> None:
        for _ in range(10):  # until every job ran: later rounds find nothing
            if log.exists() and len(log.read_text().split()) >= 6:
                return
            try:
                process(open_queue(url), command=["sh", "-c", f"cat >> {log}; sleep 0.05"])
            except (LockError, SpoolError) as exc:
                errors.append(exc)
            time.sleep(0.05)

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(log.read_text().split()) == [str(i) for i in range(1, 7)]
    assert all(isinstance(e, LockError) for e in errors)
    assert queue.job_names() == []


def test_sequence_compare_and_swap(s3_server: S3Server, bucket: str) -> None:
    url = f"s3://{bucket}/q"
    open_queue(url).init()
    with open_queue(url).transport.lock_sequence() as state:
        assert state.read() == 1
        # Another writer, with no lock: a plain S3 client.
        s3_server.client().put_object(Bucket=bucket, Key="q/nextseq", Body=b"7\n")
        with pytest.raises(SpoolError, match="changed by someone else"):
            state.write(2)


@pytest.mark.parametrize(
    ("location", "message"),
    [
        ("s3://no-such-bucket-fspl/q", "no such bucket"),
        ("gcs://bucket/q", "gcs"),
        ("nosuchproto-fspl://x/q", "protocol not known"),
    ],
)
def test_bad_locations_are_one_line_errors(
    ours: Runner, s3_server: S3Server, location: str, message: str
) -> None:
    result = ours("queue-init", "-q", location)
    assert message.lower() in one_error_line(result).lower()


@pytest.mark.parametrize("command", ["queue-ls", "queue-write"])
def test_unreachable_endpoint(ours: Runner, s3_server: S3Server, command: str) -> None:
    result = ours(
        command,
        "-q",
        "s3://bucket/q",
        "-o",
        "endpoint_url=http://127.0.0.1:9",
        env={"AWS_MAX_ATTEMPTS": "1"},
        input=build_packet(1),
    )
    one_error_line(result)


def test_queue_write_to_a_missing_bucket(ours: Runner, s3_server: S3Server) -> None:
    result = ours("queue-write", "-q", "s3://no-such-bucket-fspl/q", input=build_packet(1))
    assert result.returncode == 1
    assert result.err == "Error: s3://no-such-bucket-fspl/q: no such bucket\n"


def test_the_s3_environment_is_set_per_test_only(moto_server: S3Server) -> None:
    """Collected after the tests above: none of them left moto's endpoint or
    credentials behind for the tests that follow."""
    assert os.environ.get("AWS_ENDPOINT_URL") != moto_server.endpoint
    assert os.environ.get("AWS_ACCESS_KEY_ID") != "testing"


@pytest.mark.parametrize("command", ["queue-ls", "queue-write", "queue-init", "queue-process"])
def test_refused_credentials_say_which(ours: Runner, s3_refusing: str, command: str) -> None:
    """A wrong secret or an unknown key ID: one line naming the queue and the key to check."""
    args = ["true"] if command == "queue-process" else []
    line = one_error_line(ours(command, "-q", "s3://fspl-bkt/q", *args, timeout=60))
    assert "s3://fspl-bkt/q" in line, line
    if "head_object" in line:  # a HEAD reply has no body: S3 gives no reason
        assert "Forbidden (403): access denied; check the credentials" in line, line
        return
    key = "SECRET_ACCESS_KEY" if s3_refusing == "SignatureDoesNotMatch" else "ACCESS_KEY_ID"
    assert f"({s3_refusing})" in line and f"check AWS_{key}" in line, line


def test_missing_job_names_where(s3_server: S3Server, bucket: str) -> None:
    """The contract's FileNotFoundError, naming the job's location."""
    transport = open_queue(f"s3://{bucket}/q").transport
    transport.init()
    with pytest.raises(FileNotFoundError) as caught:
        transport.open_job("fspl-nope.fspl").read(1)
    assert caught.value.filename == f"s3://{bucket}/q/jobs/fspl-nope.fspl"
