"""The connmon wire protocol: bytes in, validated messages out.

No sockets here (transport modules own those) and nothing but the standard
library, because this module is imported inside users' applications.

Framing
-------
Every message is one frame: a 4-byte big-endian unsigned length ``N``
followed by ``N`` bytes of UTF-8 JSON holding one object. The object's
``"t"`` key names the message type. A frame longer than the receiver's
maximum is refused before its body is read.

Conversation
------------
The connecting side speaks first with ``hello``::

    {"t": "hello", "proto": [1, 1], "role": "reporter", "version": "0.1.0",
     "program": "nova-api", "host": "web1", "pid": 1234, "interval": 1.0}

``proto`` is the range of protocol versions the sender speaks. The agent
answers ``welcome`` with the version it picked, or ``error`` (code
``"version"``) naming both ranges, and closes; neither side ever crashes on
a version it does not know. ``pid`` and ``host`` are informational: a local
agent identifies a reporter by ``SO_PEERCRED`` and the process start time.

Then, by role:

* reporter → agent: ``report`` (see :func:`validate_report`), one per
  interval. ``full: true`` carries every pool of the process, complete;
  ``full: false`` carries only the pools that changed, each with only the
  keys that changed since the connection last carried it, plus ``gone``
  (ids of pools that no longer exist). A full report is sent on every
  (re)connect and at least every ``FULL_EVERY`` reports, so an agent that
  restarted is whole again after one interval.
* console → agent: ``query`` (answered by one ``state``) or ``subscribe``
  with an ``interval`` (answered by a ``state`` every interval until the
  connection closes).

Any malformed or hostile input raises :class:`ProtocolError` and nothing
else.
"""
from __future__ import annotations

import json
import struct
from typing import Any, Iterator

from .errors import ProtocolError

PROTOCOL_VERSION = 1
#: The oldest protocol version this code still speaks.
MIN_PROTOCOL_VERSION = 1

HEADER = struct.Struct("!I")
HEADER_SIZE = HEADER.size

#: Largest frame a reporter may send (one process's state).
MAX_REPORT_FRAME = 1 << 20
#: Largest frame on console and peer links (a whole host or cluster).
MAX_STATE_FRAME = 256 << 20

#: Reporters send a full report at least this often (in reports).
FULL_EVERY = 30

ROLES = ("reporter", "console", "peer")
TYPES = ("hello", "welcome", "error", "report", "query", "subscribe", "state",
         # cluster: authentication handshake (auth.py) and peer sync (agent/federation.py)
         "challenge", "proof", "sync", "resync")

#: Limits that keep a hostile or buggy client from growing the agent.
MAX_STR = 1024
MAX_POOLS = 256
MAX_CHECKOUTS = 100
MAX_BUCKETS = 64
#: Integers on the wire (ids, counters, gauges) stay within a signed 64-bit
#: range, and other numbers within +-MAX_NUMBER, so sums stay finite and
#: encodable whatever a hostile client sends.
MAX_INT = (1 << 63) - 1
MAX_NUMBER = 1e15

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
_loads = json.loads
#: The C scanner behind json.loads, called directly: a report costs one C
#: call instead of loads' Python layers (encoding detection, whitespace).
_scan = json.JSONDecoder().scan_once
#: orjson's loads once :func:`use_fast_json` switched it on, else None.
_fast_loads: Any = None


def use_fast_json() -> bool:
    """Decode frames with orjson, when it is installed (a dependency of
    connmon where it has wheels); True if it is now in use.

    Called by the agent and the console (``connmon-agent`` commands), never
    inside applications: a reporter decodes one welcome per connection.
    orjson decodes a report in about a third of the standard library's
    time (``benchmarks/bench_agent_ingest.py``). A body it refuses goes
    through the standard library too, so what is accepted, and every
    error, is the standard library's. One difference remains, and is
    harmless: a JSON integer beyond the 64-bit range becomes a float, not
    an exact int; validation refuses both wherever connmon reads a number
    (every integer it reads is bounded), so only a key this version does
    not know can keep one, as a float.
    """
    global _fast_loads
    try:
        from orjson import loads
    except ImportError:
        return False
    _fast_loads = loads
    return True


def json_decoder() -> str:
    """The name of the decoder in use: ``"orjson"`` or ``"stdlib"``."""
    return "stdlib" if _fast_loads is None else "orjson"


def use_stdlib_json() -> None:
    """Decode frames with the standard library only (the default)."""
    global _fast_loads
    _fast_loads = None


