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
from collections.abc import Callable
from typing import NamedTuple, cast

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


def encode_meta(meta: Meta) -> bytes:
    """MessagePack-encode the metadata block exactly as the reference does."""
    cmd: object
    if isinstance(meta.cmd, Special):
        cmd = meta.cmd.value
    else:
        cmd = {
            "Command": {
                "params": [list(p) for p in meta.cmd.params],
                "env": [[list(k), list(v)] for k, v in meta.cmd.env],
            }
        }
    doc = {"seq": meta.seq, "ctime": [meta.ctime_secs, meta.ctime_nanos], "cmd_type": cmd}
    import msgpack  # here, not at the top: see decode_meta

    return cast(bytes, msgpack.packb(doc, use_bin_type=True))


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
    # The reference's checks, in its order and with its words.
    if tag != MAGIC:
        raise HeaderError("Input doesn't appear to be a filespooler file")
    if version != VERSION:
        raise HeaderError(f"Input version {version} != {VERSION}")
    (head_crc,) = _CRC.unpack_from(fixed, PREFIX_LEN)
    if zlib.crc32(fixed[:PREFIX_LEN]) != head_crc:
        raise HeaderError("CRC-32 mismatch on file prefix")
    if length > MAX_META_LEN:
        raise HeaderError(f"metadata length {length} exceeds the {MAX_META_LEN}-byte limit")
    return length, meta_crc


# The reference decodes the metadata with serde (rmp-serde), and so accepts
# every encoding serde accepts, not only the one it writes.  We accept exactly
# the same set, so that a job one program runs is never skipped by the other:
#
# * a struct is a map (keys: field names as str or bin, or field indexes as
#   non-negative ints; unknown keys ignored, duplicate fields refused) or an
#   array of exactly its field count;
# * the cmd_type enum is a unit variant given by name (str or bin) or index
#   (0 Command, 1 NOP, 2 Fail), or a one-entry map {variant: value} whose
#   value is nil for NOP and Fail;
# * a byte string is an array of integers 0..255 (never bin, str or bool);
# * bytes after the metadata value, inside the block, are ignored.
#
# Maps are decoded as tuples of (key, value) pairs (object_pairs_hook) so that
# duplicate keys are seen; arrays are lists.  With raw=True every str and bin
# arrives as bytes: the reference treats the two alike wherever it reads them.

_TOP_FIELDS = (b"seq", b"ctime", b"cmd_type")
_COMMAND_FIELDS = (b"params", b"env")
_VARIANTS = (b"Command", b"NOP", b"Fail")
_MISSING = object()
_INT_ONLY = {int}


def _field_index(key: object, names: tuple[bytes, ...]) -> int:
    """Which field ``key`` names; -1 for an unknown (ignored) field."""
    if type(key) is bytes:
        try:
            return names.index(key)
        except ValueError:
            return -1
    if type(key) is int and key >= 0:
        return key if key < len(names) else -1
    raise HeaderError(f"metadata: invalid field identifier {key!r}")


def _struct(value: object, names: tuple[bytes, ...], what: str) -> list[object]:
    """The field values of a struct encoded as a map or as an array."""
    if type(value) is list:
        if len(value) != len(names):
            raise HeaderError(f"metadata: {what} array has {len(value)} items, not {len(names)}")
        return value
    if type(value) is not tuple:
        raise HeaderError(f"metadata: {what} is not a map")
    fields: list[object] = [_MISSING] * len(names)
    for key, item in value:
        index = _field_index(key, names)
        if index < 0:
            continue
        if fields[index] is not _MISSING:
            raise HeaderError(f"metadata: duplicate field `{names[index].decode()}`")
        fields[index] = item
    for index, item in enumerate(fields):
        if item is _MISSING:
            raise HeaderError(f"metadata: missing field `{names[index].decode()}`")
    return fields


