"""PopularityRecommender: the reference recommend / recommend_batch interface."""

import numpy as np
import pandas as pd
import pytest

from recsys.evaluation.baselines import PopularityRecommender


def interactions(pairs):
    return pd.DataFrame(pairs, columns=["user_id", "item_id"])


# counts: a 3, c 2, b 2, d 1 -> order a, b, c, d (b/c tie broken by item_id although c is seen first)
TRAIN = interactions([("u1", "a"), ("u1", "c"), ("u2", "c"), ("u2", "a"), ("u3", "a"), ("u3", "b"),
                      ("u4", "b"), ("u4", "d")])  # fmt: skip


def test_order_scores_and_tie_break():
    rec = PopularityRecommender(TRAIN)
    assert list(rec.item_ids) == ["a", "b", "c", "d"]
    assert list(rec.scores) == [3.0, 2.0, 2.0, 1.0]
    cold = rec.recommend("new-user", 3)
    assert cold == [
        {"item_id": "a", "score": 3.0, "source": "popular"},
        {"item_id": "b", "score": 2.0, "source": "popular"},
        {"item_id": "c", "score": 2.0, "source": "popular"},
    ]


def test_recommend_batch_excludes_known_items():
    out = PopularityRecommender(TRAIN).recommend_batch(["u1", "u4", "new"], 2)
    assert list(out.columns) == ["user_id", "rank", "item_id", "score", "source"]
    got = {u: list(g.sort_values("rank")["item_id"]) for u, g in out.groupby("user_id")}
    # u1 knows {a, c} -> b, d; u4 knows {b, d} -> a, c; a cold user gets the plain top 2
    assert got == {"u1": ["b", "d"], "u4": ["a", "c"], "new": ["a", "b"]}
    assert list(out["user_id"]) == ["u1", "u1", "u4", "u4", "new", "new"]  # input order, then rank
    assert list(out["rank"]) == [1, 2, 1, 2, 1, 2]
    assert out["rank"].dtype == np.int64 and out["score"].dtype == np.float64
    assert set(out["source"]) == {"popular"}


def test_fewer_items_left_than_k_and_duplicate_users():
    out = PopularityRecommender(TRAIN).recommend_batch(["u1", "u1"], 10)
    assert list(out["item_id"]) == ["b", "d"]  # only 4 items, 2 known; user listed twice collapses


def test_explicit_known_and_update_history():
    rec = PopularityRecommender(TRAIN, known=interactions([("u1", "b")]))
    assert [r["item_id"] for r in rec.recommend("u1", 2)] == ["a", "c"]
    assert [r["item_id"] for r in rec.recommend("u2", 2)] == ["a", "b"]  # u2's train items are not "known"
    rec.update_history(interactions([("u1", "a"), ("u1", "zzz")]))  # unknown item is harmless
    assert list(rec.recommend_batch(["u1"], 3)["item_id"]) == ["c", "d"]


def test_recommend_exclude_argument():
    rec = PopularityRecommender(TRAIN)
    assert [r["item_id"] for r in rec.recommend("u3", 5, exclude=["c"])] == ["d"]  # knows a, b; c excluded


def test_recommend_batch_exclude_frame_masks_on_top_of_known():
    rec = PopularityRecommender(TRAIN)
    masked = interactions([("u1", "b"), ("new", "a"), ("new", "zzz"), ("other", "c")])
    out = rec.recommend_batch(["u1", "new"], 2, exclude=masked)
    got = {u: list(g["item_id"]) for u, g in out.groupby("user_id", sort=False)}
    assert got == {"u1": ["d"], "new": ["b", "c"]}  # u1 knows a, c and b is masked; "other" is not asked
    assert list(rec.recommend_batch(["u1"], 2)["item_id"]) == ["b", "d"]  # the mask lasts one call only


def test_empty_inputs_and_bad_k():
    rec = PopularityRecommender(TRAIN)
    empty = rec.recommend_batch([], 5)
    assert empty.empty and list(empty.columns) == ["user_id", "rank", "item_id", "score", "source"]
    with pytest.raises(ValueError):
        rec.recommend_batch(["u1"], 0)
    assert PopularityRecommender(TRAIN.iloc[:0]).recommend_batch(["u1"], 3).empty


def test_batch_agrees_with_single_user_calls():
    rng = np.random.default_rng(3)
    train = interactions(
        zip((f"u{i}" for i in rng.integers(0, 50, 800)), (f"i{j}" for j in rng.zipf(1.5, 800) % 40))
    )
    rec = PopularityRecommender(train)
    users = [f"u{i}" for i in range(60)]  # u50..u59 are cold
    batch = rec.recommend_batch(users, 7)
    for user in users:
        single = rec.recommend(user, 7)
        rows = batch[batch["user_id"] == user]
        assert list(rows["item_id"]) == [r["item_id"] for r in single]
        assert list(rows["score"]) == [r["score"] for r in single]
        known = set(train.loc[train["user_id"] == user, "item_id"])
        assert not known & set(rows["item_id"])
