"""The batch feature job's definitions on a hand-made log, values derived by hand, and on random logs full of
edge cases against a brute-force reference (DuckDB engine; test_spark_parity.py holds Spark to its tables)."""

import numpy as np
import pandas as pd
import pytest

from recsys.features.batch import run_duckdb_job, snapshot_bounds
from recsys.features.definitions import ITEM_POPULARITY, USER_ACTIVITY, USER_AFFINITY, FeatureSpec
from recsys.features.offline import read_view

D = pd.Timestamp("2025-03-10", tz="UTC")  # day 0 of the log
H = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)


def hand_log():
    events = [("u1", "a", D + 10 * H, "view"), ("u1", "a", D + 11 * H, "click"),
              ("u1", "b", D + DAY + 9 * H, "view"),
              ("u1", "b", D + 2 * DAY, "booking"),  # exactly midnight: belongs to day 2, not to the T = day 2 row
              ("u1", "c", D + 5 * DAY + 12 * H, "view"),
              ("u2", "a", D + DAY + 12 * H, "view")]
    interactions = pd.DataFrame(events, columns=["user_id", "item_id", "timestamp", "event_type"])
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "category": ["beach", "beach|city", None],
                          "price": [100.0, 300.0, np.nan]})
    return interactions, items


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    interactions, items = hand_log()
    spec = FeatureSpec(windows_days=(7, 1), attributes=("category", "destination"), numeric=("price",))
    spec = spec.resolve(interactions, items)
    out = tmp_path_factory.mktemp("features")
    run_duckdb_job(interactions, items, spec, out)
    return spec, {view: read_view(out, view) for view in (USER_ACTIVITY, USER_AFFINITY, ITEM_POPULARITY)}


def row(frame, key, entity, day):
    hit = frame[(frame[key] == entity) & (frame.event_timestamp == D + day * DAY)]
    assert len(hit) == 1, f"expected one row for {entity} at day {day}, got {len(hit)}"
    return hit.iloc[0]


def test_spec_keeps_what_the_data_has(tables):
    spec, _ = tables
    assert spec.windows_days == (1, 7)
    assert spec.event_types == ("view", "click", "booking")
    assert spec.ratios == {"ctr": ("click", "view"), "conversion": ("booking", "click")}
    assert spec.attributes == ("category",) and spec.vocabularies == {"category": ("beach", "city")}
    ratings = pd.DataFrame({"event_type": ["rating"]})
    only = FeatureSpec().resolve(ratings, pd.DataFrame({"item_id": ["x"], "genres": ["A|B"], "year": [1995]}))
    assert only.event_types == ("rating",) and only.ratios == {} and only.attributes == () and only.numeric == ()
    assert "user_rating_7d" in only.names(USER_ACTIVITY) and "user_view_7d" not in only.names(USER_ACTIVITY)


def test_a_snapshot_counts_only_events_before_it(tables):
    _, t = tables
    u = t[USER_ACTIVITY]
    first = row(u, "user_id", "u1", 1)  # events before day 1: view + click of a on day 0
    assert (first.user_view_1d, first.user_click_1d, first.user_booking_1d, first.user_events_1d) == (1, 1, 0, 2)
    assert first.user_ctr_1d == 1.0 and first.user_conversion_1d == 0.0
    assert first.user_days_since_last_event == pytest.approx(13 / 24)  # day 1 00:00 - day 0 11:00
    assert first.user_price_mean_1d == 100.0
    second = row(u, "user_id", "u1", 2)  # the midnight booking of day 2 is not in it
    assert (second.user_view_1d, second.user_click_1d, second.user_booking_1d) == (1, 0, 0)
    assert (second.user_view_7d, second.user_click_7d, second.user_booking_7d, second.user_events_7d) == (2, 1, 0, 3)
    assert second.user_ctr_1d == 0.0 and np.isnan(second.user_conversion_1d)  # no click in the day: no ratio
    assert second.user_ctr_7d == 0.5 and second.user_conversion_7d == 0.0
    assert second.user_price_mean_1d == 300.0 and second.user_price_mean_7d == pytest.approx(500 / 3)
    assert second.user_days_since_last_event == pytest.approx(15 / 24)
    third = row(u, "user_id", "u1", 3)  # the booking counts from the day-3 snapshot on
    assert (third.user_booking_1d, third.user_events_1d, third.user_booking_7d) == (1, 1, 1)
    assert np.isnan(third.user_ctr_1d) and np.isnan(third.user_conversion_1d) and third.user_conversion_7d == 1.0
    sixth = row(u, "user_id", "u1", 6)  # view of c (no price, no category) on day 5
    assert np.isnan(sixth.user_price_mean_1d) and sixth.user_price_mean_7d == 200.0
    assert sixth.user_events_7d == 5


