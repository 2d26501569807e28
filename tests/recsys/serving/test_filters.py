"""Filter stage: seen items (per event type), blocked and unavailable items, impression fatigue, duplicates."""

import numpy as np
import pandas as pd
import pytest

from recsys.features.history import Catalog, History
from recsys.serving.filters import ImpressionLog, ItemSet, SeenPolicy

T0 = pd.Timestamp("2026-01-01", tz="UTC")


def _all_lists(rec, k=6, contexts=(None,)):
    """Every user's list from recommend (each context) and from recommend_batch."""
    out = {}
    for user in rec.history.users + ["nobody", "v99"]:
        for n, ctx in enumerate(contexts):
            out[(user, "single", n)] = [r["item_id"] for r in rec.recommend(user, k, context=ctx)]
    for user, block in rec.recommend_batch(rec.history.users + ["nobody"], k).groupby("user_id"):
        out[(user, "batch", 0)] = list(block.item_id)
    return out


def test_no_seen_blocked_or_unavailable_item_is_ever_returned(make, parts):
    rec = make({"filters": {"record_impressions": False}})
    rec.set_blocklist(["a0", "b0", "b5"])
    rec.set_unavailable(["a3"])
    seen = parts["known"].groupby("user_id").item_id.agg(set)
    lists = _all_lists(rec, contexts=(None, {"category": "ski"}, {"stars_min": 4}))
    assert len(lists) > 80
    for (user, _, _), items in lists.items():
        assert len(items) == len(set(items)), f"duplicate in {user}'s list {items}"
        assert not set(items) & (seen.get(user, set()) | {"a0", "b0", "b5", "a3"}), (user, items)
    assert any(lists.values())


def test_seen_policy_tells_event_types_apart_by_weight():
    catalog = Catalog(np.array(["x", "y", "z"], dtype=object), pd.DataFrame(index=range(3)))
    history = History(catalog, {"view": 1.0, "click": 2.0, "booking": 5.0})
    history.add(pd.DataFrame({"user_id": ["u"] * 3, "item_id": ["x", "y", "z"],
                              "event_type": ["view", "click", "booking"], "timestamp": [T0] * 3}))
    weights = history.event_weights
    assert list(SeenPolicy(weights).positions(history, "u")) == [0, 1, 2]
    assert list(SeenPolicy(weights, ["booking"]).positions(history, "u")) == [2]
    assert list(SeenPolicy(weights, ["click", "booking"]).positions(history, "u")) == [1, 2]
    with pytest.raises(ValueError, match="unknown event types"):
        SeenPolicy(weights, ["like"])
    with pytest.raises(ValueError, match="shares? a weight|shared"):
        SeenPolicy({"view": 1.0, "rating": 1.0}, ["rating"])


def test_allowing_re_views_brings_viewed_items_back(make, parts):
    # The tiny data is all clicks: excluding only bookings lets a clicked item be recommended again.
    strict = make({"filters": {"record_impressions": False}})
    lenient = make({"filters": {"record_impressions": False, "seen_event_types": ["booking", "purchase"]}})
    seen = set(parts["known"][parts["known"].user_id == "u1"].item_id)
    assert not {r["item_id"] for r in strict.recommend("u1", 10)} & seen
    assert {r["item_id"] for r in lenient.recommend("u1", 10)} & seen


def test_blocklist_file_reloads_when_it_changes(tmp_path, make):
    path = tmp_path / "blocked.txt"
    path.write_text("# hotels under review\na1\n")
    rec = make({"filters": {"blocklist_file": str(path), "blocklist_check_seconds": 0,
                            "record_impressions": False}})
    assert rec.blocklist.ids == {"a1"}
    path.write_text("a2\nb7  # fraud\n")
    import os
    os.utime(path, ns=(1, 1))  # a different mtime even within the filesystem's timestamp granularity
    assert rec.reload_blocklist() and rec.blocklist.ids == {"a2", "b7"}
    path.unlink()
    assert rec.reload_blocklist() and rec.blocklist.ids == frozenset()


def test_item_set_masks_known_ids_and_keeps_unknown_ones():
    s = ItemSet(3, {"x": 0, "y": 1, "z": 2}, ids=["y", "later"])
    assert list(s.positions) == [1] and s.mask.tolist() == [False, True, False]
    s.grow(4, {"x": 0, "y": 1, "z": 2, "later": 3})
    assert list(s.positions) == [1, 3]


def test_impression_log_counts_within_window_and_engagement_clears():
    log = ImpressionLog(max_impressions=2, window_seconds=100)
    log.record("u", [1, 2], now=0)
    assert list(log.fatigued("u", now=10)) == []
    log.record("u", [1], now=50)
    assert list(log.fatigued("u", now=60)) == [1]  # item 1 shown twice within 100 s
    assert list(log.fatigued("u", now=120)) == []  # the first impression left the window
    log.engage("u", [1])
    assert list(log.fatigued("u", now=60)) == []


def test_recommend_records_impressions_and_fatigue_suppresses_until_engagement(make):
    rec = make({"filters": {"max_impressions": 2, "impression_window_hours": 1}})
    now = [1000.0]
    rec.clock = lambda: now[0]
    first = [r["item_id"] for r in rec.recommend("u2", 3)]
    assert [r["item_id"] for r in rec.recommend("u2", 3)] == first  # shown once: still eligible
    third = [r["item_id"] for r in rec.recommend("u2", 3)]
    assert not set(third) & set(first)  # shown twice without engagement: suppressed
    batch = rec.recommend_batch(["u2"], 3)
    assert list(batch.item_id) == [r["item_id"] for r in rec.variant(filters={"record_impressions": False}).recommend("u2", 3)]
    now[0] += 2 * 3600  # past the window: back
    assert [r["item_id"] for r in rec.recommend("u2", 3)] == first


def test_feedback_impressions_count_and_engagement_clears(make):
    rec = make({"filters": {"max_impressions": 1, "record_impressions": False}})
    rec.clock = lambda: 5000.0
    top = rec.recommend("u3", 1)[0]["item_id"]
    rec.record_feedback([{"user_id": "u3", "item_id": top, "event_type": "impression", "timestamp": 4990.0}])
    assert top not in [r["item_id"] for r in rec.recommend("u3", 5)]
    rec.impressions.engage("u3", rec.catalog.positions([top]))
    assert rec.recommend("u3", 1)[0]["item_id"] == top


def test_unavailable_attribute_column_is_honoured(make):
    rec = make({"filters": {"record_impressions": False}})
    original = rec.catalog.attributes  # the catalogue is shared with the module's generator: restore it
    try:
        rec.catalog.attributes = original.assign(available=[i != "a4" for i in rec.catalog.item_ids])
        rec.unavailable.set(rec._unavailable_attribute())
        assert rec.unavailable.ids == {"a4"}
        assert all("a4" not in [r["item_id"] for r in rec.recommend(u, 10)] for u in rec.history.users)
    finally:
        rec.catalog.attributes = original