def _as_bytes(value: object, what: str) -> bytes:
    if type(value) is list and (not value or set(map(type, value)) == _INT_ONLY):
        try:
            return bytes(value)  # validates: every item in 0..255
        except ValueError:
            pass
    raise HeaderError(f"metadata: {what} is not a byte array")


def _variant_index(key: object) -> int:
    if type(key) is bytes:
        try:
            return _VARIANTS.index(key)
        except ValueError:
            pass
    elif type(key) is int and 0 <= key < len(_VARIANTS):
        return key
    raise HeaderError(f"metadata: unknown cmd_type {key!r}")


def _decode_cmd(raw: object) -> CmdType:
    if raw == b"NOP":  # the common encodings first: scans decode every header
        return Special.NOP
    if raw == b"Fail":
        return Special.FAIL
    if type(raw) is tuple:  # {variant: value}
        if len(raw) != 1:
            raise HeaderError("metadata: cmd_type map must have exactly one entry")
        ((key, value),) = raw
        index = _variant_index(key)
        if index == 0:
            return _decode_command(value)
        if value is not None:
            raise HeaderError("metadata: NOP and Fail carry no value")
    else:
        index = _variant_index(raw)
        if index == 0:
            raise HeaderError("metadata: Command needs params and env")
    return Special.NOP if index == 1 else Special.FAIL


def _decode_command(body: object) -> Command:
    if type(body) is tuple and len(body) == 2 and body[0][0] == b"params" and body[1][0] == b"env":
        params, env = body[0][1], body[1][1]
    else:
        params, env = _struct(body, _COMMAND_FIELDS, "Command")
    if type(params) is not list or type(env) is not list:
        raise HeaderError("metadata: Command needs params and env arrays")
    pairs = []
    for item in env:
        if not (type(item) is list and len(item) == 2):
            raise HeaderError("metadata: env entry is not a pair")
        pairs.append((_as_bytes(item[0], "env name"), _as_bytes(item[1], "env value")))
    return Command(tuple([_as_bytes(p, "param") for p in params]), tuple(pairs))


#: Caps on the first MessagePack value of a metadata block.  A real packet
#: holds a few dozen objects; without a cap a few MB of one-byte empty arrays
#: would become millions of Python objects (hundreds of MB) in every scan.
MAX_META_OBJECTS = 1_048_576
MAX_META_DEPTH = 64
#: Every object takes at least one byte, so a small block is cheap whatever
#: it holds (msgpack bounds its nesting): only larger ones are walked, which
#: keeps the walk out of the scan of ordinary packets.
_WALK_ABOVE = 4096
_NESTED = (0x80, 0x90)  # fixmap, fixarray: low nibble is the length
_SKIP_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}
_SKIP_FIXED.update({0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9})
_SKIP_FIXED.update({0xD8: 17})
_SIZED = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4}  # bin, str: size width
_SIZED_EXT = {0xC7: 1, 0xC8: 2, 0xC9: 4}  # ext: size width, then a type byte
_CONTAINER = {0xDC: (2, 1), 0xDD: (4, 1), 0xDE: (2, 2), 0xDF: (4, 2)}  # width, items per entry