def encode(msg: dict[str, Any]) -> bytes:
    """One frame holding ``msg``; raises ProtocolError if it cannot be encoded."""
    try:
        body = _dumps(msg).encode("utf-8")
    except (TypeError, ValueError) as err:
        raise ProtocolError(f"cannot encode message: {err}") from err
    return HEADER.pack(len(body)) + body


def decode_body(body: bytes) -> dict[str, Any]:
    """The message in one frame body, its type checked (not its fields)."""
    fast = _fast_loads
    if fast is not None:
        try:
            msg = fast(body)
        except ValueError:  # orjson.JSONDecodeError; the standard library says why
            pass
        else:
            if type(msg) is dict and msg.get("t") in TYPES:
                return msg
    try:
        try:
            # The common case: UTF-8 holding one object, nothing around it.
            text = str(body, "utf-8")
            msg, end = _scan(text, 0)
            if end != len(text):
                msg = _loads(body)
        except (StopIteration, UnicodeDecodeError):
            msg = _loads(body)  # json's full rules, and its error message
    except (ValueError, RecursionError) as err:
        # UnicodeDecodeError and JSONDecodeError are both ValueErrors.
        raise ProtocolError(f"frame is not valid JSON: {err}") from None
    if not isinstance(msg, dict):
        raise ProtocolError("frame does not hold a JSON object")
    t = msg.get("t")
    if t not in TYPES:
        raise ProtocolError(f"unknown message type {_short(t)}")
    return msg


class FrameSplitter:
    """Splits one stream into frame bodies (bytes).

    ``split()`` bytes as they arrive; it returns the bodies of the complete
    frames and keeps any partial frame. A frame over ``max_size`` is refused
    from its header alone (:meth:`oversized`), before its body is read.
    After an error the stream is out of step and must be closed.
    """

    __slots__ = ("max_size", "_buf")

    def __init__(self, max_size: int = MAX_REPORT_FRAME) -> None:
        self.max_size = max_size
        self._buf = bytearray()

    def split(self, data: bytes) -> list[bytes]:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos = 0
        n = len(buf)
        while n - pos >= HEADER_SIZE:
            (size,) = HEADER.unpack_from(buf, pos)
            if size > self.max_size:
                self.oversized(size)
            if size == 0:
                raise ProtocolError("empty frame")
            end = pos + HEADER_SIZE + size
            if end > n:
                break
            out.append(bytes(buf[pos + HEADER_SIZE : end]))
            pos = end
        if pos:
            del buf[:pos]
        return out

    def oversized(self, size: int) -> None:
        """Raise for a frame of ``size`` bytes, over the maximum."""
        raise ProtocolError(f"frame of {size} bytes exceeds the maximum of {self.max_size}")

    @property
    def pending(self) -> int:
        """Bytes of an incomplete frame held."""
        return len(self._buf)


class FrameDecoder(FrameSplitter):
    """Incremental frame decoder for one stream: ``feed()`` bytes as they
    arrive, get the complete messages (:func:`decode_body`)."""

    __slots__ = ()

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        if not self._buf and len(data) > HEADER_SIZE:
            # The common case, one whole frame per read: no copying.
            (size,) = HEADER.unpack_from(data)
            if size + HEADER_SIZE == len(data) and 0 < size <= self.max_size:
                return [decode_body(data[HEADER_SIZE:])]
        return [decode_body(body) for body in self.split(data)]


def iter_frames(data: bytes, max_size: int = MAX_STATE_FRAME) -> Iterator[dict[str, Any]]:
    """Every message in ``data``, which must end on a frame boundary."""
    dec = FrameDecoder(max_size)
    yield from dec.feed(data)
    if dec.pending:
        raise ProtocolError(f"truncated frame ({dec.pending} bytes left over)")


# -- hello / version negotiation -------------------------------------------


def hello(role: str, **fields: Any) -> dict[str, Any]:
    from . import __version__

    msg = {
        "t": "hello",
        "proto": [MIN_PROTOCOL_VERSION, PROTOCOL_VERSION],
        "role": role,
        "version": __version__,
    }
    msg.update(fields)
    return msg


