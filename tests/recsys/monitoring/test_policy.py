"""The retrain decision (recsys.monitoring.policy): outcome retrains, drift alone alerts, consecutive
windows, minimum data, cooldown, force. Verdicts are built by hand; the figures are the rule's inputs."""

from datetime import datetime, timedelta, timezone

import pytest

from recsys.monitoring.policy import OUTCOME, RetrainPolicy, decide, meets_rule
from recsys.monitoring.verdict import DriftVerdict, Signal

T0 = datetime(2025, 7, 1, tzinfo=timezone.utc)
POLICY = RetrainPolicy(outcome_drop=0.2, confirm_drop=0.1, consecutive_windows=2, min_new_events=100,
                       cooldown_days=7)


def verdict(week: int, ndcg: float, drift: bool = False, events: int = 1000, version: str = "1") -> DriftVerdict:
    start = T0 + timedelta(days=7 * week)
    return DriftVerdict(model_name="m", model_version=version, window_start=start, window_end=start + timedelta(days=7),
                        reference_start=T0 - timedelta(days=28), reference_end=T0, n_events=events, n_users=100,
                        signals=[Signal(name="data_drift", kind="drift", value=0.5 if drift else 0.0, threshold=0.3,
                                        fired=drift),
                                 Signal(name=OUTCOME, kind="outcome", value=ndcg, reference=0.10, threshold=0.2,
                                        fired=ndcg <= 0.08)])


@pytest.mark.parametrize("ndcg, drift, expected", [
    (0.10, False, False),   # nothing moved
    (0.10, True, False),    # drift alone alerts, never retrains
    (0.085, False, False),  # a 15% drop without drift: below outcome_drop
    (0.085, True, True),    # a 15% drop confirmed by drift: >= confirm_drop
    (0.075, False, True),   # a 25% drop on its own
])
def test_the_rule_for_one_window(ndcg, drift, expected):
    ok, why = meets_rule(verdict(0, ndcg, drift), POLICY)
    assert ok is expected, why


def test_consecutive_windows():
    first, second = verdict(0, 0.07), verdict(1, 0.07)
    assert not decide(first, [], POLICY).retrain
    decision = decide(second, [first], POLICY)
    assert decision.retrain and decision.consecutive == 2 and decision.alert
    broken = decide(verdict(2, 0.07), [first, verdict(1, 0.10), ], POLICY)  # the run was broken by week 1
    assert not broken.retrain and broken.consecutive == 1
    later_only = decide(second, [verdict(3, 0.07)], POLICY)  # a window after this one is not history
    assert not later_only.retrain


def test_drift_alone_alerts_without_retraining():
    decision = decide(verdict(1, 0.10, drift=True), [verdict(0, 0.10, drift=True)], POLICY)
    assert decision.alert and not decision.retrain and "outcome holds" in decision.reason


def test_minimum_data_and_cooldown():
    first = verdict(0, 0.07)
    assert "new events" in decide(verdict(1, 0.07, events=50), [first], POLICY).reason
    recent = T0 + timedelta(days=10)  # a retrain at the end of week 1 - 4 days: inside the cooldown
    cooled = decide(verdict(1, 0.07), [first], POLICY, last_retrain=recent)
    assert not cooled.retrain and "cooldown" in cooled.reason
    # after the cooldown, windows before the last retrain no longer count towards the run
    after = decide(verdict(3, 0.07), [first, verdict(1, 0.07), verdict(2, 0.07)], POLICY,
                   last_retrain=T0 + timedelta(days=14))
    assert after.retrain and after.consecutive == 2


def test_force_and_skipped_windows():
    forced = decide(verdict(0, 0.10), [], POLICY.model_copy(update={"force": True}))
    assert forced.retrain and forced.forced
    skipped = verdict(0, 0.07).model_copy(update={"skipped": "12 events in the window", "signals": []})
    assert not meets_rule(skipped, POLICY)[0]


def test_unknown_policy_keys_are_refused():
    with pytest.raises(ValueError):
        RetrainPolicy.model_validate({"consecutive_window": 3})
