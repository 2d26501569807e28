"""Feature-stage steps called directly (`.entrypoint`): job -> feast apply -> materialize, then the ranker
step reading the store point-in-time; on a copy of feature_repo/ in a temp project."""

from pathlib import Path

import pandas as pd
import pytest

from recsys.features.definitions import BATCH_VIEWS, PUSH_VIEWS, USER_ACTIVITY, FeatureSpec, features_dir
from recsys.features.offline import read_view
from recsys.features.online import OnlineFeatures
from recsys.features.provider import PointInTimeFeatures
from recsys.training import fit_candidate_generator
from steps.features import apply_feature_repo, compute_features, materialize_features
from steps.training import train_ranker
from tests.feature_repo.repo import copy_repo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def store(tmp_path_factory, tiny_dataset):
    ds = tiny_dataset
    repo = copy_repo(tmp_path_factory.mktemp("steps"))
    tables = compute_features.entrypoint(ds.interactions, ds.items, engine="duckdb",
                                         spec={"windows_days": [1, 7, 30]}, repo_path=str(repo))
    assert Path(tables["features_dir"]) == features_dir(repo) and min(tables["rows"].values()) > 0
    store = apply_feature_repo.entrypoint(tables, repo_path=str(repo))
    assert set(store["views"]) == set(BATCH_VIEWS) | set(PUSH_VIEWS)
    result = materialize_features.entrypoint(store)
    assert pd.Timestamp(result["materialized"]["end"]) == pd.Timestamp(tables["last_snapshot"])
    return repo, result


def test_the_online_store_answers_for_a_known_user(store):
    repo, result = store
    table = read_view(features_dir(repo), USER_ACTIVITY)
    latest = table[table.event_timestamp == pd.Timestamp(result["last_snapshot"])].set_index("user_id")
    user = latest.index[0]
    online = OnlineFeatures(FeatureSpec.read(features_dir(repo)), repo, clock="snapshot", item_ids=[])
    assert online.user_features([user]).loc[0, "user_events_30d"] == latest.loc[user, "user_events_30d"]


def test_train_ranker_reads_the_store_point_in_time(store, tiny_dataset):
    repo, result = store
    ds = tiny_dataset
    cut = ds.interactions.groupby("user_id").cumcount(ascending=False)
    train, valid = ds.interactions[cut >= 2], ds.interactions[cut == 1]
    generator = fit_candidate_generator(train, valid, ds.items, ds.users)
    ranker, importance = train_ranker.entrypoint(generator, train, valid, ds.items, ds.users,
                                                 {"num_rounds": 5, "n_seeds": 1}, feature_store=result)
    assert isinstance(ranker.features.store, PointInTimeFeatures)
    assert {"user_events_30d", "item_ctr_7d", "store_affinity_category_30d", "price_gap_7d"} <= set(importance.feature)
