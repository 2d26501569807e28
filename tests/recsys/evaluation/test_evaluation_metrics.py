"""Metric definitions checked against hand-computed values (arithmetic in the comments)."""

import math
import time

import numpy as np
import pandas as pd
import pytest

from recsys.evaluation.metrics import (
    catalog_coverage,
    hit_rate_at_k,
    intra_list_diversity,
    item_popularity,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)

L2, L3, L4, L5 = math.log2(2), math.log2(3), math.log2(4), math.log2(5)
RECS, REL = ["a", "b", "c", "d"], {"b", "d", "e"}


def frame(lists: dict[str, list[str]]) -> pd.DataFrame:
    rows = [(u, r, i) for u, items in lists.items() for r, i in enumerate(items, start=1)]
    return pd.DataFrame(rows, columns=["user_id", "rank", "item_id"])


def truth_frame(rel: dict[str, list[str]]) -> pd.DataFrame:
    return pd.DataFrame([(u, i) for u, items in rel.items() for i in items], columns=["user_id", "item_id"])


def test_per_user_worked_example():
    # recs [a,b,c,d], relevant {b,d,e}: hits at ranks 2 and 4
    assert precision_at_k(RECS, REL, 4) == pytest.approx(2 / 4)
    assert recall_at_k(RECS, REL, 4) == pytest.approx(2 / 3)
    assert hit_rate_at_k(RECS, REL, 4) == 1.0
    assert mrr_at_k(RECS, REL, 4) == pytest.approx(1 / 2)
    # DCG = 1/log2(3) + 1/log2(5); IDCG over min(3, 4) = 3 ranks = 1/log2(2) + 1/log2(3) + 1/log2(4)
    assert ndcg_at_k(RECS, REL, 4) == pytest.approx((1 / L3 + 1 / L5) / (1 / L2 + 1 / L3 + 1 / L4))
    # precision@2 = 1/2, precision@4 = 2/4, divided by min(3, 4) = 3
    assert map_at_k(RECS, REL, 4) == pytest.approx((1 / 2 + 2 / 4) / 3)


def test_per_user_cutoff_two():
    # top-2 = [a, b]: one hit at rank 2
    assert precision_at_k(RECS, REL, 2) == pytest.approx(1 / 2)
    assert recall_at_k(RECS, REL, 2) == pytest.approx(1 / 3)
    assert ndcg_at_k(RECS, REL, 2) == pytest.approx((1 / L3) / (1 / L2 + 1 / L3))  # IDCG over min(3, 2) = 2
    assert map_at_k(RECS, REL, 2) == pytest.approx((1 / 2) / 2)  # divided by min(3, 2) = 2
    assert mrr_at_k(RECS, REL, 2) == pytest.approx(1 / 2)


def test_no_hits_and_empty_relevant_score_zero():
    for fn in (precision_at_k, recall_at_k, hit_rate_at_k, mrr_at_k, ndcg_at_k, map_at_k):
        assert fn(["x", "y"], {"a"}, 2) == 0.0
        assert fn(["x", "y"], set(), 2) == 0.0


def test_fewer_recs_than_k():
    # recs [b], relevant {b, x}, k = 5: precision keeps k in the denominator
    assert precision_at_k(["b"], {"b", "x"}, 5) == pytest.approx(1 / 5)
    assert recall_at_k(["b"], {"b", "x"}, 5) == pytest.approx(1 / 2)
    assert ndcg_at_k(["b"], {"b", "x"}, 5) == pytest.approx(1 / (1 / L2 + 1 / L3))  # IDCG over min(2, 5)
    assert map_at_k(["b"], {"b", "x"}, 5) == pytest.approx(1 / 2)  # (1/1) / min(2, 5)


def test_repeated_recommendation_counts_once():
    # [b, b, d] vs {b, d}: hits at ranks 1 and 3 (the second b takes a slot but is no hit)
    assert precision_at_k(["b", "b", "d"], {"b", "d"}, 3) == pytest.approx(2 / 3)
    assert map_at_k(["b", "b", "d"], {"b", "d"}, 3) == pytest.approx((1 / 1 + 2 / 3) / 2)


def test_bad_k_rejected():
    with pytest.raises(ValueError):
        precision_at_k(RECS, REL, 0)
    with pytest.raises(ValueError):
        ranking_metrics(frame({"u": RECS}), truth_frame({"u": ["b"]}), k=[])


def test_ranking_metrics_matches_worked_example_and_key_order():
    out = ranking_metrics(frame({"u": RECS}), truth_frame({"u": sorted(REL)}), k=4)
    assert list(out) == ["ndcg@4", "recall@4", "precision@4", "map@4", "mrr@4", "hit@4"]
    assert out["precision@4"] == pytest.approx(0.5)
    assert out["recall@4"] == pytest.approx(2 / 3)
    assert out["ndcg@4"] == pytest.approx((1 / L3 + 1 / L5) / (1 / L2 + 1 / L3 + 1 / L4))
    assert out["map@4"] == pytest.approx(1 / 3)
    assert out["mrr@4"] == pytest.approx(0.5)
    assert out["hit@4"] == 1.0


