"""The three data sources: synthetic generator (deterministic, planted structure), user files, MovieLens."""

import pandas as pd
import pytest

from recsys.data.files import load_user_files
from recsys.data.loader import SOURCES, load_dataset, read_dataset
from recsys.data.synthetic import generate_travel_data
from recsys.data.validation import DataValidationError

SMALL = {"n_users": 80, "n_items": 40, "n_events": 3000, "seed": 11}


def test_generator_is_deterministic_by_seed():
    a, b = generate_travel_data(**SMALL), generate_travel_data(**SMALL)
    for table in ("interactions", "items", "users"):
        pd.testing.assert_frame_equal(getattr(a, table), getattr(b, table))
    c = generate_travel_data(**{**SMALL, "seed": 12})
    assert not c.interactions[["user_id", "item_id"]].equals(a.interactions[["user_id", "item_id"]])


def test_generator_shape_and_funnel():
    ds = generate_travel_data(**SMALL)
    inter = ds.interactions
    assert len(inter) == 3000 and len(ds.items) == 40 and len(ds.users) == 80
    counts = inter.event_type.value_counts()
    assert counts["view"] > counts["click"] > counts["booking"] > 0  # a funnel
    # every click follows a view of the same item in the same session; bookings carry a price
    views = set(zip(inter.session_id[inter.event_type == "view"], inter.item_id[inter.event_type == "view"]))
    clicks = inter[inter.event_type == "click"]
    assert all(key in views for key in zip(clicks.session_id, clicks.item_id))
    assert (inter.value[inter.event_type == "booking"] > 1).all()
    assert set(ds.items.columns) >= {"destination", "region", "category", "price_tier", "stars", "price"}
    assert set(ds.users.columns) >= {"home_region", "budget", "age_band"}


def test_generator_plants_taste():
    """Users' categories repeat far more than chance: the signal the models must find."""
    ds = generate_travel_data(n_users=300, n_items=200, n_events=20000, seed=5)
    inter = ds.interactions.merge(ds.items[["item_id", "category"]], on="item_id")
    top_share = inter.groupby("user_id").category.agg(lambda s: s.value_counts(normalize=True).iloc[0])
    shuffled = inter.assign(category=inter.category.sample(frac=1, random_state=0).to_numpy())
    chance = shuffled.groupby("user_id").category.agg(lambda s: s.value_counts(normalize=True).iloc[0])
    assert top_share.mean() > chance.mean() + 0.1


def test_files_with_mapping_csv_and_parquet(tmp_path):
    pd.DataFrame({"uid": ["7", "8"], "sku": ["007", "x"], "when": ["2025-01-01", "2025-01-02"],
                  "kind": ["view", "purchase"]}).to_csv(tmp_path / "events.csv", index=False)
    pd.DataFrame({"sku": ["007", "x"], "colour": ["red", "blue"]}).to_parquet(tmp_path / "items.parquet")
    ds = load_dataset("files", {"interactions": str(tmp_path / "events.csv"), "items": str(tmp_path / "items.parquet"),
                                "columns": {"user_id": "uid", "item_id": "sku", "timestamp": "when",
                                            "event_type": "kind"}})
    assert list(ds.interactions.item_id) == ["007", "x"]  # ids stay strings: "007" is not 7
    assert list(ds.interactions.event_type) == ["view", "purchase"] and list(ds.items.colour) == ["red", "blue"]


def test_files_validation_names_the_fault(tmp_path):
    (tmp_path / "bad.csv").write_text("user_id,item_id,timestamp\n1,a,2025-01-01\n2,,2025-01-02\n")
    with pytest.raises(DataValidationError, match=r"interactions.item_id: 1 row has a missing or empty id, e.g. rows \[1\]"):
        load_dataset("files", {"interactions": str(tmp_path / "bad.csv")})
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataValidationError, match="empty"):
        load_dataset("files", {"interactions": str(tmp_path / "empty.csv")})
    (tmp_path / "header.csv").write_text("user_id,item_id,timestamp\n")
    with pytest.raises(DataValidationError, match=r"table is empty \(0 rows\)"):
        load_dataset("files", {"interactions": str(tmp_path / "header.csv")})
    with pytest.raises(DataValidationError, match="use one of"):
        load_user_files(tmp_path / "events.xlsx")


def test_unknown_source():
    with pytest.raises(ValueError, match="unknown data source 'kaggle'"):
        read_dataset("kaggle", {})
    assert set(SOURCES) == {"synthetic", "movielens-100k", "files"}


@pytest.mark.network  # downloads the recbole wheel from PyPI once (2 MB), then reads the cache
def test_movielens_100k(tmp_path_factory):
    from recsys.data.movielens import export_files, load_movielens_100k

    cache = tmp_path_factory.getbasetemp() / "movielens-cache"
    ds = load_movielens_100k(cache)
    assert (len(ds.interactions), ds.interactions.user_id.nunique(), len(ds.items)) == (100_000, 943, 1682)
    assert set(ds.interactions.event_type) == {"rating"} and ds.interactions.value.between(1, 5).all()
    toy = ds.items.set_index("item_id").loc["1"]
    assert (toy.title, toy.year, toy.genres) == ("Toy Story", 1995, "Animation|Children's|Comedy")
    assert set(ds.users.columns) == {"user_id", "age", "gender", "occupation", "zip3"}

    paths = export_files(ds, tmp_path_factory.mktemp("files"))
    mapped = load_dataset("files", {"interactions": str(paths["interactions_trainvalid"]), "items": str(paths["items"]),
                                    "users": str(paths["users"]), "default_event_type": "rating",
                                    "columns": {"user_id": "userId", "item_id": "movieId", "timestamp": "ts",
                                                "value": "rating"}})
    test = pd.read_csv(paths["interactions_test"], dtype={"userId": str, "movieId": str})
    assert len(mapped.interactions) + len(test) == 100_000
    # the export holds everything before each user's test part, and nothing of it
    last = mapped.interactions.groupby("user_id").timestamp.max()
    first_test = pd.to_datetime(test.groupby("userId").ts.min(), unit="s", utc=True)
    assert (last.reindex(first_test.index) <= first_test).all()
