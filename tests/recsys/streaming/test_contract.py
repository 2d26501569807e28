"""The event contract (recsys.streaming.events) and the online row (recsys.streaming.state.UserEvents):
field-named validation errors, and merges that are idempotent and order-independent."""

import json

import pytest

from recsys.streaming.events import InvalidEvent, encode, make_event, parse
from recsys.streaming.state import UserEvents


def event(i, seconds, event_type="click", user="u1"):
    return parse(make_event(user, f"h{i}", event_type, event_id=f"e{i}", timestamp=None) | {"timestamp": seconds})


@pytest.mark.parametrize("raw, field", [
    (b"{", ""), (b"[1]", ""), (b"\xff", ""),
    (b'{"event_id":"a","user_id":"u","item_id":"i","event_type":"teleport","timestamp":1}', "event_type"),
    (b'{"event_id":"a","user_id":"","item_id":"i","event_type":"click","timestamp":1}', "user_id"),
    (b'{"user_id":"u","item_id":"i","event_type":"click","timestamp":1}', "event_id"),
    (b'{"event_id":"a","user_id":"u","item_id":"i","event_type":"click","timestamp":"2025-01-01T00:00:00"}',
     "timestamp"),
    (b'{"event_id":"a","user_id":"u","item_id":"i","event_type":"click","timestamp":"soon"}', "timestamp"),
    (b'{"v":2,"event_id":"a","user_id":"u","item_id":"i","event_type":"click","timestamp":1}', "v"),
])
def test_invalid_events_name_the_field(raw, field):
    with pytest.raises(InvalidEvent) as error:
        parse(raw)
    assert error.value.field == field


def test_round_trip_keeps_extra_fields_and_reads_both_time_forms():
    sent = make_event("u1", "h1", "booking", event_id="x", variant="treatment", value=120.5)
    got = parse(encode(sent))
    assert (got.event_id, got.user_id, got.item_id, got.event_type, got.value) == ("x", "u1", "h1", "booking", 120.5)
    assert got.to_dict()["variant"] == "treatment" and got.to_dict()["timestamp"] == sent["timestamp"]
    iso = parse({**sent, "timestamp": "2025-01-01T01:00:00+01:00"})
    assert iso.seconds == parse({**sent, "timestamp": 1735689600}).seconds == 1735689600.0
    assert "v" not in {k for k in sent if k not in got.to_dict()}  # version written and read back


def test_merge_is_idempotent_order_independent_and_bounded():
    events = [event(i, 100.0 + i) for i in range(6)]
    row, added = UserEvents().merge(events[:4], max_events=5)
    assert added == 4 and row.event_ids == ("e0", "e1", "e2", "e3")
    again, added = row.merge(events[:4], max_events=5)  # a redelivered batch
    assert added == 0 and again == row
    shuffled, _ = UserEvents().merge([events[3], events[0], events[2], events[1]], max_events=5)
    assert shuffled == row
    full, added = row.merge(events[2:], max_events=5)  # overlap: only e4, e5 are new; oldest trimmed
    assert added == 2 and full.event_ids == ("e1", "e2", "e3", "e4", "e5") and len(full) == 5
    late, added = full.merge([event(9, 101.5)], max_events=5)  # an old event takes its place in time
    assert added == 1 and late.event_ids == ("e9", "e2", "e3", "e4", "e5")
    stale, added = late.merge([event(8, 50.0)], max_events=5)  # older than the whole window: no effect
    assert added == 0 and stale == late and stale.stamp == late.stamp


# ---- decode (the consumer's fast path) agrees with parse on every message ----
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from recsys.streaming.events import StreamEvent, decode  # noqa: E402

