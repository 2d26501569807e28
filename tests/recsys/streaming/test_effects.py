"""What a user's row implies (recsys.streaming.effects): counters by hand-counted windows, anchored at the
row's newest interaction, impressions not counted; the live vector is the user tower on the stored history
followed by the row's interactions, and follows the row, not the deliveries."""

import json

import numpy as np
import pytest

from recsys.streaming.effects import LiveVectors, counters
from recsys.streaming.state import UserEvents
from tests.recsys.streaming.conftest import parsed

NAMES = ["rt_view_1h", "rt_view_24h", "rt_click_1h", "rt_click_24h", "rt_booking_1h", "rt_booking_24h",
         "rt_events_1h", "rt_events_24h", "rt_last_event_seconds"]
T = 1_700_000_000.0


def row_of(*events) -> UserEvents:
    return UserEvents().merge([parsed("u1", i, t, kind) for i, (t, kind) in enumerate(events)])[0]


def test_counters_count_windows_up_to_the_newest_interaction():
    row = row_of((T - 90_000, "click"),  # older than 24 h: counted nowhere
                 (T - 7200, "view"), (T - 3600, "click"),  # exactly 1 h before: outside the 1 h window
                 (T - 60, "view"), (T - 30, "booking"), (T, "click"), (T + 500, "impression"))
    got = counters(row, NAMES)
    assert got == {"rt_view_1h": 1, "rt_view_24h": 2, "rt_click_1h": 1, "rt_click_24h": 2, "rt_booking_1h": 1,
                   "rt_booking_24h": 1, "rt_events_1h": 3, "rt_events_24h": 5, "rt_last_event_seconds": int(T)}


def test_counters_of_impressions_only_and_a_late_event():
    assert counters(row_of((T, "impression")), NAMES) == dict.fromkeys(NAMES, 0)
    row = row_of((T - 100, "view"), (T, "view"))
    late, added = row.merge([parsed("u1", 99, T - 50, "click")])
    assert added == 1 and late.last_seconds == row.last_seconds  # a late event: same newest time ...
    assert counters(late, NAMES)["rt_click_1h"] == 1 and counters(row, NAMES)["rt_click_1h"] == 0  # ... new counts
    with pytest.raises(ValueError, match="rt_what"):
        counters(row, ["rt_what"])


def test_live_vector_is_the_user_tower_on_stored_then_live_history(two_tower):
    model = two_tower
    vectors = LiveVectors(model, "v7")
    live = UserEvents().merge([parsed("u1", 1, T, "view", item="c"), parsed("u1", 2, T + 1, "impression", item="d"),
                               parsed("u1", 3, T + 2, "click", item="zz-unknown")])[0]
    new = UserEvents().merge([parsed("n1", 1, T, "click", item="d")])[0]
    assert vectors.histories(["u1", "n1"], [live, new]) == [["a", "b", "c"], ["d"]]  # unknown items skipped
    got = vectors.vectors(["u1", "n1"], [live, new])
    want = model.user_embeddings(["u1", "n1"], [["a", "b", "c", "zz-unknown"], ["d"]])  # the tower's own reading
    np.testing.assert_allclose(got, want, rtol=1e-6)
    stored = model.user_embeddings(["u1"])[0]
    assert not np.allclose(got[0], stored)  # the live view moved the vector
    np.testing.assert_allclose(vectors.vectors(["u1"], [UserEvents()])[0], stored, rtol=1e-6)
    long = UserEvents().merge([parsed("u1", i, T + i, "click", item="abcd"[i % 4]) for i in range(7)])[0]
    assert vectors.histories(["u1"], [long]) == [["a", "b", "c"]]  # the newest history_length only (i = 4, 5, 6)
    np.testing.assert_allclose(vectors.vectors(["u1"], [long])[0],
                               model.user_embeddings(["u1"], [["a", "b"] + list(long.item_ids)])[0], rtol=1e-6)
    again, _ = live.merge([parsed("u1", 1, T, "view", item="c")])  # a redelivery: same row, same vector
    assert again == live
    np.testing.assert_allclose(vectors.vectors(["u1"], [again])[0], got[0], rtol=1e-6)
    assert vectors.features(["n1"], [new])[0]["user_vector_model"] == "v7"


def test_live_vectors_from_a_bundle(two_tower, tmp_path):
    model = two_tower
    bundle = tmp_path / "bundle"
    model.save(bundle / "recommender" / "two_tower")
    (bundle / "bundle.json").write_text(json.dumps({"version": "3"}))
    loaded = LiveVectors.from_bundle(bundle)
    assert loaded.version == "3" and loaded.dim == 8
    (tmp_path / "plain" / "recommender").mkdir(parents=True)
    assert LiveVectors.from_bundle(tmp_path / "plain") is None  # no two-tower: no vector view


