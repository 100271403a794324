"""The wire protocol: any bytes, any JSON, and only ProtocolError comes out."""
from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from agent_reporters import pool
from connmon_agent import protocol
from connmon_agent.errors import ProtocolError

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=30,
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def report(**fields: Any) -> dict[str, Any]:
    msg = {"t": "report", "seq": 1, "full": True, "program": "p", "dropped": 0, "gone": [],
           "pools": [pool("1", checked_out=1, held=[{"id": 1, "age": 0.5, "holder": "h", "kind": "thread", "where": None}])]}
    msg.update(fields)
    return msg


def frame_of(obj: Any) -> bytes:
    body = json.dumps(obj).encode()
    return struct.pack("!I", len(body)) + body


# -- framing ------------------------------------------------------------------


@FAST
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_raise_only_protocol_error(data):
    dec = protocol.FrameDecoder(4096)
    try:
        for msg in dec.feed(data):
            assert isinstance(msg, dict) and msg["t"] in protocol.TYPES
    except ProtocolError:
        pass


@FAST
@given(st.lists(st.binary(max_size=300), max_size=10))
def test_arbitrary_chunks_after_a_valid_frame_raise_only_protocol_error(chunks):
    dec = protocol.FrameDecoder(4096)
    assert dec.feed(protocol.encode({"t": "query"})) == [{"t": "query"}]
    try:
        for chunk in chunks:
            dec.feed(chunk)
    except ProtocolError:
        pass


@FAST
@given(st.lists(json_values, min_size=1, max_size=5), st.data())
def test_frames_split_anywhere_decode_to_the_same_messages(values, data):
    msgs = [{"t": "state", "v": v} for v in values]
    stream = b"".join(frame_of(m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    dec = protocol.FrameDecoder(1 << 20)
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        out.extend(dec.feed(stream[a:b]))
    assert out == json.loads(json.dumps(msgs))
    assert dec.pending == 0


@FAST
@given(json_values)
def test_any_json_value_in_a_frame_decodes_or_raises_protocol_error(value):
    try:
        [msg] = protocol.iter_frames(frame_of(value))
    except ProtocolError:
        return
    assert isinstance(msg, dict) and msg["t"] in protocol.TYPES


@given(st.integers(protocol.MAX_REPORT_FRAME + 1, 2**32 - 1))
def test_oversized_frame_is_refused_from_its_header_alone(size):
    dec = protocol.FrameDecoder(protocol.MAX_REPORT_FRAME)
    with pytest.raises(ProtocolError, match="exceeds the maximum"):
        dec.feed(struct.pack("!I", size))


@FAST
@given(st.data())
def test_truncated_frame_is_a_protocol_error(data):
    whole = protocol.encode(report())
    cut = data.draw(st.integers(1, len(whole) - 1))
    with pytest.raises(ProtocolError, match="truncated"):
        list(protocol.iter_frames(whole[:cut]))


@pytest.mark.parametrize("body", [
    b"[" * 100000 + b"]" * 100000,      # deep nesting: RecursionError inside json
    b"1" * 5000,                        # an int too long to convert
    b"\xff\xfe\x00",                    # not UTF-8
    b'{"t": NaN}',
    b"",
])
def test_pathological_bodies(body):
    with pytest.raises(ProtocolError):
        protocol.decode_body(body)


def test_empty_frame_is_refused():
    with pytest.raises(ProtocolError, match="empty"):
        protocol.FrameDecoder().feed(b"\0\0\0\0")


def test_encode_refuses_what_json_cannot_hold():
    with pytest.raises(ProtocolError):
        protocol.encode({"t": "state", "x": object()})


# -- hello and versions -----------------------------------------------------------


@FAST
@given(st.dictionaries(st.text(max_size=10), json_values, max_size=6), json_values, json_values)
def test_validate_hello_with_arbitrary_values(extra, proto, role):
    msg = dict(extra)
    msg.update(t="hello", proto=proto, role=role)
    try:
        protocol.validate_hello(msg)
    except ProtocolError:
        return
    assert msg["role"] in protocol.ROLES
    try:
        version = protocol.negotiate(msg)
    except ProtocolError as err:
        assert "this side speaks" in str(err)
    else:
        assert msg["proto"][0] <= version <= msg["proto"][1]
        assert protocol.MIN_PROTOCOL_VERSION <= version <= protocol.PROTOCOL_VERSION


@given(st.integers(-5, 50), st.integers(0, 50))
def test_negotiate_answers_older_and_newer_ranges(lo, width):
    msg = protocol.validate_hello({"t": "hello", "proto": [lo, lo + width], "role": "console"})
    if lo <= protocol.PROTOCOL_VERSION <= lo + width:
        assert protocol.negotiate(msg) == protocol.PROTOCOL_VERSION
    else:
        with pytest.raises(ProtocolError, match=rf"{lo}\.\.{lo + width}"):
            protocol.negotiate(msg)


def test_hello_builder_is_valid_and_negotiates():
    msg = protocol.hello("reporter", program="x", pid=1, interval=1.0)
    assert protocol.negotiate(protocol.validate_hello(msg)) == protocol.PROTOCOL_VERSION


# -- reports -----------------------------------------------------------------------


def test_a_realistic_report_is_valid():
    assert protocol.validate_report(report()) is not None


@FAST
@given(json_values)
def test_validate_report_with_an_arbitrary_value(value):
    msg = value if isinstance(value, dict) else {"t": "report", "pools": value}
    try:
        protocol.validate_report(msg)
    except ProtocolError:
        pass


PATHS = [
    ("seq",), ("full",), ("program",), ("dropped",), ("pools",), ("gone",),
    ("pools", 0), ("pools", 0, "id"), ("pools", 0, "name"), ("pools", 0, "target"),
    ("pools", 0, "config"), ("pools", 0, "config", "size"), ("pools", 0, "config", "class"),
    ("pools", 0, "gauges"), ("pools", 0, "gauges", "checked_out"), ("pools", 0, "counters"),
    ("pools", 0, "wait"), ("pools", 0, "checkouts"), ("pools", 0, "checkouts", 0),
    ("pools", 0, "checkouts", 0, "age"), ("pools", 0, "checkouts", 0, "id"),
    ("pools", 0, "checkouts", 0, "holder"), ("pools", 0, "checkouts_total"), ("pools", 0, "hold"),
    ("pools", 0, "hold", "bounds"), ("pools", 0, "hold", "counts"), ("pools", 0, "hold", "sum"),
    ("pools", 0, "hold", "count"),
]


@FAST
@given(st.sampled_from(PATHS), json_values | st.integers(-(2**70), 2**70) | st.floats())
def test_any_field_of_a_report_replaced_by_any_value(path, value):
    msg = json.loads(json.dumps(report(wait={"sum": 0.1, "max": 0.1})))
    target: Any = msg
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    try:
        protocol.validate_report(msg)
    except ProtocolError:
        return
    # Accepted: then every number the agent sums or shifts is bounded and finite.
    text = json.dumps(msg, allow_nan=False)
    assert json.loads(text) == msg


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), 10**400, True, "1", None])
def test_checkout_age_must_be_a_finite_number(value):
    msg = report()
    msg["pools"][0]["checkouts"][0]["age"] = value
    with pytest.raises(ProtocolError):
        protocol.validate_report(msg)


