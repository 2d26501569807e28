"""The loop's window protocol (recsys.evaluation.window): every window user is scored on the distinct items
they interacted with in it, from what the model knew before it, through recommend_batch."""

import numpy as np
import pandas as pd
import pytest

from recsys.evaluation.baselines import PopularityRecommender
from recsys.evaluation.window import add_history, score_window, window_truth


def frame(rows):
    return pd.DataFrame(rows, columns=["user_id", "item_id", "event_type", "timestamp"]).assign(
        timestamp=lambda f: pd.to_datetime(f.timestamp, unit="s", utc=True))


def test_truth_is_distinct_and_sampled_consistently():
    window = frame([("u1", "a", "view", 1), ("u1", "a", "click", 2), ("u2", "b", "view", 3), ("u3", "c", "view", 4)])
    assert len(window_truth(window)) == 3
    sample = window_truth(window, max_users=2, seed=7)
    assert sample.user_id.nunique() == 2 and sample.equals(window_truth(window, max_users=2, seed=7))


def test_score_by_hand_with_the_popularity_baseline():
    history = frame([("u9", "a", "view", 1), ("u9", "a", "view", 2), ("u9", "b", "view", 3), ("u1", "a", "view", 4)])
    model = PopularityRecommender(history, known=history)  # ranks a, b; u1 has seen a
    window = frame([("u1", "b", "view", 10), ("u2", "b", "click", 11), ("u2", "c", "view", 12)])
    score = score_window(model, window, k=2, n_items=3)
    # u1: [b] (a seen) -> hit at 1, ndcg 1; u2: [a, b] -> b at rank 2 of relevant {b, c}:
    # dcg = 1/log2(3), idcg = 1 + 1/log2(3)
    expected = (1.0 + (1 / np.log2(3)) / (1 + 1 / np.log2(3))) / 2
    assert score.metrics["ndcg@2"] == pytest.approx(expected) and score.metrics["hit@2"] == 1.0
    assert score.n_users == 2 and set(score.recommendations.user_id) == {"u1", "u2"}


def test_add_history_teaches_the_serving_history(tiny_recommender, tiny_dataset):
    user = tiny_dataset.interactions.user_id.iloc[0]
    before = len(tiny_recommender.history.items(user))
    item = tiny_dataset.items.item_id.iloc[0]
    add_history(tiny_recommender, frame([(user, item, "click", 2e9), (user, "not-in-catalogue", "view", 2e9)]))
    assert len(tiny_recommender.history.items(user)) == before + 1