def test_rows_span_the_longest_window_and_stop_at_the_last_snapshot(tables):
    _, t = tables
    u = t[USER_ACTIVITY]
    days = lambda user: sorted(((u[u.user_id == user].event_timestamp - D) / DAY).astype(int))  # noqa: E731
    assert days("u1") == [1, 2, 3, 4, 5, 6]  # last event day 5: snapshots stop at day 6 (its end)
    assert days("u2") == [2, 3, 4, 5, 6]
    idle = row(u, "user_id", "u2", 3)
    assert (idle.user_view_1d, idle.user_view_7d) == (0, 1)
    assert set(u.date) == {str((D + k * DAY).date()) for k in range(1, 7)}


def test_affinity_shares_per_window(tables):
    _, t = tables
    a = t[USER_AFFINITY]
    np.testing.assert_allclose(row(a, "user_id", "u1", 1).user_category_share_1d, [1.0, 0.0])
    np.testing.assert_allclose(row(a, "user_id", "u1", 2).user_category_share_1d, [1.0, 1.0])  # b is beach|city
    np.testing.assert_allclose(row(a, "user_id", "u1", 2).user_category_share_7d, [1.0, 1 / 3], rtol=1e-6)
    np.testing.assert_allclose(row(a, "user_id", "u1", 6).user_category_share_1d, [0.0, 0.0])  # c: no category
    assert row(a, "user_id", "u2", 3).user_category_share_1d is None  # no event in that day at all


def test_item_popularity(tables):
    _, t = tables
    i = t[ITEM_POPULARITY]
    first = row(i, "item_id", "a", 1)
    assert (first.item_view_1d, first.item_click_1d, first.item_ctr_1d) == (1, 1, 1.0)
    second = row(i, "item_id", "a", 2)  # u2's view on day 1
    assert (second.item_view_1d, second.item_click_1d, second.item_view_7d, second.item_ctr_7d) == (1, 0, 2, 0.5)
    assert "item_price_mean_7d" not in i.columns


def test_as_of_caps_the_snapshots(tmp_path):
    interactions, items = hand_log()
    assert snapshot_bounds(interactions.timestamp) == (int(D.value // 86400e9) + 1, int(D.value // 86400e9) + 6)
    first, last = snapshot_bounds(interactions.timestamp, D + 3 * DAY + 5 * H)
    assert last == int(D.value // 86400e9) + 3  # the latest midnight at or before "now"
    spec = FeatureSpec().resolve(interactions, items)
    run_duckdb_job(interactions, items, spec, tmp_path, last)
    table = read_view(tmp_path, USER_ACTIVITY)
    assert table.event_timestamp.max() == D + 3 * DAY
    assert row(table, "user_id", "u1", 3).user_booking_1d == 1  # the booking at day 2 00:00 < "now"
    with pytest.raises(ValueError, match="no snapshot to compute"):  # "now" before the first day ends
        run_duckdb_job(interactions, items, spec, tmp_path / "early", first - 1)


def test_bad_input_is_refused(tmp_path):
    interactions, items = hand_log()
    with pytest.raises(ValueError, match="resolve"):
        run_duckdb_job(interactions, items, FeatureSpec(), tmp_path)
    with pytest.raises(ValueError, match="whole days"):
        FeatureSpec(windows_days=(0,))
    spec = FeatureSpec().resolve(interactions, items)
    with pytest.raises(ValueError, match=r"item_id must be unique.*\['b'\]"):
        run_duckdb_job(interactions, pd.concat([items, items.iloc[[1]]]), spec, tmp_path)
