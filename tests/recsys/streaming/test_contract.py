"""The event contract (recsys.streaming.events) and the online row (recsys.streaming.state.UserEvents):
field-named validation errors, and merges that are idempotent and order-independent."""

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
