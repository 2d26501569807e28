"""Champion vs challenger (recsys.registry.promotion): the rule with its margin and guardrails, and the
alias moves of promotion and rollback on a real MLflow registry (sqlite)."""

import pytest

from recsys.registry.bundle import save_bundle
from recsys.registry.mlflow_registry import log_run, register_bundle, resolve_alias
from recsys.registry.promotion import (PromotionRule, compare, last_retrain, mean_popularity, promote,
                                       record_retrain, rollback)

RULE = PromotionRule(metric="ndcg@10", min_gain=0.05, max_coverage_drop=0.2, max_popularity_rise=0.3)
CHAMPION = {"ndcg@10": 0.10, "coverage@10": 0.5, "popularity": 100.0}


@pytest.mark.parametrize("challenger, promoted, failing", [
    ({"ndcg@10": 0.12, "coverage@10": 0.5, "popularity": 100.0}, True, None),
    ({"ndcg@10": 0.104, "coverage@10": 0.5, "popularity": 100.0}, False, "ndcg@10"),     # +4% < the margin
    ({"ndcg@10": 0.08, "coverage@10": 0.6, "popularity": 90.0}, False, "ndcg@10"),       # a worse challenger
    ({"ndcg@10": 0.15, "coverage@10": 0.3, "popularity": 100.0}, False, "coverage@10"),  # wins by narrowing
    ({"ndcg@10": 0.15, "coverage@10": 0.5, "popularity": 140.0}, False, "popularity"),   # wins on the head
])
def test_rule(challenger, promoted, failing):
    result = compare(CHAMPION, challenger, RULE)
    assert result.promote is promoted
    fails = [r for r in result.reasons if r.startswith("FAIL")]
    assert (failing is None and not fails) or (len(fails) == 1 and failing in fails[0])


def test_mean_popularity_reads_the_top_k():
    import pandas as pd

    recs = pd.DataFrame({"item_id": ["a", "b", "c"], "rank": [1, 2, 11]})
    assert mean_popularity(recs, pd.Series({"a": 10, "c": 1000}), k=10) == 5.0  # b unknown = 0; c beyond k


def test_promote_then_rollback_twice(tiny_recommender, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    versions = []
    for tag in ("v1", "v2"):
        tiny_recommender.version = tag
        bundle = save_bundle(tiny_recommender, tmp_path / "bundles" / tag, {}, {})
        versions.append(register_bundle(uri, log_run(uri, "m", {}, {}, artifacts_dir=bundle), "m"))
    assert promote(uri, "m", versions[0]) is None  # nothing in production before
    assert promote(uri, "m", versions[1]) == versions[0]
    assert resolve_alias(uri, "m", "previous")[0] == versions[0]
    assert rollback(uri, "m") == (versions[1], versions[0])
    assert resolve_alias(uri, "m", "production")[0] == versions[0]
    assert rollback(uri, "m") == (versions[0], versions[1])  # a second rollback undoes the first
    with pytest.raises(ValueError):
        rollback(uri, "m", versions[1])  # already in production
    with pytest.raises(Exception):
        rollback(uri, "m", "99")  # no such version
    assert last_retrain(uri, "m") is None
    record_retrain(uri, "m", __import__("datetime").datetime(2025, 7, 1, 12))
    assert last_retrain(uri, "m").isoformat().startswith("2025-07-01T12:00")