def validate_hello(msg: dict[str, Any]) -> dict[str, Any]:
    """Check a hello's fields; returns it (with defaults filled in)."""
    if msg.get("t") != "hello":
        raise ProtocolError(f"expected hello, got {_short(msg.get('t'))}")
    proto = msg.get("proto")
    if (
        not isinstance(proto, list)
        or len(proto) != 2
        or not all(_is_int(v) for v in proto)
        or proto[0] > proto[1]
    ):
        raise ProtocolError("hello.proto must be [min, max] protocol versions")
    role = msg.get("role")
    if role not in ROLES:
        raise ProtocolError(f"unknown role {_short(role)}")
    for key in ("version", "program", "host", "service", "node"):
        if key in msg:
            _str(msg, key, "hello")
    if "pid" in msg and not _is_int(msg["pid"]):
        raise ProtocolError("hello.pid must be an integer")
    for key in ("interval", "started"):
        if key in msg:
            _num(msg, key, "hello")
    return msg


def negotiate(msg: dict[str, Any]) -> int:
    """The protocol version to speak with the sender of ``msg`` (a hello).

    Raises ProtocolError whose message names both sides' ranges when there
    is none; the caller sends it back as an ``error`` before closing.
    """
    lo, hi = msg["proto"]
    best = min(hi, PROTOCOL_VERSION)
    if best < max(lo, MIN_PROTOCOL_VERSION):
        raise ProtocolError(
            f"peer speaks protocol {lo}..{hi}, this side speaks "
            f"{MIN_PROTOCOL_VERSION}..{PROTOCOL_VERSION}"
        )
    return best


def welcome(version: int, **fields: Any) -> dict[str, Any]:
    from . import __version__

    msg = {"t": "welcome", "proto": version, "version": __version__}
    msg.update(fields)
    return msg


def error(code: str, message: str) -> dict[str, Any]:
    return {"t": "error", "code": code, "message": message}


# -- reports ----------------------------------------------------------------

#: Gauges of one pool (current values).
GAUGES = ("checked_out", "checked_in", "connections", "detached", "overflow", "waiters")
#: Counters of one pool (monotonic since the pool was first seen in this process).
COUNTERS = (
    "checkouts",
    "checkins",
    "connects",
    "disconnects",
    "invalidated_hard",
    "invalidated_soft",
    "timeouts",
    "commits",
    "rollbacks",
    "transactions",
)
CONFIG_KEYS = ("class", "size", "max_overflow", "timeout", "recycle", "pre_ping")


def pool_capacity(config: dict[str, Any]) -> int | None:
    """``size + max_overflow`` of a reported pool config; None when the
    pool is unbounded: NullPool, ``max_overflow < 0`` (QueuePool's "no
    limit"), or no integer ``size`` (StaticPool, an unknown pool class)."""
    size = config.get("size")
    if type(size) is not int or size < 0 or config.get("class") == "NullPool":
        return None
    overflow = config.get("max_overflow", 0)
    if overflow is None:
        overflow = 0
    if type(overflow) is not int or overflow < 0:
        return None
    return size + overflow


