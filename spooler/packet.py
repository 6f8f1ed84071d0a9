"""The packet (job file) wire format, version 1, byte-compatible with fspl 1.2.2.

Layout::

    0   12  b"*FILESPOOLER"
    12   2  version (1), big-endian
    14   8  L, length of the metadata block, big-endian
    22   4  CRC-32 of the metadata block
    26   4  CRC-32 of bytes 0..25
    30   L  metadata: MessagePack map {"seq", "ctime", "cmd_type"}
    30+L    payload, to end of file

Byte strings inside a Command (params, env names and values) travel as
MessagePack arrays of small integers, one per byte: that is what the reference
writes and the only form it reads, so we write and accept exactly that.

Readers here never trust the length field with an allocation: the metadata is
read in bounded chunks as it arrives and lengths above :data:`MAX_META_LEN`
are rejected outright.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Callable, Sequence
from typing import NamedTuple

import msgpack

from .errors import HeaderError

MAGIC = b"*FILESPOOLER"
VERSION = 1
_PREFIX = struct.Struct(">12sHQI")  # tag, version, L, metadata CRC
_CRC = struct.Struct(">I")
PREFIX_LEN = _PREFIX.size  # 26: the bytes the header CRC covers
FIXED_LEN = PREFIX_LEN + _CRC.size  # 30: everything before the metadata
#: Larger metadata is refused. Real packets carry a few hundred bytes; params
#: and environment are bounded by the sender's ARG_MAX long before this.
MAX_META_LEN = 64 * 1024 * 1024
_CHUNK = 1024 * 1024


class Special(enum.Enum):
    """The two packet kinds that run nothing."""

    NOP = "NOP"
    FAIL = "Fail"


# Named tuples rather than frozen dataclasses: a scan builds several per job
# and tuples are created several times faster.
class Command(NamedTuple):
    """A request to run the processor's command with these extras."""

    params: tuple[bytes, ...] = ()
    env: tuple[tuple[bytes, bytes], ...] = ()


CmdType = Command | Special


class Meta(NamedTuple):
    """Decoded metadata block of one packet."""

    seq: int
    ctime_secs: int
    ctime_nanos: int
    cmd: CmdType = Command()

    @property
    def ctime_key(self) -> tuple[int, int]:
        return (self.ctime_secs, self.ctime_nanos)


class Header(NamedTuple):
    """A parsed header: its metadata and its total length in bytes."""

    meta: Meta
    length: int


# ---------------------------------------------------------------- encoding


def _byte_array(data: bytes) -> list[int]:
    return list(data)


def encode_meta(meta: Meta) -> bytes:
    """MessagePack-encode the metadata block exactly as the reference does."""
    cmd: object
    if isinstance(meta.cmd, Special):
        cmd = meta.cmd.value
    else:
        cmd = {
            "Command": {
                "params": [_byte_array(p) for p in meta.cmd.params],
                "env": [[_byte_array(k), _byte_array(v)] for k, v in meta.cmd.env],
            }
        }
    doc = {"seq": meta.seq, "ctime": [meta.ctime_secs, meta.ctime_nanos], "cmd_type": cmd}
    return msgpack.packb(doc, use_bin_type=True)


def encode_header(meta: Meta) -> bytes:
    """The complete header (fixed part plus metadata) for ``meta``."""
    block = encode_meta(meta)
    prefix = _PREFIX.pack(MAGIC, VERSION, len(block), zlib.crc32(block))
    return prefix + _CRC.pack(zlib.crc32(prefix)) + block


# ---------------------------------------------------------------- decoding


def parse_fixed(fixed: bytes) -> tuple[int, int]:
    """Validate the 30 fixed bytes; return (metadata length, metadata CRC)."""
    if len(fixed) < FIXED_LEN:
        raise HeaderError("failed to fill whole buffer")
    tag, version, length, meta_crc = _PREFIX.unpack_from(fixed)
    if tag != MAGIC:
        raise HeaderError("not a filespooler packet (bad tag)")
    (head_crc,) = _CRC.unpack_from(fixed, PREFIX_LEN)
    if zlib.crc32(fixed[:PREFIX_LEN]) != head_crc:
        raise HeaderError("header CRC mismatch")
    if version != VERSION:
        raise HeaderError(f"unsupported packet version {version}")
    if length > MAX_META_LEN:
        raise HeaderError(f"metadata length {length} exceeds the {MAX_META_LEN}-byte limit")
    return length, meta_crc