def test_truth_user_without_recs_scores_zero_and_duplicates_collapse():
    recs = frame({"u1": RECS, "stranger": ["b"]})  # "stranger" has no test interactions: ignored
    truth = truth_frame({"u1": ["b", "b", "d", "e"], "u2": ["a"]})  # duplicate (u1, b) collapses
    out = ranking_metrics(recs, truth, k=4)
    # u1 as in the worked example (|R| = 3, not 4), u2 scores 0 and is averaged in: mean over 2 users
    assert out["recall@4"] == pytest.approx((2 / 3 + 0) / 2)
    assert out["precision@4"] == pytest.approx((2 / 4 + 0) / 2)
    assert out["map@4"] == pytest.approx((1 / 3 + 0) / 2)
    assert out["hit@4"] == pytest.approx(1 / 2)


def test_no_recommendations_at_all_scores_zero():
    empty = pd.DataFrame({"user_id": pd.Series(dtype=object), "rank": pd.Series(dtype="int64"),
                          "item_id": pd.Series(dtype=object)})  # fmt: skip
    out = ranking_metrics(empty, truth_frame({"u": ["a"]}), k=3, n_items=5, item_categories=pd.Series({"a": "x"}))
    assert {key: v for key, v in out.items() if key != "diversity@3"} == {
        "ndcg@3": 0.0, "recall@3": 0.0, "precision@3": 0.0, "map@3": 0.0, "mrr@3": 0.0, "hit@3": 0.0,
        "coverage@3": 0.0}  # fmt: skip
    assert math.isnan(out["diversity@3"])  # undefined without lists of >= 2 items


def test_rank_order_not_row_order_and_gaps_in_rank():
    # rows shuffled and ranks 10, 20, 30, 40: positions are re-derived from the rank order
    recs = pd.DataFrame({"user_id": ["u"] * 4, "rank": [30, 10, 40, 20], "item_id": ["c", "a", "d", "b"]})
    out = ranking_metrics(recs, truth_frame({"u": sorted(REL)}), k=[2, 4])
    assert out["map@4"] == pytest.approx(1 / 3)
    assert out["ndcg@2"] == pytest.approx((1 / L3) / (1 / L2 + 1 / L3))


def test_grouped_users_in_any_order_and_float_ranks():
    truth = truth_frame({"u1": sorted(REL), "u2": ["x", "y"]})
    # users grouped but not in truth order (no re-sort needed); u2: hit at rank 3 of [p, q, x]
    recs = frame({"u2": ["p", "q", "x"], "u1": RECS})
    out = ranking_metrics(recs, truth, k=4)
    assert out["mrr@4"] == pytest.approx((1 / 2 + 1 / 3) / 2)
    assert out["map@4"] == pytest.approx((1 / 3 + (1 / 3) / 2) / 2)  # u2: precision@3 = 1/3, / min(2, 4)
    # users interleaved and float ranks (scores-as-ranks): the sort path must give the same numbers
    mixed = recs.assign(rank=recs["rank"] * 0.5).iloc[[3, 0, 4, 1, 5, 2, 6]]
    assert ranking_metrics(mixed, truth, k=4) == pytest.approx(out)


def test_non_string_ids_are_compared_as_strings():
    recs = pd.DataFrame({"user_id": [1, 1], "rank": [1, 2], "item_id": [7, 8]})
    truth = pd.DataFrame({"user_id": ["1"], "item_id": ["8"]})
    assert ranking_metrics(recs, truth, k=2)["mrr@2"] == pytest.approx(1 / 2)


def test_empty_truth_and_missing_columns_rejected():
    with pytest.raises(ValueError, match="empty"):
        ranking_metrics(frame({"u": RECS}), truth_frame({}), k=2)
    with pytest.raises(ValueError, match="item_id"):
        ranking_metrics(frame({"u": RECS}).drop(columns="item_id"), truth_frame({"u": ["a"]}))


def test_vectorised_equals_per_user_definitions_on_random_data():
    rng = np.random.default_rng(7)
    items = [f"i{j}" for j in range(30)]
    lists = {f"u{n}": list(rng.choice(items, size=rng.integers(0, 15))) for n in range(200)}  # repeats possible
    rel = {f"u{n}": list(rng.choice(items, size=rng.integers(1, 6))) for n in range(0, 220, 2)}
    recs = frame(lists).sample(frac=1.0, random_state=1)  # row order must not matter
    out = ranking_metrics(recs, truth_frame(rel), k=[1, 5, 10])
    fns = {"ndcg": ndcg_at_k, "recall": recall_at_k, "precision": precision_at_k, "map": map_at_k,
           "mrr": mrr_at_k, "hit": hit_rate_at_k}  # fmt: skip
    for k in (1, 5, 10):
        for name, fn in fns.items():
            expected = np.mean([fn(lists.get(u, []), set(r), k) for u, r in rel.items()])
            assert out[f"{name}@{k}"] == pytest.approx(expected), f"{name}@{k}"


