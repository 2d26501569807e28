"""The synthetic marketplace after its training period (recsys.data.shifts, recsys.data.windows): the
training data is what it always was, later days are the same whichever range asks for them, and each
planted shift changes what it says it changes."""

import pandas as pd
import pytest

from recsys.data.shifts import Shift, generate_days, travel_timeline
from recsys.data.synthetic import generate_travel_data
from recsys.data.windows import EventSource

P = {"n_users": 300, "n_items": 80, "n_events": 9000, "seed": 5, "days": 60}
ORIGIN = pd.Timestamp("2025-01-01", tz="UTC")


def day(n: int) -> pd.Timestamp:
    return ORIGIN + pd.Timedelta(days=n)


def test_training_period_and_later_days_are_consistent():
    base = generate_travel_data(**P)
    cut = travel_timeline(P, day(30), day(60)).interactions
    expected = base.interactions[base.interactions.timestamp >= day(30)].reset_index(drop=True)
    pd.testing.assert_frame_equal(cut, expected)
    two_weeks = generate_days(P, 60, 14).interactions
    second = generate_days(P, 67, 7).interactions
    pd.testing.assert_frame_equal(two_weeks[two_weeks.timestamp >= day(67)].reset_index(drop=True)
                                  .drop(columns="session_id"), second.drop(columns="session_id"))
    per_day = len(two_weeks) / 14
    assert 0.8 * P["n_events"] / P["days"] < per_day < 1.25 * P["n_events"] / P["days"]  # the daily rate goes on
    assert generate_days(P, 60, 7).interactions.equals(generate_days(P, 60, 7).interactions)  # deterministic
    with pytest.raises(ValueError):
        generate_days(P, 59, 2)  # inside the training period


def test_launches_add_hotels_that_take_a_share_of_bookings():
    before = generate_days(P, 60, 7, {"kind": "launches", "after_days": 7})
    after = generate_days(P, 67, 14, {"kind": "launches", "after_days": 7})
    new = set(after.items.item_id) - set(before.items.item_id)
    assert len(new) == round(0.15 * P["n_items"]) and not set(before.interactions.item_id) & new
    bookings = after.interactions[after.interactions.event_type == "booking"]
    assert bookings.item_id.isin(new).mean() > 0.1  # 15% of the catalogue, boosted: about a fifth of bookings


def test_season_turn_flips_destination_popularity():
    def share(kind):
        data = generate_days(P, 60, 14, {"kind": kind})
        merged = data.interactions.merge(data.items, on="item_id")
        return (merged.category == "ski").mean()
    ratio = share("season") / share("none")
    assert ratio > 2 or ratio < 0.5  # ski hotels swap their season with the beach


def test_price_change_moves_prices_and_taste_rotation_moves_categories():
    none = generate_days(P, 60, 14, "none")
    price = generate_days(P, 60, 14, {"kind": "price"})
    moved = price.items.set_index("item_id").price / none.items.set_index("item_id").price
    assert set(moved.round(2)) == {1.0, 1.6} and (price.items.price_tier >= none.items.price_tier).all()
    taste = generate_days(P, 60, 14, {"kind": "taste", "strength": 3.0})
    mix = [d.interactions.merge(d.items, on="item_id").category.value_counts(normalize=True) for d in (none, taste)]
    assert (mix[0] - mix[1]).abs().sum() > 0.1  # category mix of what users interact with changed


def test_shift_settings_are_checked():
    assert Shift.parse({"kind": "taste"}).share == 0.5
    for bad in ({"kind": "meteor"}, {"kind": "season", "strenght": 2}):
        with pytest.raises(ValueError):
            Shift.parse(bad)


def test_event_source_ranges():
    source = EventSource("synthetic", {**P, "shift": {"kind": "none"}})
    assert source.end() is None  # the simulated world never runs out
    empty = source.read(day(61), day(61))
    assert empty.interactions.empty and len(empty.items) == P["n_items"]
    week = source.read(day(58), day(65)).interactions
    assert week.timestamp.min() >= day(58) and week.timestamp.max() < day(65)
    assert (week.timestamp < day(60)).any() and (week.timestamp >= day(60)).any()  # spans both periods


def test_event_source_from_files_is_bounded(tmp_path):
    data = generate_travel_data(**P)
    data.interactions.to_parquet(tmp_path / "events.parquet")
    data.items.to_parquet(tmp_path / "items.parquet")
    source = EventSource("files", {"interactions": str(tmp_path / "events.parquet"),
                                   "items": str(tmp_path / "items.parquet")})
    assert source.end() > data.interactions.timestamp.max()
    assert len(source.read(day(0), day(100)).interactions) == len(data.interactions)
    with pytest.raises(ValueError):
        EventSource("kafka", {})
