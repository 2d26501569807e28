"""The DuckDB engine (recsys.features.sql as run by recsys.features.batch) against a brute-force reference
straight from the definitions, on random logs full of edge cases; its buckets; its on-disk layout."""

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from recsys.features.batch import run_duckdb_job
from recsys.features.definitions import BATCH_VIEWS, ENTITY_OF, EVENT_TIMESTAMP, PARTITION, FeatureSpec
from recsys.features.offline import read_view
from tests.recsys.features.reference import edge_case_log, reference_tables

DAY_NS = 86_400 * 10**9


def assert_same(view, ours, theirs, rtol=1e-12):
    """Same columns, rows and values: integers, strings and float32 lists exactly, doubles to `rtol` (float
    sums are running sums in the engines, plain sums in the reference)."""
    assert list(ours.columns) == list(theirs.columns), view
    assert len(ours) == len(theirs) > 0, view
    for column in ours.columns:
        a, b = ours[column], theirs[column]
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=rtol, equal_nan=True, err_msg=f"{view}.{column}")
        elif a.dtype == object and any(isinstance(v, np.ndarray) for v in a):
            for x, y in zip(a, b):
                assert (x is None) == (y is None), f"{view}.{column}: null differs"
                if x is not None:
                    assert np.asarray(y).dtype == np.float32 and np.array_equal(x, y), f"{view}.{column}: {x} {y}"
        else:
            assert (a.astype(str).to_numpy() == b.astype(str).to_numpy()).all(), f"{view}.{column}"


