"""Fuzzing the header parser and the info/ls paths.

Fast in CI; ``FSPL_FUZZ_EXAMPLES=100000 pytest tests/test_reliability_fuzz.py``
runs the long version (docs/reliability.md).
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import msgpack
from conftest import Runner, frame, make_ours
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spooler.errors import HeaderError
from spooler.packet import MAGIC, Command, Meta, encode_header, parse_header, read_header

EXAMPLES = int(os.environ.get("FSPL_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
VALID = encode_header(Meta(3, 1_700_000_000, 5, Command((b"p",), ((b"K", b"V"),))))


def parse_both_ways(data: bytes) -> None:
    """Only HeaderError may come out, from the bytes and the stream parsers."""
    for parse in (lambda: parse_header(data), lambda: read_header(io.BytesIO(data).read)):
        try:
            parse()
        except HeaderError:
            pass


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    parse_both_ways(data)
    parse_both_ways(MAGIC + data)


documents = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=8)
    | st.binary(max_size=8)
    | st.sampled_from(["seq", "ctime", "cmd_type", "NOP", "Fail"]),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["seq", "ctime", "cmd_type", "Command", "params", "env"])
            | st.text(max_size=4),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


@FUZZ
@given(documents)
def test_random_metadata_documents(doc: object) -> None:
    parse_both_ways(frame(msgpack.packb(doc, use_bin_type=True)))


@settings(max_examples=max(EXAMPLES // 10, 10), deadline=None)
@given(st.binary(max_size=200))
def test_stdin_commands_on_fuzzed_input(data: bytes) -> None:
    """In-process (an exception escaping the command line fails the test
    with its traceback): ten times the examples of a subprocess per call."""
    ours = make_ours()
    for command in ("stdin-info", "stdin-payload"):
        result = ours(command, input=VALID[:20] + data)
        assert result.returncode in (0, 1)
        assert b"Traceback" not in result.stderr
        if result.returncode:
            assert result.stderr.count(b"\n") == 1 and result.stderr.startswith(b"Error: ")


def test_listing_a_queue_of_fuzzed_files(ours: Runner, queue: Path) -> None:
    import random

    rng = random.Random(7)
    for i in range(200):
        data = bytearray(VALID + b"payload")
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        (queue / "jobs" / f"fspl-fuzz-{i}.fspl").write_bytes(bytes(data[: rng.randint(0, 120)]))
    for command in (["queue-ls"], ["queue-status"], ["queue-process", "true"]):
        result = ours(command[0], "-q", queue, *command[1:])
        assert result.returncode == 0 and "Traceback" not in result.err
