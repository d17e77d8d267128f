"""The v2c BER codec: round trips, agreement with pysnmp's encoder/decoder, and malformed input."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder as pyasn1_decoder
from pyasn1.codec.ber import encoder as pyasn1_encoder
from pysnmp.proto import api, rfc1902

from dcim.agents.snmp import ber
from dcim.errors import BerError

oids = st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20).flatmap(
    lambda tail: st.tuples(st.integers(0, 2), st.integers(0, 39)).map(lambda head: (*head, *tail)))

values = st.one_of(
    st.tuples(st.just(ber.INTEGER), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just(ber.GAUGE32), st.integers(0, 2**32 - 1)),
    st.tuples(st.just(ber.COUNTER32), st.integers(0, 2**32 - 1)),
    st.tuples(st.just(ber.COUNTER64), st.integers(0, 2**64 - 1)),
    st.tuples(st.just(ber.TIMETICKS), st.integers(0, 2**32 - 1)),
    st.tuples(st.just(ber.OCTET_STRING), st.binary(max_size=300)),
    st.tuples(st.just(ber.OBJECT_ID), oids),
    st.tuples(st.just(ber.END_OF_MIB_VIEW), st.none()),
)


def _plain(tag: int, value: object) -> object:
    return ber.END_OF_MIB_VIEW_VALUE if tag == ber.END_OF_MIB_VIEW else value


@given(st.lists(st.tuples(oids, values), max_size=40), st.integers(0, 2**31 - 1), st.binary(max_size=40))
@settings(max_examples=200, deadline=None)
def test_response_round_trip(vbs, request_id: int, community: bytes) -> None:
    data = ber.encode_request(ber.V2C, community, ber.RESPONSE, request_id, [ber.encode_oid(o) for o, _ in vbs],
                              values=[ber.encode_value(t, v) for _, (t, v) in vbs])
    msg = ber.decode_message(data)
    assert (msg.version, msg.community, msg.pdu_tag, msg.request_id) == (ber.V2C, community, ber.RESPONSE, request_id)
    assert [ber.decode_oid(o) for o in msg.oids] == [o for o, _ in vbs]
    assert msg.values == [_plain(t, v) for _, (t, v) in vbs]


@given(oids)
def test_oid_bytes_round_trip_and_order(oid) -> None:
    assert ber.decode_oid(ber.encode_oid(oid)) == oid
    assert ber.oid_str(ber.encode_oid(oid)) == ".".join(map(str, oid))


@given(oids, oids)
def test_raw_oid_bytes_do_not_sort_like_arcs_but_prefixes_hold(a, b) -> None:
    # the walk relies on prefixes only (column membership); ordering is checked on decoded arcs
    ea, eb = ber.encode_oid(a), ber.encode_oid(b)
    if b[: len(a)] == a:
        assert eb.startswith(ea)
    if eb.startswith(ea) and len(ea) < len(eb) and len(a) >= 2:
        assert b[: len(a)] == a


async def test_walk_stops_on_a_non_increasing_oid() -> None:
    from dcim.agents.snmp.transport import walk_columns
    from dcim.errors import DeviceError

    col = "1.3.6.1.4.1.318.1.1.26.9.4.3.1.6"
    answers = [[f"{col}.256", f"{col}.16384"], [f"{col}.300"]]

    async def bulk(request_oids, reps):  # noqa: ANN001, ANN202
        got = answers.pop(0)
        return [ber.encode_oid(o) for o in got], [1] * len(got)

    with pytest.raises(DeviceError, match="non-increasing"):
        await walk_columns(bulk, [col], 2, device="pdu-x")


@given(st.lists(oids, min_size=1, max_size=10), st.integers(0, 2**31 - 1), st.integers(0, 100))
@settings(max_examples=100, deadline=None)
def test_our_getbulk_is_what_pysnmp_decodes(request_oids, request_id: int, max_reps: int) -> None:
    data = ber.encode_request(ber.V2C, b"public", ber.GETBULK, request_id,
                              [ber.encode_oid(o) for o in request_oids], 0, max_reps)
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    msg, rest = pyasn1_decoder.decode(data, asn1Spec=p.Message())
    assert rest == b""
    pdu = p.apiMessage.get_pdu(msg)
    assert bytes(p.apiMessage.get_community(msg)) == b"public"
    assert int(p.apiBulkPDU.get_request_id(pdu)) == request_id
    assert int(p.apiBulkPDU.get_max_repetitions(pdu)) == max_reps
    assert [tuple(o) for o, _ in p.apiBulkPDU.get_varbinds(pdu)] == list(request_oids)


def test_pysnmp_response_decodes_to_the_same_values() -> None:
    p = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = p.ResponsePDU()
    p.apiPDU.set_defaults(pdu)
    p.apiPDU.set_request_id(pdu, 77)
    p.apiPDU.set_varbinds(pdu, [
        ((1, 3, 6, 1, 4, 1, 318, 1, 1, 26, 4, 3, 1, 5, 1), rfc1902.Integer32(-1)),
        ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 1), rfc1902.Counter64(2**64 - 1)),
        ((1, 3, 6, 1, 2, 1, 1, 2, 0), rfc1902.ObjectIdentifier((1, 3, 6, 1, 4, 1, 318))),
        ((1, 3, 6, 1, 2, 1, 1, 5, 0), rfc1902.OctetString(b"pdu-a")),
        ((1, 3, 6, 1, 2, 1, 1, 9, 0), p.apiPDU._end_of_mib_view if hasattr(p.apiPDU, "_end_of_mib_view")
         else __import__("pysnmp.proto.rfc1905", fromlist=["x"]).endOfMibView),
    ])
    msg = p.Message()
    p.apiMessage.set_defaults(msg)
    p.apiMessage.set_community(msg, "public")
    p.apiMessage.set_pdu(msg, pdu)
    ours = ber.decode_message(pyasn1_encoder.encode(msg))
    assert ours.request_id == 77
    assert ours.values == [-1, 2**64 - 1, (1, 3, 6, 1, 4, 1, 318), b"pdu-a", ber.END_OF_MIB_VIEW_VALUE]


@given(st.binary(max_size=200))
@settings(max_examples=300, deadline=None)
def test_garbage_raises_only_ber_error(data: bytes) -> None:
    try:
        ber.decode_message(data)
    except BerError:
        pass


def test_truncated_message_is_a_ber_error() -> None:
    data = ber.encode_request(ber.V2C, b"public", ber.RESPONSE, 1, [ber.encode_oid("1.3.6.1.2.1.1.5.0")],
                              values=[ber.encode_value(ber.OCTET_STRING, b"x" * 50)])
    for cut in (3, 10, len(data) - 5):
        with pytest.raises(BerError):
            ber.decode_message(data[:cut])


async def test_walk_without_progress_is_an_error_not_a_loop() -> None:
    from dcim.agents.snmp.transport import walk_columns
    from dcim.errors import DeviceError

    cols = ["1.3.6.1.2.1.2.2.1.8", "1.3.6.1.2.1.2.2.1.13"]
    calls = []

    async def bulk(request_oids, reps):  # noqa: ANN001, ANN202
        calls.append(list(request_oids))
        # an agent that answers two columns with one varbind (past the first column), never the second's
        return [ber.encode_oid("1.3.6.1.2.1.2.2.1.9.1")], [1]

    with pytest.raises(DeviceError, match="no progress"):
        await walk_columns(bulk, cols, 5, device="switch-1")
    assert len(calls) == 1
