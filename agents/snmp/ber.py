"""A small BER codec for SNMP v1/v2c messages: the fast path for community-based table reads.

pysnmp decodes every varbind into pyasn1 objects (hundreds of µs per varbind); a GETBULK walk
only needs the OID bytes and a Python int/bytes per value. OIDs stay in their encoded form
(BER content bytes): column membership is then a ``bytes.startswith`` and the last OID of a
response goes back into the next request unchanged. Only the index suffix is decoded to ints.
SNMPv3 stays with pysnmp (USM security); tests compare the two paths on the same device.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from dcim.errors import BerError

# PDU tags (context-specific, constructed)
GET = 0xA0
GETNEXT = 0xA1
RESPONSE = 0xA2
GETBULK = 0xA5
REPORT = 0xA8

# value tags
INTEGER = 0x02
OCTET_STRING = 0x04
NULL = 0x05
OBJECT_ID = 0x06
IP_ADDRESS = 0x40
COUNTER32 = 0x41
GAUGE32 = 0x42
TIMETICKS = 0x43
OPAQUE = 0x44
COUNTER64 = 0x46
NO_SUCH_OBJECT = 0x80
NO_SUCH_INSTANCE = 0x81
END_OF_MIB_VIEW = 0x82

V1 = 0
V2C = 1


class _Exception:
    """The v2c exception values (noSuchObject, noSuchInstance, endOfMibView): singletons."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


NO_SUCH_OBJECT_VALUE = _Exception("noSuchObject")
NO_SUCH_INSTANCE_VALUE = _Exception("noSuchInstance")
END_OF_MIB_VIEW_VALUE = _Exception("endOfMibView")
EXCEPTIONS = {NO_SUCH_OBJECT: NO_SUCH_OBJECT_VALUE, NO_SUCH_INSTANCE: NO_SUCH_INSTANCE_VALUE,
              END_OF_MIB_VIEW: END_OF_MIB_VIEW_VALUE}


# --- OIDs ---------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=65536)  # column OIDs repeat every poll; a pure function of its input
def encode_oid(oid: str | tuple[int, ...]) -> bytes:
    """Dotted OID (or tuple of arcs) -> BER content bytes (no tag, no length)."""
    arcs = tuple(int(a) for a in oid.strip(".").split(".")) if isinstance(oid, str) else oid
    if len(arcs) < 2:
        msg = f"OID {oid!r} needs at least two arcs"
        raise BerError(msg)
    out = bytearray()
    for arc in (arcs[0] * 40 + arcs[1], *arcs[2:]):
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = []
        while arc:
            chunk.append(arc & 0x7F)
            arc >>= 7
        for i in range(len(chunk) - 1, 0, -1):
            out.append(chunk[i] | 0x80)
        out.append(chunk[0])
    return bytes(out)


def decode_arcs(data: bytes, start: int = 0) -> tuple[int, ...]:
    """Base-128 arcs from ``data[start:]`` without the first-two-arcs folding (for index suffixes)."""
    arcs = []
    value = 0
    for b in data[start:] if start else data:
        if b & 0x80:
            value = (value << 7) | (b & 0x7F)
        else:
            arcs.append((value << 7) | b)
            value = 0
    return tuple(arcs)