@pytest.mark.parametrize("path", [("wait", "max"), ("wait", "sum"), ("hold", "sum")])
def test_an_int_too_big_for_a_float_among_sums_is_a_protocol_error(path):
    # Summed with a float it would raise OverflowError, not ProtocolError.
    msg = report()
    msg["pools"][0]["wait"] = {"sum": 0.1, "max": 0.1}
    msg["pools"][0][path[0]][path[1]] = 10**400
    with pytest.raises(ProtocolError):
        protocol.validate_report(msg)


@pytest.mark.parametrize("value", [-1, 2**64, True, 1.5, "3"])
def test_gauges_and_counters_are_bounded_non_negative_ints(value):
    msg = report()
    msg["pools"][0]["counters"]["checkouts"] = value
    with pytest.raises(ProtocolError):
        protocol.validate_report(msg)


def test_known_good_caches_do_not_let_bad_values_through():
    good = report()
    protocol.validate_report(good)  # config and bounds now known-good
    bad = report()
    bad["pools"][0]["hold"]["bounds"][0] = float("nan")
    with pytest.raises(ProtocolError):
        protocol.validate_report(bad)
    bad = report()
    bad["pools"][0]["config"]["timeout"] = float("inf")
    with pytest.raises(ProtocolError):
        protocol.validate_report(bad)
    # Mutating a validated message afterwards cannot poison the cache.
    good["pools"][0]["config"]["size"] = [1]
    again = report()
    again["pools"][0]["config"]["size"] = [1]
    with pytest.raises(ProtocolError):
        protocol.validate_report(again)


def test_limits_on_sizes():
    with pytest.raises(ProtocolError):
        protocol.validate_report(report(pools=[pool(str(i)) for i in range(protocol.MAX_POOLS + 1)]))
    many = report()
    many["pools"][0]["checkouts"] = [{"id": i, "age": 0.1} for i in range(protocol.MAX_CHECKOUTS + 1)]
    with pytest.raises(ProtocolError):
        protocol.validate_report(many)
    long = report(program="x" * (protocol.MAX_STR + 1))
    with pytest.raises(ProtocolError):
        protocol.validate_report(long)