def test_catalog_coverage():
    # distinct {a, b, c} of a 10-item catalogue
    assert catalog_coverage([["a", "b"], ["b", "c"]], 10) == pytest.approx(3 / 10)
    recs = frame({"u1": ["a", "b"], "u2": ["b", "c"]})
    assert catalog_coverage(recs, 10) == pytest.approx(3 / 10)
    out = ranking_metrics(recs, truth_frame({"u1": ["a"], "u2": ["c"]}), k=[1, 2], n_items=10)
    assert out["coverage@1"] == pytest.approx(2 / 10)  # rank-1 items {a, b}
    assert out["coverage@2"] == pytest.approx(3 / 10)
    with pytest.raises(ValueError):
        catalog_coverage([["a"]], 0)


def test_diversity_with_categories():
    cats = pd.Series({"a": "x", "b": "x", "c": "y"})
    # [a,b,c]: pairs ab same, ac diff, bc diff -> 2/3; [a,b]: 0; [a] and [a,d] (d has no category) skipped
    lists = [["a", "b", "c"], ["a", "b"], ["a"], ["a", "d"]]
    assert intra_list_diversity(lists, cats) == pytest.approx((2 / 3 + 0) / 2)
    recs = frame({"u1": ["a", "b", "c"], "u2": ["a", "b"]})
    out = ranking_metrics(recs, truth_frame({"u1": ["a"], "u2": ["a"]}), k=[2, 3], item_categories=cats)
    assert out["diversity@2"] == pytest.approx(0.0)  # both top-2 lists are [a, b]
    assert out["diversity@3"] == pytest.approx((2 / 3 + 0) / 2)


def test_diversity_with_embeddings():
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    ids = ["a", "b", "c", "z"]
    c = 1 / math.sqrt(2)  # cos(a, c) = cos(b, c)
    # [a,b]: 1 - 0 = 1; [a,b,c]: (1 + (1 - c) + (1 - c)) / 3; zero vector z: cosine 0 -> distance 1
    expected = (1 + (3 - 2 * c) / 3 + 1) / 3
    lists = [["a", "b"], ["a", "b", "c"], ["a", "z"]]
    assert intra_list_diversity(lists, emb, item_ids=ids) == pytest.approx(expected)
    assert intra_list_diversity(lists, pd.DataFrame(emb, index=ids)) == pytest.approx(expected)
    assert intra_list_diversity([[0, 1], [0, 1, 2], [0, 3]], emb) == pytest.approx(expected)  # row positions
    recs = frame({"u1": ["a", "b"], "u2": ["a", "b", "c"], "u3": ["a", "z"]})
    truth = truth_frame({"u1": ["a"], "u2": ["a"], "u3": ["a"]})
    out = ranking_metrics(recs, truth, k=3, item_categories=pd.DataFrame(emb, index=ids))
    assert out["diversity@3"] == pytest.approx(expected)


def test_novelty():
    inter = truth_frame({"u1": ["a", "b"], "u2": ["a"], "u3": ["c"], "u4": ["c"]})
    pop = item_popularity(inter)  # a: 2/4, b: 1/4, c: 2/4
    assert pop.to_dict() == {"a": 0.5, "b": 0.25, "c": 0.5}
    # [a, b]: mean(-log2 0.5, -log2 0.25) = 1.5; [b]: 2 -> mean 1.75
    assert novelty([["a", "b"], ["b"]], pop) == pytest.approx(1.75)
    out = ranking_metrics(frame({"u1": ["a", "b"], "u2": ["b"]}), inter, k=2, item_popularity=pop)
    assert out["novelty@2"] == pytest.approx(1.75)


def test_scales_to_100k_users_x_100_recs():
    rng = np.random.default_rng(0)
    n_users, n_recs, n_items = 100_000, 100, 20_000
    users = np.array([f"u{i}" for i in range(n_users)], dtype=object)
    items = np.array([f"i{i}" for i in range(n_items)], dtype=object)
    recs = pd.DataFrame({"user_id": np.repeat(users, n_recs), "rank": np.tile(np.arange(1, n_recs + 1), n_users),
                         "item_id": items[rng.integers(0, n_items, n_users * n_recs)]})  # fmt: skip
    truth = pd.DataFrame({"user_id": users[rng.integers(0, n_users, 300_000)],
                          "item_id": items[rng.integers(0, n_items, 300_000)]})  # fmt: skip
    start = time.perf_counter()
    out = ranking_metrics(recs, truth, k=[10, 100], n_items=n_items)
    assert time.perf_counter() - start < 30  # ~3 s measured; a per-user Python loop would take minutes
    assert 0 < out["recall@100"] < 0.05 and out["coverage@100"] > 0.99