def validate_report(msg: dict[str, Any]) -> dict[str, Any]:
    """Check a report in place and return it.

    Shape of a full report (``full: true``: every pool, each one complete)::

        {"t": "report", "seq": 7, "full": true, "program": "nova-api",
         "dropped": 0, "gone": ["2"],
         "pools": [{
            "id": "1",                       # unique within the process
            "name": "Engine(mysql+pymysql://nova@db/nova)",
            "target": "mysql+pymysql://nova@db:3306/nova",   # no password
            "config": {"class": "QueuePool", "size": 5, "max_overflow": 10,
                       "timeout": 30.0, "recycle": -1, "pre_ping": false},
            "gauges": {"checked_out": 1, "checked_in": 2, "connections": 3,
                       "detached": 0, "overflow": 0, "waiters": 0},
            "counters": {"checkouts": 40, ...every name in COUNTERS...},
            "wait": {"sum": 0.002, "max": 0.001},   # seconds waiting in checkout
            "checkouts": [{"id": 1, "age": 0.25, "holder": "MainThread",
                           "kind": "thread", "thread": "MainThread",
                           "where": "app.py:12 in handler"}],
            "checkouts_total": 1,     # may exceed len(checkouts) (capped)
            "hold": {"bounds": [0.001, ...], "counts": [..., overflow],
                     "sum": 1.5, "count": 40},
         }]}

    In a full report ``name`` and ``target`` are required, and ``hold`` (when
    present) has its ``bounds``; the agent replaces the process's pools with
    the report's.

    A delta report (``full: false``) lists only the pools that changed since
    the previous report on the same connection, plus in ``gone`` the ids of
    pools that no longer exist. Each pool record holds its ``id`` and only
    the top-level keys whose value changed since that pool was last sent on
    the connection; the agent merges the record into the pool it holds, key
    by key, and a key a record leaves out keeps its previous value:

    * ``name``, ``target``, ``config``: in the pool's first record on the
      connection (so in every full report), later only if changed;
    * ``gauges``, ``counters``: only the names whose value changed, the
      others keep theirs;
    * ``wait``, ``checkouts_total``: the whole object or value, when it
      changed;
    * ``checkouts``: the whole list, when it changed other than by ages
      growing (a checkout came or went, or its holder changed). A list
      left out is kept and its ages are brought forward from the moment the
      agent received it;
    * ``hold``: when it changed, ``{"changed": [index, count, ...], "sum":
      1.6, "count": 41}``, the new counts of the buckets that changed
      (indexes into ``counts``); the whole histogram (``bounds`` and
      ``counts``) only when its bounds changed.

    For example ``{"id": "1", "counters": {"checkouts": 41, "checkins": 40},
    "hold": {"changed": [3, 17], "sum": 1.6, "count": 41}}``. A delta record
    for a pool the agent does not hold must be complete (``name``,
    ``target``, a whole ``hold``); one that is not, or whose changed buckets
    do not fit the histogram held, is ignored and counted
    (``agent.stats.ignored_pools``), not an error. A full report is sent on
    every (re)connect and at least every ``FULL_EVERY`` reports, so an agent
    is whole after one interval.

    Ages are seconds relative to the moment of sending, so clock skew
    between hosts does not matter. Unknown keys are kept (a newer client);
    missing gauges and counters read as 0. Every malformed value raises
    ProtocolError naming it, and nothing else is raised.
    """
    seq = msg.get("seq")
    if type(seq) is not int or not 0 <= seq <= MAX_INT:
        raise ProtocolError("report.seq must be a non-negative integer")
    full = msg.get("full")
    if type(full) is not bool:
        raise ProtocolError("report.full must be true or false")
    if "program" in msg:
        _str(msg, "program", "report")
    pools = msg.get("pools")
    if type(pools) is not list or len(pools) > MAX_POOLS:
        raise ProtocolError(f"report.pools must be a list of at most {MAX_POOLS}")
    # Every integer of the report is checked at once after the loop, and
    # every other number too (see the comment below the function).
    ints = [msg.get("dropped", 0), msg.get("internal_errors", 0)]
    numbers: list[Any] = []
    changed_lists = []
    for pool in pools:
        if type(pool) is not dict:
            raise ProtocolError("a pool must be an object")
        get = pool.get
        pid = get("id")
        if type(pid) is not str or not 0 < len(pid) <= 64:
            raise ProtocolError("pool.id must be a short non-empty string")
        if full or not pool.keys().isdisjoint(_NAME_KEYS):
            _check_pool_names(pool, full)
        config = get("config", _EMPTY)
        if config is not _EMPTY and (type(config) is not dict or (config and config not in _good_configs)):
            _validate_config(config)
        gauges = get("gauges", _EMPTY)
        counters = get("counters", _EMPTY)
        if type(gauges) is not dict or type(counters) is not dict:
            raise ProtocolError("pool.gauges and pool.counters must be objects")
        if not (gauges.keys() <= _KNOWN_NAMES and counters.keys() <= _KNOWN_NAMES):
            _check_names(gauges, counters)
        ints += gauges.values()
        ints += counters.values()
        hold = get("hold")
        if hold is not None:
            if type(hold) is not dict:
                raise ProtocolError("pool.hold must be an object")
            if full or "counts" in hold:
                counts = hold.get("counts")
                if type(counts) is not list:
                    raise ProtocolError("pool.hold.counts must be a list")
                _validate_bounds(hold.get("bounds"), counts)
            else:  # a delta's changed buckets: [index, count, ...]
                counts = hold.get("changed")
                if type(counts) is not list or len(counts) > 2 * MAX_BUCKETS + 2 or len(counts) % 2:
                    raise ProtocolError("pool.hold needs counts or, in a delta, changed [index, count, ...] pairs")
                if "bounds" in hold:
                    raise ProtocolError("pool.hold has bounds but no counts")
                changed_lists.append(counts)
            ints += counts
            ints.append(hold.get("count", 0))
            numbers.append(hold.get("sum"))
        if "checkouts_total" in pool:
            ints.append(pool["checkouts_total"])
        wait = get("wait")
        if wait is not None:
            if type(wait) is not dict:
                raise ProtocolError("pool.wait must be an object")
            numbers += (wait.get("sum"), wait.get("max"))
        checkouts = get("checkouts", _NO_ITEMS)
        if checkouts:
            _validate_checkouts(checkouts)
        elif type(checkouts) is not list:
            raise ProtocolError(f"pool.checkouts must be a list of at most {MAX_CHECKOUTS}")
    if not (set(map(type, ints)) <= _INT_ONLY and min(ints) >= 0 and max(ints) <= MAX_INT):
        _name_bad_int(msg)
    if numbers and not _numbers_ok(numbers):
        raise ProtocolError("pool.hold.sum, pool.wait.sum and pool.wait.max must be finite numbers")
    for counts in changed_lists:
        if counts and max(counts[::2]) > MAX_BUCKETS:
            raise ProtocolError(f"pool.hold.changed holds a bucket index above {MAX_BUCKETS}")
    gone = msg.get("gone", _NO_ITEMS)
    if type(gone) is not list or len(gone) > MAX_POOLS:
        raise ProtocolError("report.gone must be a list of pool ids")
    if gone and (not set(map(type, gone)) <= _STR_ONLY or max(map(len, gone)) > 64):
        raise ProtocolError("report.gone holds pool ids (strings)")
    return msg