def decode_oid(data: bytes) -> tuple[int, ...]:
    """BER content bytes -> tuple of arcs."""
    arcs = decode_arcs(data)
    if not arcs:
        return ()
    first = arcs[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return head + arcs[1:]


def oid_str(oid: bytes | tuple[int, ...]) -> str:
    return ".".join(map(str, decode_oid(oid) if isinstance(oid, bytes) else oid))


# --- encoding -----------------------------------------------------------------------------------


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _len(len(body)) + body


def _int(value: int) -> bytes:
    return _tlv(INTEGER, value.to_bytes(max(1, (value.bit_length() + 8) // 8), "big", signed=True))


def encode_value(tag: int, value: object) -> bytes:
    """One value TLV (used by the simulator's responder and by tests)."""
    if tag == INTEGER:
        return _int(int(value))  # type: ignore[arg-type]
    if tag in (COUNTER32, GAUGE32, TIMETICKS, COUNTER64):
        v = int(value)  # type: ignore[arg-type]
        body = v.to_bytes(max(1, (v.bit_length() + 8) // 8), "big", signed=False)
        return _tlv(tag, body)
    if tag in (OCTET_STRING, OPAQUE, IP_ADDRESS):
        return _tlv(tag, value if isinstance(value, bytes) else str(value).encode())
    if tag == OBJECT_ID:
        return _tlv(OBJECT_ID, value if isinstance(value, bytes) else encode_oid(value))  # type: ignore[arg-type]
    if tag in (NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW):
        return bytes((tag, 0))
    msg = f"cannot encode tag 0x{tag:02x}"
    raise BerError(msg)


_NULL = b"\x05\x00"


def encode_request(version: int, community: bytes, pdu_tag: int, request_id: int,
                   oids: list[bytes], non_repeaters: int = 0, max_repetitions: int = 0,
                   values: list[bytes] | None = None) -> bytes:
    """A request (GET/GETNEXT/GETBULK) or, with ``values`` (encoded TLVs), a response message."""
    if values is None:
        vbs = b"".join(_tlv(0x30, _tlv(OBJECT_ID, o) + _NULL) for o in oids)
    else:
        vbs = b"".join(_tlv(0x30, _tlv(OBJECT_ID, o) + v) for o, v in zip(oids, values, strict=True))
    pdu = _tlv(pdu_tag, _int(request_id) + _int(non_repeaters) + _int(max_repetitions) + _tlv(0x30, vbs))
    return _tlv(0x30, _int(version) + _tlv(OCTET_STRING, community) + pdu)


# --- decoding -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Message:
    """A decoded v1/v2c message. For requests error_status/error_index carry non-repeaters/max-reps."""

    version: int
    community: bytes
    pdu_tag: int
    request_id: int
    error_status: int
    error_index: int
    oids: list[bytes]
    values: list[object]


def _read_len(data: bytes, i: int) -> tuple[int, int]:
    n = data[i]
    if n < 0x80:
        return n, i + 1
    k = n & 0x7F
    if not 0 < k <= 4:
        msg = f"bad length octet 0x{n:02x} at {i}"
        raise BerError(msg)
    return int.from_bytes(data[i + 1:i + 1 + k], "big"), i + 1 + k


def _read_int(data: bytes, i: int) -> tuple[int, int]:
    if data[i] != INTEGER:
        msg = f"expected INTEGER at {i}, got tag 0x{data[i]:02x}"
        raise BerError(msg)
    n, i = _read_len(data, i + 1)
    return int.from_bytes(data[i:i + n], "big", signed=True), i + n


def decode_message(data: bytes) -> Message:
    """Decode a whole v1/v2c message; raises BerError on anything malformed."""
    try:
        return _decode(data)
    except (IndexError, ValueError) as exc:
        if isinstance(exc, BerError):
            raise
        msg = f"truncated or malformed SNMP message: {exc}"
        raise BerError(msg) from exc


def _decode(data: bytes) -> Message:
    if data[0] != 0x30:
        msg = "not an SNMP message (no SEQUENCE)"
        raise BerError(msg)
    _, i = _read_len(data, 1)
    version, i = _read_int(data, i)
    if data[i] != OCTET_STRING:
        msg = "no community string"
        raise BerError(msg)
    n, i = _read_len(data, i + 1)
    community = data[i:i + n]
    i += n
    pdu_tag = data[i]
    _, i = _read_len(data, i + 1)
    request_id, i = _read_int(data, i)
    error_status, i = _read_int(data, i)
    error_index, i = _read_int(data, i)
    if data[i] != 0x30:
        msg = "no varbind list"
        raise BerError(msg)
    n, i = _read_len(data, i + 1)
    end = i + n
    if end > len(data):
        msg = "varbind list runs past the end of the message"
        raise BerError(msg)
    oids: list[bytes] = []
    values: list[object] = []
    add_oid = oids.append
    add_value = values.append
    from_bytes = int.from_bytes
    exceptions = EXCEPTIONS
    # the hot loop: one iteration per varbind, short-form lengths inline
    while i < end:
        if data[i] != 0x30:
            msg = f"expected varbind SEQUENCE at {i}"
            raise BerError(msg)
        n = data[i + 1]
        i += 2 if n < 0x80 else 2 + (n & 0x7F)
        if data[i] != OBJECT_ID:
            msg = f"expected OID at {i}"
            raise BerError(msg)
        n = data[i + 1]
        if n >= 0x80:
            n, j = _read_len(data, i + 1)
        else:
            j = i + 2
        add_oid(data[j:j + n])
        i = j + n
        tag = data[i]
        n = data[i + 1]
        if n >= 0x80:
            n, j = _read_len(data, i + 1)
        else:
            j = i + 2
        i = j + n
        if i > end:
            msg = "value runs past the end of the varbind list"
            raise BerError(msg)
        if tag == INTEGER:
            add_value(from_bytes(data[j:i], "big", signed=True))
        elif tag == OCTET_STRING:
            add_value(data[j:i])
        elif tag in (COUNTER32, GAUGE32, TIMETICKS, COUNTER64):
            add_value(from_bytes(data[j:i], "big"))
        elif tag in exceptions:
            add_value(exceptions[tag])
        elif tag == OBJECT_ID:
            add_value(decode_oid(data[j:i]))
        elif tag == NULL:
            add_value(None)
        else:  # IpAddress, Opaque: raw bytes
            add_value(data[j:i])
    return Message(version, community, pdu_tag, request_id, error_status, error_index, oids, values)
