"""A Recommender whose ranker reads store features: point-in-time as trained and saved, online once the
service attaches the online store (one online lookup per request), and no Feast at all when it has none."""

from datetime import timedelta

import pandas as pd
import pytest

from recsys.features.definitions import USER_ACTIVITY, features_dir
from recsys.features.offline import read_view
from recsys.features.online import OnlineFeatures, attach_online_features
from recsys.features.provider import PointInTimeFeatures
from recsys.features.store import apply_repo, materialize, open_store
from recsys.serving.recommender import Recommender
from recsys.training import build_recommender, fit_candidate_generator, fit_ranker
from tests.feature_repo.repo import copy_repo, write_features

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dataset):
    ds = tiny_dataset
    repo = copy_repo(tmp_path_factory.mktemp("serving"))
    summary = write_features(repo, ds.interactions, ds.items)
    apply_repo(repo)
    materialize(open_store(repo), pd.Timestamp(summary["last_snapshot"]).to_pydatetime())
    cut = ds.interactions.groupby("user_id").cumcount(ascending=False)
    train, valid = ds.interactions[cut >= 1], ds.interactions[cut == 0]
    generator = fit_candidate_generator(train, valid, ds.items, ds.users)
    ranking, _ = fit_ranker(generator, train, valid, ds.items, ds.users, {"num_rounds": 10, "n_seeds": 1},
                            store=PointInTimeFeatures(repo))
    return ds, repo, summary, generator, ranking


def recommender(trained) -> Recommender:
    ds, _, _, generator, ranking = trained
    return build_recommender(generator, ranking, ds.items, ds.users, ds.interactions)


def test_the_saved_model_reopens_its_offline_store_lazily(trained, tmp_path):
    rec = recommender(trained)
    before = rec.recommend_batch(["u00001", "u00002"], k=5)
    rec.save(tmp_path / "bundle")
    loaded = Recommender.load(tmp_path / "bundle")
    store = loaded.ranking.features.store
    assert isinstance(store, PointInTimeFeatures) and store._store is None  # nothing opened by loading
    assert store.repo_path == str(trained[1]) and store.spec == rec.ranking.features.store.spec
    after = loaded.recommend_batch(["u00001", "u00002"], k=5)
    pd.testing.assert_frame_equal(before[["user_id", "item_id"]], after[["user_id", "item_id"]])


def test_attached_online_store_one_lookup_per_request(trained):
    ds, repo, summary, *_ = trained
    rec = recommender(trained)
    online = attach_online_features(rec, str(repo), clock="snapshot", max_age=timedelta(days=2))
    assert isinstance(online, OnlineFeatures) and rec.ranking.features.store is online and online.ping()
    calls = []
    real = online.users.fetch
    online.users.fetch = lambda keys, probe=False: calls.append(list(keys)) or real(keys, probe)
    table = read_view(features_dir(repo), USER_ACTIVITY)
    user = table[table.event_timestamp == pd.Timestamp(summary["last_snapshot"])].user_id.iloc[0]
    recs = rec.recommend(user, k=5)
    assert len(recs) == 5
    assert calls == [[user]], "a request reads the user's row once (a key lookup); items come from memory"
    assert online.counts[f"{USER_ACTIVITY}.fresh"] == 1 and online.status()["item_table_age_seconds"] is not None
    assert rec.recommend(user, k=5) == recs  # the cached list, checked against the user's row: one more read
    assert calls == [[user]] * 2
    fresh = rec.variant(cache={"enabled": False})  # and the rows it ranks from are exactly those read
    assert fresh.recommend(user, k=5) == recs and calls == [[user]] * 3


def test_a_recommender_without_store_features_needs_no_feast(tiny_recommender):
    assert attach_online_features(tiny_recommender, "/nonexistent/feature_repo") is None
    assert len(tiny_recommender.recommend("u00001", k=3)) == 3


def test_daily_rows_are_kept_between_reads_and_come_in_the_state_lookup(trained):
    """With user_refresh_seconds, a user's daily rows are read at most that often; with Kafka the state's one
    key lookup per request brings them when due and otherwise only the user's real-time row."""
    import time

    from recsys.serving.state import StoreRows

    ds, repo, summary, *_ = trained
    rec = recommender(trained)
    online = attach_online_features(rec, str(repo), clock="snapshot", max_age=timedelta(days=2),
                                    user_refresh_seconds=60)
    rec.state.use_store(StoreRows(repo, feature_views=online.user_views, store=lambda: online.store))
    calls = []
    for name, lookup in (("both", rec.state.rows.lookup), ("events", rec.state.rows.events), ("own", online.users)):
        real = lookup.fetch
        lookup.fetch = lambda keys, probe=False, real=real, name=name: calls.append(name) or real(keys, probe)
    table = read_view(features_dir(repo), USER_ACTIVITY)
    user = table[table.event_timestamp == pd.Timestamp(summary["last_snapshot"])].user_id.iloc[0]
    recs = rec.recommend(user, k=5)
    assert calls == ["both"] and online.counts[f"{USER_ACTIVITY}.fresh"] == 1
    assert rec.recommend(user, k=5) == recs and calls == ["both", "events"]  # kept: the real-time row alone
    kept_at, rows = online._kept[user]
    online._kept[user] = (kept_at - 61, rows)  # a minute later
    assert rec.recommend(user, k=5) == recs and calls == ["both", "events", "both"]
    assert online.counts[f"{USER_ACTIVITY}.fresh"] == 3  # the kept row is checked for freshness every time
    assert time.monotonic() - online._kept[user][0] < 60