def _check_cost(block: bytes | bytearray) -> None:
    """Refuse, before decoding, a first value with too many objects or levels.

    A walk over the encoding that allocates nothing per object: it counts
    the objects the decoder would build and tracks how many items each open
    container still owes.  Claimed lengths are counted, never allocated, so
    a claim larger than the block costs nothing; the decoder then reports
    the truncation.
    """
    pos, objects, end = 0, 0, len(block)
    owed: list[int] = [1]  # items still to read at each open level
    while owed:
        if owed[-1] == 0:
            owed.pop()
            continue
        owed[-1] -= 1
        if pos >= end:
            return  # truncated: the decoder reports it
        objects += 1
        if objects > MAX_META_OBJECTS:
            raise HeaderError(f"metadata has more than {MAX_META_OBJECTS} objects")
        byte = block[pos]
        pos += 1
        count = -1
        if byte <= 0x7F or byte >= 0xE0:
            continue
        if byte & 0xF0 in _NESTED:
            count = (byte & 0x0F) * (2 if byte & 0xF0 == 0x80 else 1)
        elif 0xA0 <= byte <= 0xBF:
            pos += byte & 0x1F
        elif byte in _SKIP_FIXED:
            pos += _SKIP_FIXED[byte]
        elif byte in _SIZED or byte in _SIZED_EXT:
            width = _SIZED.get(byte) or _SIZED_EXT[byte]
            pos += width + int.from_bytes(block[pos : pos + width], "big")
            pos += 1 if byte in _SIZED_EXT else 0
        elif byte in _CONTAINER:
            width, per = _CONTAINER[byte]
            count = int.from_bytes(block[pos : pos + width], "big") * per
            pos += width
        else:
            return  # 0xC1, never used: the decoder refuses it
        if count > 0:
            if len(owed) > MAX_META_DEPTH:
                raise HeaderError(f"metadata nests deeper than {MAX_META_DEPTH} levels")
            owed.append(count)


def decode_meta(block: bytes | bytearray) -> Meta:
    """Decode a metadata block (already CRC-checked).

    msgpack is imported on first use: with its ``datetime`` it is about 2 ms
    of start-up, and scans of named jobs (queue-ls, the start of
    queue-process) decode no header at all."""
    import msgpack

    if len(block) > _WALK_ABOVE:
        _check_cost(block)
    try:
        doc = msgpack.unpackb(block, raw=True, strict_map_key=False, object_pairs_hook=tuple)
    except msgpack.ExtraData as extra:
        doc = extra.unpacked  # the reference reads one value and ignores the rest
    except Exception as exc:  # msgpack raises a zoo of types for bad input
        raise HeaderError(f"metadata does not decode: {str(exc) or type(exc).__name__}") from None
    if (
        type(doc) is tuple
        and len(doc) == 3
        and doc[0][0] == b"seq"
        and doc[1][0] == b"ctime"
        and doc[2][0] == b"cmd_type"
    ):
        (_, seq), (_, ctime), (_, cmd) = doc  # as the reference writes it
    else:
        seq, ctime, cmd = _struct(doc, _TOP_FIELDS, "metadata")
    if type(seq) is not int or not 0 <= seq < 2**64:
        raise HeaderError("metadata: seq is not a u64")
    if not (
        type(ctime) is list
        and len(ctime) == 2
        and type(ctime[0]) is int
        and type(ctime[1]) is int
        and -(2**63) <= ctime[0] < 2**63
        and 0 <= ctime[1] < 2**32
    ):
        raise HeaderError("metadata: ctime is not [secs, nanos]")
    return Meta(seq, ctime[0], ctime[1], _decode_cmd(cmd))


def read_exact(read: Callable[[int], bytes], size: int) -> bytearray:
    """Read exactly ``size`` bytes in bounded chunks, or raise HeaderError.

    The buffer grows with what arrives (a claimed size is never allocated
    up front) and is returned as is: CRC and decoding take a bytearray, and
    a ``bytes()`` copy would double the peak memory of a large header.
    """
    parts = bytearray()
    while len(parts) < size:
        chunk = read(min(size - len(parts), _CHUNK))
        if not chunk:
            raise HeaderError("failed to fill whole buffer")
        parts += chunk
    return parts


def read_header(read: Callable[[int], bytes]) -> Header:
    """Read one header through ``read`` and stop exactly at the payload.

    ``read`` must not read ahead (an ``os.read`` on a descriptor, or a raw
    stream), because whatever follows is handed on as the payload.
    """
    length, meta_crc = parse_fixed(bytes(read_exact(read, FIXED_LEN)))
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


def _check_block(block: bytes | bytearray, meta_crc: int) -> Meta:
    if zlib.crc32(block) != meta_crc:
        raise HeaderError("CRC-32 mismatch on metadata")
    return decode_meta(block)