def test_unknown_keys_from_a_newer_client_are_kept():
    msg = report(future={"a": [1]})
    msg["pools"][0]["future_gauge"] = {"x": 1}
    assert protocol.validate_report(msg)["future"] == {"a": [1]}


@FAST
@given(json_values)
def test_validate_subscribe_with_arbitrary_interval(value):
    try:
        interval = protocol.validate_subscribe({"t": "subscribe", "interval": value})
    except ProtocolError:
        return
    assert 0.1 <= interval <= 60.0


# -- the orjson decoder (protocol.use_fast_json) --------------------------------

#: Integers orjson keeps exact; beyond them it gives floats (the one
#: documented difference from the standard library).
_ORJSON_INTS = (-(2**63), 2**64 - 1)


def _beyond_64_bits_as_floats(value: Any) -> Any:
    if type(value) is int and not _ORJSON_INTS[0] <= value <= _ORJSON_INTS[1]:
        return float(value)
    if isinstance(value, list):
        return [_beyond_64_bits_as_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: _beyond_64_bits_as_floats(v) for k, v in value.items()}
    return value


def _decoded(body: bytes, fast: bool) -> tuple[str, Any]:
    """("ok", message) or ("refused", None), with the decoder asked for."""
    pytest.importorskip("orjson")
    try:
        assert protocol.use_fast_json() if fast else protocol.use_stdlib_json() is None
        return "ok", protocol.decode_body(body)
    except ProtocolError:
        return "refused", None
    finally:
        protocol.use_stdlib_json()


def _validated(msg: Any) -> str:
    try:
        protocol.validate_report(msg)
        return "valid"
    except ProtocolError:
        return "invalid"


big_ints = st.integers(-(2**70), 2**70) | st.sampled_from([2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63) - 1])
bodies = st.one_of(
    st.binary(max_size=300),
    st.recursive(json_scalars | big_ints, lambda inner: st.lists(inner, max_size=4)
                 | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=20)
    .map(lambda v: json.dumps({"t": "report", "v": v}).encode()),
    # JSON the standard library accepts and orjson refuses
    st.sampled_from([b'{"t":"report","v":NaN}', b'{"t":"report","v":-Infinity}', b'{"t":"report","v":1e400}',
                     b'{"t":"report","v":"\\ud800"}', '{"t":"report"}'.encode("utf-16"),
                     b'{"t":"report","v":' + b"[" * 2000 + b"]" * 2000 + b"}"]),
)


@FAST
@given(bodies)
@example(b'{"t":"report","":[Infinity,18446744073709551616]}')
@example(b'{"t":"report","v":[18446744073709551616,-9223372036854775809,18446744073709551615]}')
def test_the_orjson_decoder_accepts_and_refuses_what_the_standard_library_does(body):
    """Same acceptance, same messages, but for integers beyond 64 bits
    (floats from orjson, exact ints from the standard library; exact ints
    when orjson refused the body and the standard library decoded it)."""
    fast, slow = _decoded(body, True), _decoded(body, False)
    assert fast[0] == slow[0]
    if fast[0] == "ok":
        got = json.dumps(fast[1], sort_keys=True)
        assert got in (json.dumps(slow[1], sort_keys=True),
                       json.dumps(_beyond_64_bits_as_floats(slow[1]), sort_keys=True))


@FAST
@given(st.sampled_from(PATHS), json_values | big_ints | st.floats())
def test_a_report_is_valid_with_orjson_exactly_when_it_is_with_the_standard_library(path, value):
    """Where connmon reads a number, both decoders' values pass or fail
    validation alike, big integers included."""
    msg = json.loads(json.dumps(report(wait={"sum": 0.1, "max": 0.1})))
    target: Any = msg
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    body = json.dumps(msg).encode()
    fast, slow = _decoded(body, True), _decoded(body, False)
    assert fast[0] == slow[0]
    if fast[0] == "ok":
        assert _validated(fast[1]) == _validated(slow[1])


@pytest.mark.parametrize("body", [b'{"t":"hello","proto":[1,100000000000000000000],"role":"reporter"}',
                                  b'{"t":"hello","proto":[1,2],"role":"reporter","pid":100000000000000000000}'])
def test_a_hello_with_a_huge_integer_is_refused_by_both_decoders(body):
    for fast in (True, False):
        outcome, msg = _decoded(body, fast)
        assert outcome == "ok"
        with pytest.raises(ProtocolError):
            protocol.validate_hello(msg)
