"""Ranking features against brute force, labels, and both rankers."""

import numpy as np
import pandas as pd
import pytest

from recsys.features.history import Catalog, History
from recsys.ranking.features import DAY, RankingFeatures
from recsys.ranking.model import candidate_labels
from recsys.ranking.rankers import Ranker, make_ranker
from recsys.retrieval.candidates import Candidates

T0 = pd.Timestamp("2025-01-01", tz="UTC")


def small_history():
    rows = [("u1", "a", 0), ("u2", "a", 5), ("u3", "b", 6), ("u1", "b", 9), ("u2", "c", 10)]
    frame = pd.DataFrame([(u, i, T0 + pd.Timedelta(days=d), "view") for u, i, d in rows],
                         columns=["user_id", "item_id", "timestamp", "event_type"])
    items = pd.DataFrame({"item_id": ["a", "b", "c"], "genre": ["x|y", "y", "z"], "stars": [3, 4, 5]})
    catalog = Catalog.from_tables(items, frame)
    return History.from_interactions(catalog, frame), catalog


def test_windowed_counts_match_brute_force():
    history, catalog = small_history()
    feats = RankingFeatures(windows_days=(5,)).fit(history, [])
    ref = (T0 + pd.Timedelta(days=9)).value / 1e9
    got = feats.windowed_count(np.array([0, 1, 2]), np.full(3, ref), 5)
    # In [day 4, day 9]: a once (day 5), b twice (days 6, 9), c never (day 10 is after the reference).
    assert got.tolist() == [1, 2, 0]


def test_transform_affinity_and_item_stats():
    history, catalog = small_history()
    feats = RankingFeatures(windows_days=(30,), affinity_decay=1e9).fit(history, ["src"])
    assert feats.categorical == {"genre": ["x", "y", "z"]} and feats.numeric == ["stars"]
    # u1 saw a (x|y) and b (y); candidate c (z) and, for the check, a again.
    cands = Candidates(["u1"], np.array([[2, 0]]), np.array([[1, 1]], dtype=np.int32),
                       {"src": np.array([[0.5, 1.0]], dtype=np.float32)})
    X = feats.transform(cands, history)
    # share of u1's history per genre value: x 1/2, y 2/2, z 0 -> a (x|y): mean (0.5 + 1) / 2, max 1.
    np.testing.assert_allclose(X["affinity_genre"], [0.0, 0.75])
    np.testing.assert_allclose(X["affinity_genre_max"], [0.0, 1.0])
    np.testing.assert_allclose(X["src_rel"], [0.5, 1.0])
    assert X["src_rank"].tolist() == [1, 0]
    assert X["item_stars"].tolist() == [5, 3]
    assert X["pop_all"].tolist() == [1, 2]
    # reference = u1's last event (day 9): c first seen on day 10 -> -1 day; a first seen day 0 -> 9 days.
    np.testing.assert_allclose(X["days_since_first"], [-1.0, 9.0])


def test_labels_from_target_interactions():
    history, catalog = small_history()
    cands = Candidates(["u1", "u2"], np.array([[2, 0], [1, -1]]), np.ones((2, 2), np.int32), {})
    target = pd.DataFrame({"user_id": ["u1", "u2", "u2"], "item_id": ["c", "b", "zzz"],
                           "event_type": ["booking", "view", "view"]})
    assert candidate_labels(cands, catalog, target).tolist() == [1, 0, 1]
    assert candidate_labels(cands, catalog, target, {"booking": 5.0}).tolist() == [5, 0, 1]


@pytest.mark.parametrize("kind", ["lightgbm", "xgboost"])
def test_rankers_learn_a_planted_signal_and_round_trip(kind, tmp_path):
    rng = np.random.default_rng(0)
    n_groups, size = 200, 20
    X = pd.DataFrame({"signal": rng.normal(size=n_groups * size), "noise": rng.normal(size=n_groups * size)})
    y = (X.signal > 1.0).astype(int).to_numpy()
    group = np.full(n_groups, size)
    ranker = make_ranker(kind, {"min_data_in_leaf": 5} if kind == "lightgbm" else None, 50, 10)
    ranker.fit(X[:3000], y[:3000], group[:150], X[3000:], y[3000:], group[150:])
    assert ranker.feature_importance().feature.iloc[0] == "signal"
    pred = ranker.predict(X[3000:])
    assert np.corrcoef(pred, X.signal[3000:])[0, 1] > 0.5
    ranker.save(tmp_path)
    np.testing.assert_allclose(Ranker.load(tmp_path).predict(X[3000:]), pred, rtol=1e-6)


def test_unknown_ranker_kind_is_refused():
    with pytest.raises(ValueError, match="lightgbm"):
        make_ranker("catboost")