# Validation runs once per report in the agent (10,000 a second at the target
# scale), so it checks values in bulk with C builtins (set(map(type, ...)),
# min, max, sum) rather than with a Python call per value: every integer of
# a pool (gauges, counters, histogram counts) in one pass, every number in
# another. When a bulk check fails, a slower pass finds the value to name.
# Semantics are those of plain checks: exact types (no bools for ints),
# bounded magnitudes, no NaN/inf.
_INT_ONLY = {int}
_STR_ONLY = {str}
_NUMBER_TYPES = {int, float}
_CONFIG_TYPES = {bool, int, float, str, type(None)}
_OPT_STR_TYPES = {str, type(None)}
_CHECKOUT_STRS = ("holder", "kind", "thread", "where", "request", "task")
_NAME_KEYS = ("name", "target")
_KNOWN_NAMES = frozenset(GAUGES) | frozenset(COUNTERS)
_EMPTY: dict[str, Any] = {}
_NO_ITEMS: list[Any] = []


def _ints_ok(values: Any, low: int = 0) -> bool:
    """All exact ints in [low, MAX_INT] (vacuously true when empty)."""
    return not values or (set(map(type, values)) <= _INT_ONLY and min(values) >= low and max(values) <= MAX_INT)


def _numbers_ok(values: Any) -> bool:
    """All ints/floats within +-MAX_NUMBER; NaN and infinities refused."""
    if not values:
        return True
    if not (set(map(type, values)) <= _NUMBER_TYPES and min(values) >= -MAX_NUMBER and max(values) <= MAX_NUMBER):
        return False
    # Summed only once bounded: a float plus a huge int overflows.
    total = sum(values)  # NaN if any NaN is in there
    return total == total


class _Known:
    """A few recently validated values (copies), compared by equality.

    Every process sends the same pool config and histogram bounds in its
    full reports; checking equality with a known-good copy costs a C-level
    compare instead of a walk over the values. Bounded (``size`` entries)
    and holds private copies, so nothing a client sends later can change
    them.
    """

    __slots__ = ("items", "size")

    def __init__(self, size: int = 8) -> None:
        self.items: list[Any] = []
        self.size = size

    def __contains__(self, value: Any) -> bool:
        return value in self.items

    def add(self, value: Any) -> None:
        if len(self.items) >= self.size:
            del self.items[0]
        self.items.append(value.copy())


_good_configs = _Known()
_good_bounds = _Known()


def _check_pool_names(pool: dict[str, Any], full: bool) -> None:
    """``name`` and ``target``: required in a full report, else optional."""
    for key in _NAME_KEYS:
        if full or key in pool:
            v = pool.get(key)
            if type(v) is not str or len(v) > MAX_STR:
                raise ProtocolError(f"pool.{key} must be a string of at most {MAX_STR}")


def _validate_config(config: Any) -> None:
    if type(config) is not dict or len(config) > 32:
        raise ProtocolError("pool.config must be an object")
    values = config.values()
    types = set(map(type, values))
    if not types <= _CONFIG_TYPES or max(map(len, config)) > 64:
        raise ProtocolError("pool.config holds a bad key or value")
    if (float in types or int in types) and not _numbers_ok([v for v in values if type(v) in _NUMBER_TYPES]):
        raise ProtocolError(f"pool.config numbers must be finite, within +-{MAX_NUMBER:g}")
    if str in types and max(len(v) for v in values if type(v) is str) > MAX_STR:
        raise ProtocolError("pool.config holds a string that is too long")
    _good_configs.add(config)


