"""recsys.registry.gate.check_gate on hand-made evaluation tables."""

import math

import pandas as pd
import pytest

from recsys.registry.gate import check_gate

TABLE = pd.DataFrame({"ndcg@10": [0.12, 0.07, 0.11], "recall@10": [0.18, 0.11, 0.17]},
                     index=pd.Index(["recommender", "popularity", "item_item_only"], name="model"))


def test_passes_when_every_check_holds():
    passed, reasons = check_gate(TABLE, {"min_ndcg@10": 0.1, "min_recall@10": 0.18,
                                         "must_beat": ["popularity", "item_item_only"]})
    assert passed
    assert reasons == [
        "ok: recommender ndcg@10 = 0.1200 (minimum 0.1000)",
        "ok: recommender recall@10 = 0.1800 (minimum 0.1800)",  # the bound itself passes
        "ok: recommender ndcg@10 = 0.1200 vs popularity = 0.0700 (must be higher)",
        "ok: recommender ndcg@10 = 0.1200 vs item_item_only = 0.1100 (must be higher)",
    ]


def test_fails_on_any_check_and_says_which():
    passed, reasons = check_gate(TABLE, {"min_ndcg@10": 0.13, "must_beat": "popularity", "beat_metric": "recall@10"})
    assert not passed
    assert reasons == ["FAIL: recommender ndcg@10 = 0.1200 (minimum 0.1300)",
                       "ok: recommender recall@10 = 0.1800 vs popularity = 0.1100 (must be higher)"]


def test_a_tie_does_not_beat_and_nan_fails():
    table = TABLE.copy()
    table.loc["popularity", "ndcg@10"] = 0.12
    table.loc["recommender", "recall@10"] = math.nan
    assert not check_gate(table, {"must_beat": ["popularity"]})[0]
    assert not check_gate(table, {"min_recall@10": 0.0})[0]


def test_no_thresholds_pass_without_checks():
    assert check_gate(TABLE, {}) == (True, [])


@pytest.mark.parametrize("thresholds, message", [
    ({"max_ndcg@10": 0.5}, "unknown gate threshold key"),
    ({"min_ndcg@20": 0.1}, "gate names metric 'ndcg@20'"),
    ({"must_beat": ["two_tower_only"]}, "gate names model 'two_tower_only'"),
])
def test_configuration_mistakes_raise(thresholds, message):
    with pytest.raises(ValueError, match=message):
        check_gate(TABLE, thresholds)
