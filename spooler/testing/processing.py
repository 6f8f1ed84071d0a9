"""Conformance tests of processing in place: strict order, gaps, failures,
the command's payload and environment, and the command line end to end."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ..api import header, process
from ..errors import SpoolError
from ..packet import Special
from ..queue import OnError, Queue
from ..transport import Capability, Transport
from .base import TransportFixtures, build_packet, jobs, needs


class ProcessingTests(TransportFixtures):
    """Running a queue (``spooler.api.process``) and the ``fspl`` CLI."""

    @needs(Capability.PROCESS)
    def test_out_of_order_delivery_runs_in_order(self, transport: Transport) -> None:
        for seq in (3, 1, 4, 2):
            transport.deliver(io.BytesIO(build_packet(seq, b"job %d" % seq)))
        seen: list[bytes] = []
        ran = process(Queue(transport), callback=lambda meta, stream: seen.append(stream.read()))
        assert ran == 4
        assert seen == [b"job 1", b"job 2", b"job 3", b"job 4"]
        assert jobs(transport) == []
        with transport.lock_sequence() as state:
            assert state.read() == 5

    @needs(Capability.PROCESS)
    def test_gap_stops_processing(self, transport: Transport) -> None:
        for seq in (1, 3):
            transport.deliver(io.BytesIO(build_packet(seq)))
        assert process(Queue(transport), callback=lambda meta, stream: True) == 1
        assert len(jobs(transport)) == 1
        assert Queue(transport).status().stalled

    @needs(Capability.PROCESS)
    def test_failure_under_retry_keeps_job(self, transport: Transport) -> None:
        transport.deliver(io.BytesIO(header(Special.FAIL, seq=1)))
        with pytest.raises(SpoolError):
            process(Queue(transport), callback=lambda meta, stream: True)
        assert len(jobs(transport)) == 1
        assert process(Queue(transport), callback=lambda m, s: True, on_error=OnError.DELETE) == 1
        assert jobs(transport) == []

    @needs(Capability.PROCESS)
    def test_command_gets_payload_and_environment(
        self, transport: Transport, tmp_path: Path
    ) -> None:
        payload = b"hello through the transport\n" * 1000
        name = transport.deliver(io.BytesIO(build_packet(1, payload)))
        script = (
            "import os,sys,hashlib;"
            "d=sys.stdin.buffer.read();"
            "open(sys.argv[1],'w').write("
            "os.environ['FSPL_JOB_FILENAME']+' '+hashlib.sha256(d).hexdigest())"
        )
        out = tmp_path / "result"
        process(Queue(transport), command=[sys.executable, "-c", script, str(out)])
        assert out.read_text() == f"{name} {hashlib.sha256(payload).hexdigest()}"

    def test_cli_write_ls_process(
        self, transport: Transport, queue_location: str, cli_env: dict[str, str]
    ) -> None:
        if not self.shared_between_processes:
            pytest.skip("storage is private to one process (shared_between_processes = False)")
        env = {**os.environ, **cli_env}

        def fspl(*args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
            return subprocess.run(
                [sys.executable, "-m", "spooler", *args],
                input=data,
                capture_output=True,
                env=env,
                timeout=120,
            )

        for seq in (2, 1):
            assert fspl("queue-write", "-q", queue_location, data=build_packet(seq)).returncode == 0
        listing = fspl("queue-ls", "-q", queue_location)
        assert listing.returncode == 0, listing.stderr
        rows = listing.stdout.decode().splitlines()
        assert rows[0].startswith("ID ") and [r.split()[0] for r in rows[1:]] == ["1", "2"]
        if Capability.PROCESS in transport.capabilities:
            ran = fspl("queue-process", "-q", queue_location, "true")
            assert ran.returncode == 0, ran.stderr
            assert jobs(transport) == []
