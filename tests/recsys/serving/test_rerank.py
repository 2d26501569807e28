"""Re-rank stage: MMR on hand-computable embeddings, boost / bury / pin rules, rule validation."""

import numpy as np
import pandas as pd
import pytest

from recsys.serving.context import ContextFilter
from recsys.serving.rerank import Reranker, mmr, parse_rules

E1, E2 = np.array([1.0, 0.0]), np.array([0.0, 1.0])


def test_mmr_weight_zero_is_relevance_order():
    rel = np.array([0.2, 1.0, 0.5, 0.9])
    assert list(mmr(rel, np.eye(4), 0.0, 4)) == [1, 3, 2, 0]


def test_mmr_trades_relevance_for_novelty_by_hand():
    # items 0 and 1 are the same vector, item 2 is orthogonal; relevance 1.0, 0.9, 0.5.
    V = np.stack([E1, E1, E2])
    sim = V @ V.T
    rel = np.array([1.0, 0.9, 0.5])
    # w = 0.5: first pick item 0 (0.5 * 1.0); then item 1 gains 0.5*0.9 - 0.5*1 = -0.05 and item 2 gains
    # 0.5*0.5 - 0.5*0 = 0.25, so item 2 comes second.
    assert list(mmr(rel, sim, 0.5, 3)) == [0, 2, 1]
    # w = 0.1: item 1 gains 0.9*0.9 - 0.1*1 = 0.71 > item 2's 0.9*0.5 = 0.45: relevance still wins.
    assert list(mmr(rel, sim, 0.1, 3)) == [0, 1, 2]
    # The break-even weight: 0.9(1-w) - w = 0.5(1-w)  <=>  w = 0.4 / 1.4 = 0.2857...
    assert list(mmr(rel, sim, 0.28, 3)) == [0, 1, 2] and list(mmr(rel, sim, 0.29, 3)) == [0, 2, 1]


def test_reranker_uses_vectors_and_normalises_scores():
    vectors = np.stack([E1, E1, E2, E2])
    rr = Reranker(weight=0.5, pool=10, vectors=vectors)
    pos, sc, labels = rr.rerank(np.array([0, 1, 2, 3]), np.array([10.0, 9.0, 5.0, 1.0]), 3)
    # rel = (s - 1) / 9 = [1, 8/9, 4/9, 0]; after item 0: item1 -> 0.5*8/9 - 0.5 < item2 -> 0.5*4/9 - 0
    assert list(pos) == [0, 2, 1] and list(sc) == [10.0, 5.0, 9.0] and list(labels) == ["", "", ""]


def test_category_similarity():
    rr = Reranker(weight=0.5, pool=10, categories=np.array([0, 0, 1]))
    pos, _, _ = rr.rerank(np.array([0, 1, 2]), np.array([3.0, 2.0, 1.0]), 3)
    assert list(pos) == [0, 2, 1]


@pytest.fixture
def cf():
    return ContextFilter(pd.DataFrame({"category": ["beach", "ski", "ski", "city", "beach"]}))


INDEX = {f"i{n}": n for n in range(5)}


def test_boost_bury_and_pin(cf):
    rules = parse_rules([
        {"action": "boost", "where": {"category": "city"}, "amount": 0.6, "label": "city week"},
        {"action": "bury", "items": ["i0"]},
        {"action": "pin", "item_id": "i4", "slot": 2, "label": "partner"},
    ], cf, INDEX)
    rr = Reranker(weight=0.0, pool=10, rules=rules)
    # scores -> rel: i0 1.0 (buried: -999), i1 0.75, i2 0.5, i3 0.0 + 0.6 boost = 0.6
    pos, sc, labels = rr.rerank(np.array([0, 1, 2, 3]), np.array([4.0, 3.0, 2.0, 0.0]), 4)
    # order before pins: i1 (0.75), i3 (0.6), i2 (0.5), i0 (buried); i4 is pinned into slot 2.
    assert list(pos) == [1, 4, 3, 2]
    assert list(labels) == ["", "pin:partner", "boost:city week", ""]
    assert sc[1] == 0.0  # a pinned non-candidate takes the score of the slot it displaced


def test_pin_respects_the_filters(cf):
    rules = parse_rules([{"action": "pin", "item_id": "i4", "slot": 1}], cf, INDEX)
    rr = Reranker(rules=rules)
    pos, _, _ = rr.rerank(np.array([0, 1]), np.array([2.0, 1.0]), 2, allowed=lambda p: p != 4)
    assert list(pos) == [0, 1]
    pos, _, _ = rr.rerank(np.array([0, 1]), np.array([2.0, 1.0]), 2)
    assert list(pos) == [4, 0]  # pinned to slot 1, the list stays k long


@pytest.mark.parametrize("rule, match", [
    ({"action": "promote"}, "action"),
    ({"action": "boost", "amount": 1}, "exactly one of where"),
    ({"action": "boost", "where": {"colour": "red"}}, "unknown context filter"),
    ({"action": "pin", "slot": 1}, "item_id"),
    ({"action": "pin", "item_id": "i1", "slot": 0}, "1-based"),
    ({"action": "bury", "items": ["i1"], "amount": 2}, "unknown keys"),
])
def test_bad_rules_are_rejected(cf, rule, match):
    with pytest.raises(ValueError, match=match):
        parse_rules([rule], cf, INDEX)


def test_rules_from_config_apply_to_served_and_batch_lists(make):
    rec = make({"rules": [{"action": "pin", "item_id": "b9", "slot": 1, "label": "partner"},
                          {"action": "bury", "where": {"category": "beach"}}],
                "filters": {"record_impressions": False}})
    out = rec.recommend("u5", 4)
    assert out[0]["item_id"] == "b9" and out[0]["stage"] == "pinned" and "promoted (partner)" in out[0]["reason"]
    cats = dict(zip(rec.catalog.item_ids, rec.catalog.attributes.category))
    kinds = [cats[r["item_id"]] for r in out]
    assert kinds == sorted(kinds, key=lambda c: c == "beach")  # buried beach hotels after all others
    batch = rec.recommend_batch(["u5"], 4)
    assert list(batch.item_id) == [r["item_id"] for r in out] and batch.stage.iloc[0] == "pinned"
    with pytest.raises(ValueError, match="mmr_weight"):
        make({"rerank": {"mmr_weight": 1.0}})
    with pytest.raises(ValueError, match="unknown serving setting"):
        make({"rerank": {"weight": 0.3}})
