"""OnlineEventStore against the real Feast online stores (sqlite, and Redis on a loopback redis-server):
rows written are read back exactly, absent users read as empty, any user-keyed push view round-trips."""

from datetime import datetime, timezone

from recsys.features.definitions import USER_COUNTERS
from recsys.streaming.events import make_event, parse
from recsys.streaming.state import EMPTY, UserEvents


def test_rows_round_trip(store):
    events = [parse(make_event("u7", f"h{i}", "view", event_id=f"x{i}") | {"timestamp": 1e9 + i}) for i in range(50)]
    row, _ = UserEvents().merge(events, max_events=40)
    assert store.write({"u7": row, "u8": EMPTY}) == 1  # an empty row is not written
    got = store.read(["nobody", "u7", "u8"])
    assert got == [EMPTY, row, EMPTY]
    assert got[1].item_ids[-1] == "h49" and got[1].seconds[0] == 1e9 + 10


def test_other_push_views(store):
    names = [f.name for f in store._view(USER_COUNTERS).features]
    values = {name: i for i, name in enumerate(names)}
    when = datetime(2025, 1, 2, tzinfo=timezone.utc)
    store.write_view(USER_COUNTERS, {"u9": (when, values)})
    (ts, got), (none_ts, none) = store.read_view(USER_COUNTERS, ["u9", "u10"])
    assert got == values and ts == when
    assert none is None or all(v is None for v in none.values())
