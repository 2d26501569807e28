"""The canary decision rule (hand-derived numbers), the log rows it counts, and its effect on a real MLflow
registry (sqlite): promote moves production and keeps previous, roll back moves the canary alias back."""

import json
import math

import pandas as pd
import pytest

from recsys.deploy.canary import (CanaryRule, conclude, decide, experiment_log, read_decision, start)
from recsys.registry.mlflow_registry import log_run, register_bundle, resolve_alias, version_tags
from recsys.registry.promotion import promote

RULE = CanaryRule(min_trials=1000, max_trials=20000, alpha=0.05, min_lift=0.05)


def table(control, treatment):
    return pd.DataFrame({"trials": [control[0], treatment[0]], "successes": [control[1], treatment[1]]},
                        index=["control", "treatment"])


def test_a_significant_gain_promotes():
    # 3,000 trials each, 90 (3.0%) vs 135 (4.5%) successes: pooled p = 225/6000 = 0.0375,
    # SE = sqrt(0.0375 * 0.9625 * 2/3000) = 0.0049054, z = 0.015 / 0.0049054 = 3.0579, p = 0.00223; lift +50%
    decision = decide(table((3000, 90), (3000, 135)), RULE)
    assert decision.action == "promote", decision.reason
    assert decision.treatment["z"] == pytest.approx(3.0579, abs=1e-3)
    assert decision.treatment["p_value"] == pytest.approx(0.00223, abs=2e-5)
    assert decision.treatment["lift"] == pytest.approx(0.5)
    assert decision.control == {"trials": 3000, "successes": 90, "rate": 0.03}


def test_a_significant_loss_rolls_back_and_a_small_sample_waits():
    assert decide(table((3000, 135), (3000, 90)), RULE).action == "rollback"
    # The same rates on 900 trials each: below min_trials, whatever the z says.
    waiting = decide(table((900, 27), (900, 45)), RULE)
    assert waiting.action == "wait" and "1000" in waiting.reason


def test_an_unproven_canary_waits_then_is_rolled_back_at_max_trials():
    # +2% lift (3.0% vs 3.06%) is far from significant: wait below max_trials, roll back at it.
    assert decide(table((5000, 150), (5000, 153)), RULE).action == "wait"
    done = decide(table((20000, 600), (20000, 612)), RULE)
    assert done.action == "rollback" and "max 20000" in done.reason


def test_a_significant_gain_below_min_lift_is_not_promoted():
    # 30,000 trials each, 3.0% vs 3.12% (+4%): z = 0.0012 / sqrt(0.0306 * 0.9694 * 2/30000) = 0.8637: not
    # significant; with 300,000 each z = 2.73 (p 0.006), significant, but +4% < min_lift 5%.
    rule = RULE.model_copy(update={"max_trials": 10**7})
    decision = decide(table((300000, 9000), (300000, 9360)), rule)
    assert decision.treatment["p_value"] < 0.01 and decision.treatment["lift"] == pytest.approx(0.04)
    assert decision.action == "wait"
    assert decide(table((300000, 9000), (300000, 9360)), rule.model_copy(update={"min_lift": 0.0})).action == "promote"


def test_no_treatment_traffic_yet_waits():
    only_control = pd.DataFrame({"trials": [500], "successes": [10]}, index=["control"])
    decision = decide(only_control, RULE)
    assert decision.action == "wait" and "treatment" in decision.reason and math.isnan(decision.treatment["rate"])


def test_only_impressions_of_the_versions_in_play_count():
    log = pd.DataFrame([
        {"type": "impression", "experiment": "canary", "variant": "control", "user_id": "a", "items": ["i1"],
         "model_version": "v1", "ts": 1},
        {"type": "impression", "experiment": "canary", "variant": "treatment", "user_id": "b", "items": ["i1"],
         "model_version": "v2", "ts": 1},
        {"type": "impression", "experiment": "canary", "variant": "treatment", "user_id": "c", "items": ["i1"],
         "model_version": "v0", "ts": 1},  # an older canary under the same alias
        {"type": "impression", "experiment": "other", "variant": "control", "user_id": "d", "items": ["i1"],
         "model_version": "v1", "ts": 1},
        {"type": "feedback", "user_id": "b", "item_id": "i1", "event_type": "click", "ts": 2},
        {"type": "feedback", "user_id": "c", "item_id": "i1", "event_type": "click", "ts": 2},
    ])
    kept = experiment_log(log, "canary", {"control": "v1", "treatment": "v2"})
    assert sorted(kept[kept["type"] == "impression"].user_id) == ["a", "b"]
    decision = read_decision(log, "canary", {"control": "v1", "treatment": "v2"}, CanaryRule(min_trials=1))
    assert (decision.control["trials"], decision.control["successes"]) == (1, 0)
    assert (decision.treatment["trials"], decision.treatment["successes"]) == (1, 1)  # c's click is not v2's


@pytest.fixture
def registry(tiny_recommender, tmp_path):
    """Three registered versions of "m" (1 in production) on a sqlite MLflow registry."""
    from recsys.registry.bundle import save_bundle

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    bundle = save_bundle(tiny_recommender, tmp_path / "bundle", {"ndcg@10": 0.1}, {})
    for _ in range(3):
        register_bundle(uri, log_run(uri, "m", {}, {}, artifacts_dir=bundle), "m")
    promote(uri, "m", "1")
    return uri


def test_promote_and_rollback_on_the_registry(registry):
    uri, win = registry, decide(table((3000, 90), (3000, 135)), RULE)
    assert start(uri, "m", "2") is None
    done = conclude(uri, "m", win)
    assert done["action"] == "promote" and done["previous_version"] == "1"
    assert resolve_alias(uri, "m", "production")[0] == "2" and resolve_alias(uri, "m", "previous")[0] == "1"
    tags = version_tags(uri, "m", "2")
    assert tags["canary_decision"] == "promote"
    assert float(tags["canary_treatment_p_value"]) == pytest.approx(0.00223, abs=2e-5)
    assert json.loads(tags["canary_rule"])["min_trials"] == 1000

    assert start(uri, "m", "3") == "2"
    lose = decide(table((3000, 135), (3000, 90)), RULE)
    assert conclude(uri, "m", lose)["action"] == "rollback"
    assert resolve_alias(uri, "m", "canary")[0] == "2"  # the treatment group gets production back
    assert resolve_alias(uri, "m", "production")[0] == "2"  # production never moved
    assert version_tags(uri, "m", "3")["canary_decision"] == "rollback"
    with pytest.raises(ValueError, match="already in production"):  # nothing left to conclude
        conclude(uri, "m", lose)
    wait = decide(table((10, 1), (10, 1)), RULE)
    assert conclude(uri, "m", wait)["action"] == "wait"  # changes nothing, raises nothing


def test_an_empty_or_foreign_log_waits():
    versions = {"control": "v1", "treatment": "v2"}
    assert read_decision(pd.DataFrame(columns=["type"]), "canary", versions, RULE).action == "wait"
    other = pd.DataFrame([{"type": "impression", "experiment": "other", "variant": "treatment", "user_id": "a",
                           "items": ["i1"], "model_version": "v2", "ts": 1}])
    decision = read_decision(other, "canary", versions, RULE)
    assert decision.action == "wait" and "no impressions" in decision.reason
