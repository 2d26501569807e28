"""Drift checks on real Evidently reports (recsys.monitoring.drift): a recommender fitted on the synthetic
training period, checked on later weeks with and without a planted shift. The verdict's figures are read
back from Evidently's own snapshots and cross-checked against recsys.evaluation on the same lists."""

import pandas as pd
import pytest

from recsys.data.shifts import generate_days
from recsys.data.synthetic import generate_travel_data
from recsys.evaluation.metrics import ranking_metrics
from recsys.monitoring.drift import Thresholds, _column_scores, _recsys_values, bucket, check_window
from recsys.training import build_recommender, fit_candidate_generator

P = {"n_users": 400, "n_items": 80, "n_events": 12000, "seed": 11, "days": 60}
END = pd.Timestamp("2025-01-01", tz="UTC") + pd.Timedelta(days=60)


@pytest.fixture(scope="module")
def base():
    return generate_travel_data(**P)


def recommender(base):
    ds = base
    generator = fit_candidate_generator(ds.interactions, ds.interactions.iloc[:0], ds.items, ds.users)
    return build_recommender(generator, None, ds.items, ds.users, ds.interactions)


def check(base, shift, week=1):
    later = generate_days(P, 60, 7 * (week + 1), {"kind": shift, "after_days": 0})
    events = later.interactions
    start = END + pd.Timedelta(days=7 * week)
    window = events[events.timestamp >= start]
    reference = base.interactions[base.interactions.timestamp >= END - pd.Timedelta(days=28)]
    return check_window(recommender(base), reference, window, later.items, events[events.timestamp < start],
                        0.12, Thresholds(), "m", "1", (start, start + pd.Timedelta(days=7)), max_users=None)


def test_control_week_and_launch_week(base):
    control, launch = check(base, "none"), check(base, "launches")
    names = [s.name for s in control.verdict.signals]
    assert names == ["data_drift", "activity_drift", "prediction_drift", "outcome_ndcg", "popularity_bias",
                     "coverage", "personalization"]
    assert not control.verdict.fired("drift") and control.verdict.signal("data_drift").value == 0.0
    columns = launch.verdict.signal("data_drift").detail["columns"]
    assert columns["popularity_bucket"] > 0.1 and launch.verdict.signal("data_drift").fired  # the new hotels
    assert set(control.snapshots) == {"data", "activity", "predictions", "quality"}
    assert "<iframe" in launch.html and len(launch.html) > 100_000  # the Evidently pages, embedded


def test_figures_are_read_back_from_the_snapshots_and_cross_checked(base):
    result = check(base, "none")
    outcome = result.verdict.signal("outcome_ndcg")
    data = result.snapshots["data"]["metrics"]
    shares = [m["value"]["share"] for m in data if m["config"]["type"].endswith("DriftedColumnsCount")]
    assert shares == [result.verdict.signal("data_drift").value]
    # HitRate@10 from Evidently equals the project's hit@10 on the same lists (Evidently counts users
    # without a hit only once they are in the frame: the missed relevant items are added at rank k+1)
    assert outcome.detail["evidently_hitrate@10"] == pytest.approx(outcome.detail["hit@10"])
    assert 0 < outcome.value < 1 and outcome.reference == 0.12


def test_snapshot_parsers_on_a_hand_made_report():
    from evidently import DataDefinition, Dataset, Recsys, Report
    from evidently.metrics import HitRate, Personalization, ValueDrift

    ref = pd.DataFrame({"x": [0.0, 1.0] * 600})
    cur = pd.DataFrame({"x": [5.0, 6.0] * 600})
    snap = Report([ValueDrift(column="x", method="wasserstein", threshold=0.1)]).run(
        Dataset.from_pandas(cur, data_definition=DataDefinition(numerical_columns=["x"])),
        Dataset.from_pandas(ref, data_definition=DataDefinition(numerical_columns=["x"])))
    assert _column_scores(snap)[1]["x"] == pytest.approx(10.0)  # |mean shift| / std of the reference
    recs = pd.DataFrame({"user_id": ["a", "a", "b", "b"], "item_id": ["i", "j", "i", "k"],
                         "prediction": [1, 2, 1, 2], "target": [1, 0, 0, 0]})
    definition = DataDefinition(ranking=[Recsys(recommendations_type="rank")], categorical_columns=["user_id", "item_id"],
                                numerical_columns=["prediction", "target"])
    snap = Report([HitRate(k=2), Personalization(k=2)]).run(Dataset.from_pandas(recs, data_definition=definition))
    values = _recsys_values(snap, 2)
    assert values["personalization"] == pytest.approx(0.5)  # one of the two items differs between the lists
    truth = pd.DataFrame({"user_id": ["a"], "item_id": ["i"]})
    ours = ranking_metrics(recs.rename(columns={"prediction": "rank"}), truth, 2)["hit@2"]
    assert values["evidently_hitrate@2"] == pytest.approx(ours) == 1.0  # b has no relevant item: skipped


def test_popularity_buckets():
    popularity = pd.Series({"a": 50, "b": 30, "c": 10, "d": 5, "e": 5})
    got = bucket(pd.Series(["a", "b", "c", "e", "zz"]), popularity).tolist()
    assert got == ["head", "torso", "torso", "tail", "new"]