def _as_bytes(value: object, what: str) -> bytes:
    if isinstance(value, list):
        try:
            return bytes(value)  # validates: every item an int in 0..255
        except (TypeError, ValueError):
            pass
    raise HeaderError(f"metadata: {what} is not a byte array")


def _decode_cmd(raw: object) -> CmdType:
    if raw == "NOP":
        return Special.NOP
    if raw == "Fail":
        return Special.FAIL
    if not (
        isinstance(raw, dict) and list(raw) == ["Command"] and isinstance(raw["Command"], dict)
    ):
        raise HeaderError("metadata: unknown cmd_type")
    body = raw["Command"]
    params, env = body.get("params"), body.get("env")
    if not isinstance(params, list) or not isinstance(env, list):
        raise HeaderError("metadata: Command needs params and env arrays")
    pairs = []
    for item in env:
        if not (isinstance(item, list) and len(item) == 2):
            raise HeaderError("metadata: env entry is not a pair")
        pairs.append((_as_bytes(item[0], "env name"), _as_bytes(item[1], "env value")))
    return Command(tuple(_as_bytes(p, "param") for p in params), tuple(pairs))


def decode_meta(block: bytes) -> Meta:
    """Decode a metadata block (already CRC-checked)."""
    try:
        doc = msgpack.unpackb(block, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises a zoo of types for bad input
        raise HeaderError(f"metadata does not decode: {exc}") from None
    if not isinstance(doc, dict):
        raise HeaderError("metadata is not a map")
    seq, ctime, cmd = doc.get("seq"), doc.get("ctime"), doc.get("cmd_type")
    if type(seq) is not int or not 0 <= seq < 2**64:
        raise HeaderError("metadata: seq is not a u64")
    if not (
        isinstance(ctime, list)
        and len(ctime) == 2
        and all(type(x) is int for x in ctime)
        and -(2**63) <= ctime[0] < 2**63
        and 0 <= ctime[1] < 2**32
    ):
        raise HeaderError("metadata: ctime is not [secs, nanos]")
    return Meta(seq, ctime[0], ctime[1], _decode_cmd(cmd))


def read_exact(read: Callable[[int], bytes], size: int) -> bytes:
    """Read exactly ``size`` bytes in bounded chunks, or raise HeaderError."""
    parts = bytearray()
    while len(parts) < size:
        chunk = read(min(size - len(parts), _CHUNK))
        if not chunk:
            raise HeaderError("failed to fill whole buffer")
        parts += chunk
    return bytes(parts)


def read_header(read: Callable[[int], bytes]) -> Header:
    """Read one header through ``read`` and stop exactly at the payload.

    ``read`` must not read ahead (an ``os.read`` on a descriptor, or a raw
    stream), because whatever follows is handed on as the payload.
    """
    length, meta_crc = parse_fixed(read_exact(read, FIXED_LEN))
    block = read_exact(read, length)
    return Header(_check_block(block, meta_crc), FIXED_LEN + length)


def parse_header(data: bytes) -> Header:
    """Parse a header from bytes that start at offset 0 of a packet.

    Raises :class:`HeaderError` if ``data`` is too short; callers that read a
    prefix can use :func:`needed_length` to learn how much they need.
    """
    length, meta_crc = parse_fixed(data[:FIXED_LEN])
    end = FIXED_LEN + length
    if len(data) < end:
        raise HeaderError("failed to fill whole buffer")
    return Header(_check_block(data[FIXED_LEN:end], meta_crc), end)


def needed_length(prefix: bytes) -> int:
    """Total header length announced by a (validated) fixed part."""
    length, _ = parse_fixed(prefix[:FIXED_LEN])
    return FIXED_LEN + length


def _check_block(block: bytes, meta_crc: int) -> Meta:
    if zlib.crc32(block) != meta_crc:
        raise HeaderError("metadata CRC mismatch")
    return decode_meta(block)


def command_meta(
    seq: int,
    ctime: tuple[int, int],
    params: Sequence[bytes] = (),
    env: Sequence[tuple[bytes, bytes]] = (),
) -> Meta:
    """Convenience constructor for a Command packet's metadata."""
    return Meta(seq, ctime[0], ctime[1], Command(tuple(params), tuple(env)))
