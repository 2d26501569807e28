"""evaluate(): one row per model, scored only through recommend_batch; format_table()."""

import pandas as pd
import pytest

from recsys.evaluation.baselines import PopularityRecommender
from recsys.evaluation.protocol import evaluate, format_table

TRAIN = pd.DataFrame({"user_id": ["u1", "u1", "u2", "u3"], "item_id": ["a", "b", "a", "c"]})
TEST = pd.DataFrame({"user_id": ["u1", "u2", "u2", "u4"], "item_id": ["c", "b", "c", "a"]})


class Oracle:
    """Recommends each user's test items first: every accuracy metric is 1 at k >= |relevant|."""

    def __init__(self, test):
        self.test = test
        self.calls = []

    def recommend_batch(self, user_ids, k):
        self.calls.append((list(user_ids), k))
        recs = self.test[self.test["user_id"].isin(user_ids)].copy()
        recs["rank"] = recs.groupby("user_id").cumcount() + 1
        recs["score"], recs["source"] = 1.0, "oracle"
        return recs[recs["rank"] <= k]


def test_table_shape_order_and_values():
    oracle = Oracle(TEST)
    models = {"popularity": PopularityRecommender(TRAIN), "oracle": oracle}
    table = evaluate(models, TEST, k=[2, 5], n_items=3)
    assert list(table.index) == ["popularity", "oracle"] and table.index.name == "model"
    metrics = ["ndcg", "recall", "precision", "map", "mrr", "hit", "coverage"]
    assert list(table.columns) == [f"{m}@{k}" for k in (2, 5) for m in metrics]
    assert oracle.calls == [(["u1", "u2", "u4"], 5)]  # distinct test users, max(k)
    assert table.loc["oracle", "recall@5"] == 1.0 and table.loc["oracle", "ndcg@2"] == pytest.approx(1.0)
    # popularity (a 2, b 1, c 1): u1 knows a,b -> [c] hit; u2 knows a -> [b, c] 2 hits; u4 cold -> [a, b] hit
    assert table.loc["popularity", "recall@2"] == pytest.approx((1 + 1 + 1) / 3)
    assert table.loc["popularity", "precision@2"] == pytest.approx((1 / 2 + 2 / 2 + 1 / 2) / 3)
    assert table.loc["popularity", "coverage@2"] == pytest.approx(3 / 3)


def test_users_subset_and_categories():
    oracle = Oracle(TEST)
    cats = pd.Series({"a": "x", "b": "x", "c": "y"})
    table = evaluate({"oracle": oracle}, TEST, k=2, users=["u2", "u9"], item_categories=cats)
    assert oracle.calls == [(["u2", "u9"], 2)]
    # only u2 has truth: its list [b, c] is a perfect hit and spans two categories
    assert table.loc["oracle", "recall@2"] == 1.0 and table.loc["oracle", "diversity@2"] == 1.0
    with pytest.raises(ValueError, match="no test interactions"):
        evaluate({"oracle": oracle}, TEST, users=["nobody"])


def test_exclude_masks_every_model_the_same_way():
    valid = pd.DataFrame({"user_id": ["u4", "u2"], "item_id": ["a", "c"]})

    class NoExcludeParam:  # recommend_batch without `exclude`: evaluate over-asks and drops masked pairs
        def __init__(self):
            self.inner, self.calls = PopularityRecommender(TRAIN), []

        def recommend_batch(self, user_ids, k):
            self.calls.append(k)
            return self.inner.recommend_batch(user_ids, k)

    plain = NoExcludeParam()
    models = {"pop": PopularityRecommender(TRAIN), "plain": plain}
    table = evaluate(models, TEST, k=2, exclude=valid)
    assert plain.calls == [2 + 1]  # max(k) + at most 1 masked item per user
    # order a, b, c; u1 knows a,b -> [c] hit; u2 knows a, c masked -> [b] hit; u4 a masked -> [b, c] no hit
    assert table.loc["pop", "hit@2"] == pytest.approx(2 / 3)
    assert table.loc["pop", "recall@2"] == pytest.approx((1 + 1 / 2 + 0) / 3)
    pd.testing.assert_series_equal(table.loc["pop"], table.loc["plain"], check_names=False)


def test_bad_recommenders_rejected():
    with pytest.raises(TypeError, match="recommend_batch"):
        evaluate({"broken": object()}, TEST)

    class NoRank:
        def recommend_batch(self, user_ids, k):
            return pd.DataFrame({"user_id": list(user_ids), "item_id": "a"})

    with pytest.raises(ValueError, match="rank"):
        evaluate({"norank": NoRank()}, TEST)


def test_format_table():
    table = evaluate({"popularity": PopularityRecommender(TRAIN)}, TEST, k=2)
    lines = format_table(table).splitlines()
    assert lines[0].startswith("| model | ndcg@2 | recall@2 |")
    assert lines[1].startswith("|---|---:|")
    assert len(lines) == 3 and lines[2].startswith("| popularity | ")
    assert all(len(cell.strip().split(".")[1]) == 4 for cell in lines[2].strip("|").split("|")[1:])
