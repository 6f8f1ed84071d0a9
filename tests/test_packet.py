"""The wire format: round trips, reference bytes, and every corruption."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spooler.errors import HeaderError
from spooler.packet import (
    FIXED_LEN,
    MAGIC,
    MAX_META_LEN,
    Command,
    Meta,
    Special,
    encode_header,
    encode_meta,
    parse_header,
    read_header,
)


def build(
    block: bytes, *, tag: bytes = MAGIC, version: int = 1, length: int | None = None
) -> bytes:
    """A header around an arbitrary metadata block, CRCs computed."""
    prefix = struct.pack(
        ">12sHQI", tag, version, len(block) if length is None else length, zlib.crc32(block)
    )
    return prefix + struct.pack(">I", zlib.crc32(prefix)) + block


def meta_doc(cmd: object, seq: int = 7, ctime: list[int] | None = None) -> bytes:
    return msgpack.packb(
        {"seq": seq, "ctime": ctime or [1_651_970_311, 425_412_511], "cmd_type": cmd},
        use_bin_type=True,
    )


SAMPLE = Meta(7, 1_651_970_311, 425_412_511, Command((b"a", b"b c"), ((b"FOO", b"bar"),)))


def test_round_trip() -> None:
    head = encode_header(SAMPLE)
    parsed = parse_header(head + b"payload")
    assert parsed.meta == SAMPLE
    assert parsed.length == len(head)


def test_layout_matches_the_contract() -> None:
    head = encode_header(SAMPLE)
    assert head[:12] == b"*FILESPOOLER"
    assert head[12:14] == b"\x00\x01"
    (length,) = struct.unpack(">Q", head[14:22])
    assert length == len(head) - FIXED_LEN
    assert struct.unpack(">I", head[22:26])[0] == zlib.crc32(head[30:])
    assert struct.unpack(">I", head[26:30])[0] == zlib.crc32(head[:26])
    # Byte strings are arrays of small ints, keys in the reference's order.
    doc = msgpack.unpackb(head[30:])
    assert list(doc) == ["seq", "ctime", "cmd_type"]
    assert doc["cmd_type"]["Command"]["params"][0] == [ord("a")]


def test_specials() -> None:
    for kind, text in ((Special.NOP, "NOP"), (Special.FAIL, "Fail")):
        meta = Meta(1, 2, 3, kind)
        assert msgpack.unpackb(encode_meta(meta))["cmd_type"] == text
        assert parse_header(encode_header(meta)).meta == meta


def test_read_header_stops_exactly_at_the_payload() -> None:
    stream = io.BytesIO(encode_header(SAMPLE) + b"PAYLOAD")
    header = read_header(stream.read)
    assert header.meta == SAMPLE
    assert stream.read() == b"PAYLOAD"


@pytest.mark.parametrize("offset", [12, 13, 14, 21, 22, 25, 26, 29], ids=lambda o: f"byte{o}")
def test_any_flipped_fixed_byte_is_rejected(offset: int) -> None:
    head = bytearray(encode_header(SAMPLE))
    head[offset] ^= 0x01
    with pytest.raises(HeaderError):
        parse_header(bytes(head))


def test_flipped_tag_is_rejected() -> None:
    head = bytearray(encode_header(SAMPLE))
    head[0] = ord("#")
    with pytest.raises(HeaderError, match="tag"):
        parse_header(bytes(head))


def test_metadata_crc_mismatch() -> None:
    head = bytearray(encode_header(SAMPLE))
    head[-1] ^= 0xFF
    with pytest.raises(HeaderError, match="metadata CRC"):
        parse_header(bytes(head))


def test_header_crc_mismatch() -> None:
    head = bytearray(encode_header(SAMPLE))
    head[26] ^= 0xFF
    with pytest.raises(HeaderError, match="header CRC"):
        parse_header(bytes(head))


def test_wrong_version_with_valid_crc() -> None:
    with pytest.raises(HeaderError, match="version 2"):
        parse_header(build(encode_meta(SAMPLE), version=2))


def test_truncated_anywhere() -> None:
    head = encode_header(SAMPLE)
    for cut in range(len(head)):
        with pytest.raises(HeaderError):
            parse_header(head[:cut])
        with pytest.raises(HeaderError):
            read_header(io.BytesIO(head[:cut]).read)


def test_absurd_length_allocates_nothing() -> None:
    data = build(b"", length=2**63) + b"x" * 100
    tracemalloc.start()
    try:
        with pytest.raises(HeaderError, match="limit"):
            read_header(io.BytesIO(data).read)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


def test_large_but_allowed_length_on_a_short_stream_allocates_little() -> None:
    data = build(b"", length=MAX_META_LEN - 1) + b"x" * 1000
    tracemalloc.start()
    try:
        with pytest.raises(HeaderError, match="fill"):
            read_header(io.BytesIO(data).read)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024


@pytest.mark.parametrize(
    "block",
    [
        b"\xc1",  # never-used msgpack byte
        msgpack.packb([1, 2, 3]),
        msgpack.packb({"seq": -1, "ctime": [0, 0], "cmd_type": "NOP"}),
        msgpack.packb({"seq": 1, "ctime": [0], "cmd_type": "NOP"}),
        msgpack.packb({"seq": 1, "ctime": [0, 0], "cmd_type": "Other"}),
        meta_doc({"Command": {"params": [b"bin"], "env": []}}),  # bin, not an int array
        meta_doc({"Command": {"params": ["str"], "env": []}}),  # str, not an int array
        meta_doc({"Command": {"params": [[256]], "env": []}}),
        meta_doc({"Command": {"params": [], "env": [[[65]]]}}),
    ],
    ids=[
        "reserved",
        "array",
        "negative-seq",
        "short-ctime",
        "unknown-cmd",
        "bin-param",
        "str-param",
        "big-byte",
        "env-not-pair",
    ],
)
def test_undecodable_metadata(block: bytes) -> None:
    with pytest.raises(HeaderError):
        parse_header(build(block))


def test_wide_integer_encodings_are_accepted() -> None:
    # seq as uint64 and bytes as uint8 (0xcc): valid msgpack, wider than needed.
    block = (
        b"\x83\xa3seq\xcf"
        + (5).to_bytes(8, "big")
        + b"\xa5ctime\x92\xd3"
        + (1).to_bytes(8, "big")
        + b"\xce"
        + (2).to_bytes(4, "big")
        + b"\xa8cmd_type\x81\xa7Command\x82\xa6params\x91\x91\xcc\x41\xa3env\x90"
    )
    meta = parse_header(build(block)).meta
    assert meta == Meta(5, 1, 2, Command((b"A",), ()))


@settings(max_examples=200, deadline=None)
@given(
    seq=st.integers(0, 2**64 - 1),
    secs=st.integers(-(2**40), 2**40),
    nanos=st.integers(0, 999_999_999),
    params=st.lists(st.binary(max_size=40), max_size=5),
    env=st.lists(st.tuples(st.binary(min_size=1, max_size=10), st.binary(max_size=20)), max_size=4),
)
def test_round_trip_property(
    seq: int, secs: int, nanos: int, params: list[bytes], env: list[tuple[bytes, bytes]]
) -> None:
    meta = Meta(seq, secs, nanos, Command(tuple(params), tuple(env)))
    assert parse_header(encode_header(meta)).meta == meta
