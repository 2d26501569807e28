"""Evaluation-stage steps called directly: evaluate on a real (TensorFlow-free) recommender, quality_gate."""

import pandas as pd

from recsys.data.splits import split_interactions
from recsys.training import build_recommender, fit_candidate_generator
from steps.evaluation import evaluate, quality_gate


def test_evaluate_scores_the_recommender_beside_its_baselines(tiny_dataset):
    ds = tiny_dataset
    split = split_interactions(ds.interactions, "temporal_user", (0.8, 0.1, 0.1))
    generator = fit_candidate_generator(split.train, split.valid, ds.items, ds.users)
    recommender = build_recommender(generator, None, ds.items, ds.users, pd.concat([split.train, split.valid]))

    table, report = evaluate.entrypoint(recommender, split.train, split.valid, split.test, ds.items, (5, 10))
    assert list(table.index) == ["recommender", "popularity", "item_item_only"]
    assert {"ndcg@5", "ndcg@10", "recall@10", "coverage@10", "diversity@10", "novelty@10"} <= set(table.columns)
    assert table.loc["recommender", "coverage@10"] > 0
    assert "| recommender |" in str(report) and f"{split.test.user_id.nunique()} test users" in str(report)


def test_quality_gate_returns_the_decision():
    table = pd.DataFrame({"ndcg@10": [0.12, 0.07]}, index=["recommender", "popularity"])
    assert quality_gate.entrypoint(table, {"min_ndcg@10": 0.1, "must_beat": ["popularity"]}) is True
    assert quality_gate.entrypoint(table, {"min_ndcg@10": 0.2}) is False
