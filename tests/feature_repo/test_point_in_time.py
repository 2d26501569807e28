"""Point-in-time correctness of the ranker's training set: Feast joins each user's features as of their last
train interaction, so a feature row stamped after that moment (let alone after the label) never gets in.

The offline tables are poisoned: every user row stamped after the user's last train interaction gets a
sentinel in every feature, extra sentinel rows sit between that moment and the first label and after the
label, and item rows just after the last training moment. The training set must hold none of them, while
the same provider asked at a later time does return them (so the test can see a leak)."""

import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.data.splits import temporal_user_split
from recsys.features.definitions import (
    ITEM_POPULARITY,
    PARTITION,
    SNAPSHOT_SECONDS,
    USER_ACTIVITY,
    FeatureSpec,
    features_dir,
)
from recsys.features.offline import read_view
from recsys.features.provider import PointInTimeFeatures
from recsys.features.store import apply_repo
from recsys.training import fit_candidate_generator, ranker_training_set
from tests.feature_repo.repo import copy_repo, write_features

pytestmark = pytest.mark.slow
SENTINEL = 10**6


def seconds(ts: pd.Series) -> np.ndarray:
    return pd.to_datetime(ts, utc=True).astype("datetime64[us, UTC]").astype("int64").to_numpy() / 1e6


def poison_the_future(repo, ref: pd.Series) -> None:
    """Every user_activity_daily row stamped after its user's reference time gets sentinel values."""
    spec = FeatureSpec.read(features_dir(repo))
    table = read_view(features_dir(repo), USER_ACTIVITY)
    moment = table.user_id.map(ref)
    future = moment.notna() & (table.event_timestamp > moment)
    table.loc[future, spec.names(USER_ACTIVITY)] = SENTINEL
    table = pa.Table.from_pandas(table[spec.columns(USER_ACTIVITY)], schema=spec.arrow_schema(USER_ACTIVITY),
                                 preserve_index=False)
    shutil.rmtree(features_dir(repo) / USER_ACTIVITY)
    pq.write_to_dataset(table, features_dir(repo) / USER_ACTIVITY, partition_cols=[PARTITION])
    assert future.sum() > 100


def poison(repo, view: str, key: str, ids, stamps_s: np.ndarray) -> None:
    """Rows of `view` for `ids` at `stamps_s` (seconds) with every feature set to the sentinel."""
    spec = FeatureSpec.read(features_dir(repo))
    stamps = pd.to_datetime((stamps_s * 1e6).astype(np.int64), unit="us", utc=True)
    columns = {key: pa.array(list(ids), pa.string()),
               "event_timestamp": pa.array(stamps.astype("datetime64[us, UTC]"), pa.timestamp("us", tz="UTC"))}
    schema = spec.arrow_schema(view)
    for name in spec.names(view):
        columns[name] = pa.array(np.full(len(ids), SENTINEL), schema.field(name).type)
    columns[PARTITION] = pa.array(stamps.strftime("%Y-%m-%d"), pa.string())
    pq.write_to_dataset(pa.table(columns, schema=schema), features_dir(repo) / view, partition_cols=[PARTITION],
                        basename_template="poison-" + view + "-{i}.parquet")


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_dataset):
    ds = tiny_dataset
    split = temporal_user_split(ds.interactions, (0.8, 0.1, 0.1))
    repo = copy_repo(tmp_path_factory.mktemp("pit"))
    write_features(repo, ds.interactions, ds.items)
    ref = split.train.groupby("user_id").timestamp.max()
    label = split.valid.groupby("user_id").timestamp.min()
    users = [u for u in label.index if u in ref.index and label[u] > ref[u]]
    t_ref, t_label = seconds(ref[users]), seconds(label[users])
    poison_the_future(repo, ref)
    between = np.floor((t_ref + t_label) / 2 * 1e6) / 1e6  # after the features' moment, before the label
    poison(repo, USER_ACTIVITY, "user_id", users + users, np.r_[between, t_label + 3600])
    # Item rows just after the next snapshot (a midnight), so after every training user's moment, and the
    # latest rows of that day (a tie with the day's real row would leave the winner to chance).
    latest_ref = t_ref.max()
    next_snapshot = np.ceil(latest_ref / SNAPSHOT_SECONDS) * SNAPSHOT_SECONDS
    items = list(ds.items.item_id.astype(str))
    poison(repo, ITEM_POPULARITY, "item_id", items, np.full(len(items), next_snapshot + 1.0))
    apply_repo(repo)
    return ds, split, repo, users, t_ref, between, t_label, latest_ref


def test_training_set_holds_no_row_stamped_after_the_users_moment(setup):
    ds, split, repo, users, *_ = setup
    generator = fit_candidate_generator(split.train, split.valid, ds.items, ds.users)
    store = PointInTimeFeatures(repo)
    _, X, y, group = ranker_training_set(generator, split.train, split.valid, {}, store)
    assert len(X) and y.sum() > 0
    user_columns, item_columns = store.spec.names(USER_ACTIVITY), store.spec.names(ITEM_POPULARITY)
    assert set(user_columns + item_columns) <= set(X.columns)
    assert not (X[user_columns] >= SENTINEL).any().any(), "a user row from after the reference time leaked in"
    assert not (X[item_columns] >= SENTINEL).any().any(), "an item row from after the reference time leaked in"
    assert X["user_events_30d"].notna().any()  # the join did bring the real rows (checked by hand below)


def test_the_provider_returns_the_row_of_the_day_and_sees_poison_only_later(setup):
    ds, split, repo, users, t_ref, between, t_label, latest_ref = setup
    store = PointInTimeFeatures(repo)
    at_ref = store.user_features(users, t_ref)
    # By hand: the user's events in the 30 days before the last midnight at or before the reference time.
    events = ds.interactions.assign(s=seconds(ds.interactions.timestamp))
    for k, user in enumerate(users):
        midnight = np.floor(t_ref[k] / SNAPSHOT_SECONDS) * SNAPSHOT_SECONDS
        own = events[(events.user_id == user) & (events.s < midnight) & (events.s >= midnight - 30 * SNAPSHOT_SECONDS)]
        expected = len(own) if len(own) else np.nan  # no event in 30 days: no row, nothing joined
        assert at_ref.user_events_30d[k] == expected or (np.isnan(expected) and pd.isna(at_ref.user_events_30d[k]))
    for moment in (between, t_label + 3600):  # the poison is there for whoever asks late enough
        assert (store.user_features(users, moment).user_events_30d == SENTINEL).all()
    item = ds.items.item_id.astype(str).iloc[:3].tolist()
    later = np.ceil(latest_ref / SNAPSHOT_SECONDS) * SNAPSHOT_SECONDS + 5 * 3600
    assert (store.item_features(item, np.full(3, later)).item_events_30d == SENTINEL).all()
    assert not (store.item_features(item, np.full(3, latest_ref)).item_events_30d == SENTINEL).any()