SPECS = {
    "default": FeatureSpec(),
    "two types, odd windows": FeatureSpec(windows_days=(5, 2), event_types=("view", "booking"),
                                          ratios={"conversion": ("booking", "view")}),
}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", list(SPECS))
def test_the_engine_matches_the_definitions(tmp_path, seed, name):
    """Multi-valued and missing attributes, items missing from the items table, non-numeric prices, midnight
    events, a user idle for 60 days, a single-event user and item; seed 1 with `as_of` mid-log."""
    interactions, items = edge_case_log(seed)
    spec = SPECS[name].resolve(interactions, items)
    last = None if seed == 0 else int(pd.Timestamp("2025-02-20", tz="UTC").value // DAY_NS)
    run_duckdb_job(interactions, items, spec, tmp_path, last)
    expected = reference_tables(interactions, items, spec, last)
    for view in BATCH_VIEWS:
        assert_same(view, read_view(tmp_path, view), expected[view])
    users = read_view(tmp_path, "user_activity_daily")
    if seed == 0:  # u0: events on days 2 and 62 only: rows for the longest window after each, none between
        days = ((users[users.user_id == "u0"].event_timestamp - pd.Timestamp("2025-01-01", tz="UTC")).dt.days)
        assert list(days) == [*range(3, 3 + spec.max_window), *range(63, 63 + spec.max_window)]
        assert len(users[users.user_id == "u_single"]) == spec.max_window


def test_buckets_change_nothing(tmp_path):
    interactions, items = edge_case_log(2)
    spec = FeatureSpec().resolve(interactions, items)
    run_duckdb_job(interactions, items, spec, tmp_path / "one")
    summary = run_duckdb_job(interactions, items, spec, tmp_path / "many", settings={"events_per_bucket": 150})
    assert summary["buckets"] == 3
    for view in BATCH_VIEWS:
        assert_same(view, read_view(tmp_path / "one", view), read_view(tmp_path / "many", view))
        assert summary["rows"][view] == len(read_view(tmp_path / "many", view))  # what the job reports
        assert len(list((tmp_path / "many" / view).glob("*/part-2.parquet"))) > 0


def test_a_single_event_and_absent_types(tmp_path):
    """One view on one item without attributes: no ratio (no click), no shares; with "now" 40 days later,
    rows for the 30 days after the event only."""
    interactions = pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "event_type": ["view"],
                                 "timestamp": [pd.Timestamp("2025-05-05 23:00", tz="UTC")]})
    items = pd.DataFrame({"item_id": ["i"], "category": [None], "price": [np.nan]})
    spec = FeatureSpec().resolve(interactions, items)
    assert spec.event_types == ("view",) and spec.ratios == {} and spec.attributes == ()
    day = int(interactions.timestamp[0].value // DAY_NS)
    summary = run_duckdb_job(interactions, items, spec, tmp_path, day + 40)
    assert summary["rows"] == dict.fromkeys(BATCH_VIEWS, 30) and summary["first_snapshot"] == day + 1
    users = read_view(tmp_path, "user_activity_daily")
    assert users.user_view_1d.tolist() == [1] + [0] * 29 and users.user_view_30d.tolist() == [1] * 30
    assert users.user_days_since_last_event.tolist() == [k + 1 / 24 for k in range(30)]
    assert users.user_price_mean_30d.isna().all()
    assert read_view(tmp_path, "user_affinity_daily").columns.tolist() == ["user_id", EVENT_TIMESTAMP, PARTITION]


def test_layout_and_schema(tmp_path):
    """Parquet files under <view>/date=YYYY-MM-DD/ (the Feast file sources' glob) in the spec's Arrow schema;
    read as a hive dataset, the spec's schema including the partition column."""
    interactions, items = edge_case_log(3)
    spec = FeatureSpec().resolve(interactions, items)
    run_duckdb_job(interactions, items, spec, tmp_path)
    assert FeatureSpec.read(tmp_path) == spec
    for view in BATCH_VIEWS:
        schema = spec.arrow_schema(view)
        files = sorted((tmp_path / view).glob("*/*.parquet"))
        assert files and all(f.parent.name.startswith(f"{PARTITION}=") for f in files)
        stored = schema.remove(schema.get_field_index(PARTITION))
        for f in files[:3]:
            assert pq.read_schema(f).remove_metadata().equals(stored), f"{f}: {pq.read_schema(f)}"
            table = pq.read_table(f)
            stamps = set(table[EVENT_TIMESTAMP].to_pylist())
            assert len(stamps) == 1 and f.parent.name == f"{PARTITION}={stamps.pop():%Y-%m-%d}"
        dataset = ds.dataset(tmp_path / view, format="parquet", partitioning="hive")
        assert dataset.to_table().num_rows == len(read_view(tmp_path, view))
        assert read_view(tmp_path, view).groupby([ENTITY_OF[view], EVENT_TIMESTAMP]).size().max() == 1


def test_a_run_clears_what_a_killed_run_left(tmp_path):
    """A killed run leaves its staged view (.<view>.<id>.tmp), a swapped-out one (.old) and DuckDB's scratch
    directory; the next run removes them and writes the views as usual."""
    interactions, items = edge_case_log(4)
    spec = FeatureSpec().resolve(interactions, items)
    leftovers = [tmp_path / ".user_activity_daily.0badc0de.tmp" / "date=2025-01-01", tmp_path / ".duckdb-x1" / "tmp",
                 tmp_path / ".item_popularity_daily.0badc0de.old"]
    for path in leftovers:
        path.mkdir(parents=True)
        (path / "part-0.parquet").write_bytes(b"half-written")
    run_duckdb_job(interactions, items, spec, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    assert all(len(read_view(tmp_path, view)) for view in ("user_activity_daily", "item_popularity_daily"))


def test_a_last_snapshot_before_the_first_event_is_refused(tmp_path):
    """The message names both days as dates (the engines share the check, recsys.features.sql.snapshot_range)."""
    interactions = pd.DataFrame({"user_id": ["u"], "item_id": ["i"], "event_type": ["view"],
                                 "timestamp": [pd.Timestamp("2025-05-05 23:00", tz="UTC")]})
    items = pd.DataFrame({"item_id": ["i"], "category": ["c"], "price": [1.0]})
    spec = FeatureSpec().resolve(interactions, items)
    day = int(interactions.timestamp[0].value // DAY_NS)
    with pytest.raises(ValueError, match=r"last snapshot \(2025-04-30\) is before .* \(2025-05-06\)"):
        run_duckdb_job(interactions, items, spec, tmp_path, day - 5)