def _name_bad_int(msg: dict[str, Any]) -> None:
    """Raise naming the integer of report ``msg`` that failed the bulk check
    (its pools are known to be objects with the right containers)."""
    for key in ("dropped", "internal_errors"):
        if not _ints_ok([msg.get(key, 0)]):
            raise ProtocolError(f"report.{key} must be a non-negative integer")
    for pool in msg["pools"]:
        for section in ("gauges", "counters"):
            if not _ints_ok(list(pool.get(section, _EMPTY).values())):
                raise ProtocolError(f"pool.{section} must map names to non-negative integers")
        hold = pool.get("hold")
        if hold is not None:
            if not _ints_ok(hold.get("counts", hold.get("changed"))):
                raise ProtocolError("pool.hold.counts (or changed) must be non-negative integers")
            if not _ints_ok([hold.get("count", 0)]):
                raise ProtocolError("pool.hold.count must be a non-negative integer")
        if not _ints_ok([pool.get("checkouts_total", 0)]):
            raise ProtocolError("pool.checkouts_total must be a non-negative integer")
    raise ProtocolError("a report holds an integer out of range")  # not reached


def _check_names(gauges: dict[str, Any], counters: dict[str, Any]) -> None:
    """Names a newer client may add: at most 64 per section, each short."""
    for section, values in (("gauges", gauges), ("counters", counters)):
        if len(values) > 64 or (values and max(map(len, values)) > 64):
            raise ProtocolError(f"pool.{section} must map at most 64 short names to integers")


def _validate_bounds(bounds: Any, counts: list[Any]) -> None:
    if type(bounds) is not list or len(bounds) > MAX_BUCKETS or len(counts) != len(bounds) + 1:
        raise ProtocolError("pool.hold needs bounds and one more count than bounds")
    if bounds not in _good_bounds:
        if not _numbers_ok(bounds):
            raise ProtocolError("pool.hold.bounds must be finite numbers")
        _good_bounds.add(bounds)


def _validate_checkouts(checkouts: Any) -> None:
    if type(checkouts) is not list or len(checkouts) > MAX_CHECKOUTS:
        raise ProtocolError(f"pool.checkouts must be a list of at most {MAX_CHECKOUTS}")
    for co in checkouts:
        if type(co) is not dict:
            raise ProtocolError("a checkout must be an object")
        v = co.get("id")
        if type(v) is not int or not -MAX_INT <= v <= MAX_INT:
            raise ProtocolError("checkout.id must be an integer")
        v = co.get("age")
        if type(v) not in _NUMBER_TYPES or not -MAX_NUMBER <= v <= MAX_NUMBER:
            raise ProtocolError("checkout.age must be a finite number")
        for key in _CHECKOUT_STRS:
            v = co.get(key)
            if v is not None and (type(v) is not str or len(v) > MAX_STR):
                raise ProtocolError(f"checkout.{key} must be a string of at most {MAX_STR}")


def validate_subscribe(msg: dict[str, Any]) -> float:
    """The update interval a subscribe asks for, clamped to [0.1, 60]."""
    interval = msg.get("interval", 1.0)
    if type(interval) not in (int, float) or not -MAX_NUMBER <= interval <= MAX_NUMBER:
        raise ProtocolError("subscribe.interval must be a number")
    return min(max(float(interval), 0.1), 60.0)


# -- helpers ----------------------------------------------------------------


def _is_int(v: Any) -> bool:
    return type(v) is int and -MAX_INT <= v <= MAX_INT


def _str(d: dict[str, Any], key: str, where: str, required: bool = False) -> None:
    v = d.get(key)
    if v is None and not required:
        return
    if not isinstance(v, str) or len(v) > MAX_STR:
        raise ProtocolError(f"{where}.{key} must be a string of at most {MAX_STR}")


def _num(d: dict[str, Any], key: str, where: str, required: bool = True) -> None:
    v = d.get(key)
    if v is None and not required:
        return
    # Comparisons, not math.isfinite: a huge int would overflow it, and NaN
    # fails both comparisons.
    if type(v) not in (int, float) or not -MAX_NUMBER <= v <= MAX_NUMBER:
        raise ProtocolError(f"{where}.{key} must be a finite number")


def _short(v: Any) -> str:
    text = repr(v)
    return text if len(text) <= 40 else text[:37] + "..."
