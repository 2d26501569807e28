"""Evaluation-stage steps called directly: evaluate on a real (TensorFlow-free) recommender, quality_gate."""

import pandas as pd

from recsys.data.splits import split_interactions
from recsys.training import build_recommender, candidate_recall, fit_candidate_generator
from steps.evaluation import evaluate, quality_gate
from tests.steps.images import png_images


def test_evaluate_scores_the_recommender_beside_its_baselines(tiny_dataset):
    ds = tiny_dataset
    split = split_interactions(ds.interactions, "temporal_user", (0.8, 0.1, 0.1))
    generator = fit_candidate_generator(split.train, split.valid, ds.items, ds.users)
    recommender = build_recommender(generator, None, ds.items, ds.users, pd.concat([split.train, split.valid]))
    recall = candidate_recall(generator, split.train, split.valid)
    importance = pd.DataFrame({"feature": ["item_item_score", "popularity"], "gain": [3.0, 1.0], "share": [0.75, 0.25]})

    table, report = evaluate.entrypoint(recommender, split.train, split.valid, split.test, ds.items, (5, 10),
                                        candidate_recall=recall, feature_importance=importance)
    assert list(table.index) == ["recommender", "popularity", "item_item_only"]
    assert {"ndcg@5", "ndcg@10", "recall@10", "coverage@10", "diversity@10", "novelty@10"} <= set(table.columns)
    assert table.loc["recommender", "coverage@10"] > 0
    assert f"{split.test.user_id.nunique()} test users" in report
    # every panel a practitioner expects, each with a drawn figure (the samples are a table)
    for section in ("Metrics beside the baselines", "Quality by user segment", "Candidate recall by source",
                    "Score distribution", "Feature importance", "Sample recommendations"):
        assert f"<h2>{section}</h2>" in report, section
    png_images(report, at_least=5)
    assert report.count("class='user'") >= 2  # sample users with their lists


def test_quality_gate_returns_the_decision_and_its_report():
    table = pd.DataFrame({"ndcg@10": [0.12, 0.07]}, index=["recommender", "popularity"])
    passed, report = quality_gate.entrypoint(table, {"min_ndcg@10": 0.1, "must_beat": ["popularity"]})
    assert passed is True and "PASSED" in report and "ndcg@10 &gt; popularity" in report
    png_images(report, at_least=1)
    passed, report = quality_gate.entrypoint(table, {"min_ndcg@10": 0.2})
    assert passed is False and "FAILED" in report and "0.1200" in report and "0.2000" in report