IDS = st.one_of(st.text(max_size=3), st.text(min_size=255, max_size=258), st.integers(), st.none(), st.just("u1"))
TIMES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 2 * 10**10), st.booleans(),
                  st.sampled_from(["2026-11-29T10:00:00+00:00", "2026-11-29T10:00:00Z", "2026-11-29 10:00:00Z",
                                   "2026-11-29T10:00:00.1234567Z", "2026-11-29T10:00:00", "2026-02-30T00:00:00Z",
                                   "2026-11-29T23:59:60Z", "20261129T100000Z", "2026-11-29T10:00:00+0130",
                                   "1700000000", "soon", "2026-11-29T10:00:00.5-07:00"]))
VALUES = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-2**60, 2**60),
                   st.booleans(), st.just("1.5"))
MESSAGES = st.fixed_dictionaries(
    {"event_id": IDS, "user_id": IDS, "item_id": IDS, "timestamp": TIMES,
     "event_type": st.one_of(st.sampled_from(["click", "view", "impression", "rating", "teleport", "Click"]),
                             st.integers())},
    optional={"v": st.one_of(st.just(1), st.just(2), st.just(1.0), st.booleans()), "value": VALUES,
              "session_id": st.one_of(st.none(), IDS), "variant": st.text(max_size=4), "n": st.integers()})


def outcome(fn, raw):
    try:
        return fn(raw)
    except InvalidEvent as error:
        return ("invalid", error.field, str(error))


@settings(max_examples=400, deadline=None)
@given(MESSAGES)
def test_decode_agrees_with_parse(message):
    raw = json.dumps(message, allow_nan=True).encode()
    assert outcome(decode, raw) == outcome(lambda r: StreamEvent.of(parse(r)), raw)


@pytest.mark.parametrize("raw", [b'{"event_id":"a","event_id":"b","user_id":"u","item_id":"i","event_type":"view",'
                                 b'"timestamp":1}', b'{"event_id":"\\ud800","user_id":"u","item_id":"i",'
                                 b'"event_type":"view","timestamp":1}', b"\xef\xbb\xbf{}", b"[]", b"null", b"{"])
def test_decode_agrees_with_parse_on_odd_bytes(raw):
    assert outcome(decode, raw) == outcome(lambda r: StreamEvent.of(parse(r)), raw)


def test_booleans_and_non_finite_numbers_are_rejected():
    base = {"event_id": "a", "user_id": "u", "item_id": "i", "event_type": "click", "timestamp": 1}
    for bad, field in (({"timestamp": True}, "timestamp"), ({"v": True}, "v"), ({"value": float("nan")}, "value")):
        with pytest.raises(InvalidEvent) as error:
            decode(json.dumps({**base, **bad}).encode())
        assert error.value.field == field


def reference_merge(row: UserEvents, events, max_events):
    """The row's definition, written plainly: unique by event_id (first copy), by (time, id), newest kept."""
    rows = {i: (s, i, it, t) for s, i, it, t in zip(row.seconds, row.event_ids, row.item_ids, row.event_types)}
    for e in events:
        rows.setdefault(e.event_id, (float(e.seconds), e.event_id, e.item_id, e.event_type))
    kept = sorted(rows.values(), key=lambda r: (r[0], r[1]))[-max_events:]
    return UserEvents(*(tuple(r[k] for r in kept) for k in (1, 2, 3, 0)))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 12)), max_size=40),
       st.lists(st.tuples(st.integers(0, 30), st.integers(0, 12)), max_size=40), st.integers(1, 25))
def test_merge_matches_its_definition(first, second, max_events):
    def evs(pairs):
        return [event(i, 100.0 + t) for i, t in pairs]

    row, _ = UserEvents().merge(evs(first), max_events)
    assert row == reference_merge(UserEvents(), evs(first), max_events)
    merged, added = row.merge(evs(second), max_events)
    assert merged == reference_merge(row, evs(second), max_events)
    assert added == len(set(merged.event_ids) - set(row.event_ids))
    assert merged.merge(evs(first) + evs(second), max_events) == (merged, 0)  # redelivery: nothing new
