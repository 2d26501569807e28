"""End to end: the monitoring loop on tiny synthetic data in a throw-away ZenML client: train, then
drift (verdict, HTML report, MLflow run, Prometheus figures), a forced retrain whose challenger wins (new
production version, `previous` kept, ZenML stage moved, the hold-out window in its data window), a retrain
whose challenger must beat an impossible margin (the champion stays, the reason is recorded), a retrain the
policy declines, and a rollback. The configs are the real configs/*.yaml with sizes shrunk."""

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.pipelines.test_train_e2e import TINY_DATA, TINY_TRAINING, tiny_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]
LOOP = {"check_drift": {"min_events": 50, "metrics_file": "data/monitoring/loop.prom"},
        "decide_retrain": {"metrics_file": "data/monitoring/loop.prom"},
        "promote_challenger": {"metrics_file": "data/monitoring/loop.prom"},
        "train_challenger": {"recipe": {"train_retrieval": {"epochs": 1, "verbose": 0}}}}


def loop_config(name: str, directory: Path, steps: dict, policy: dict | None = None, rule: dict | None = None):
    config = copy.deepcopy(yaml.safe_load((PROJECT_ROOT / "configs" / name).read_text()))
    config["parameters"]["current"]["params"] = {**TINY_DATA, "shift": {"kind": "launches", "after_days": 0}}
    if "training_days" in config["parameters"]:
        config["parameters"]["training_days"] = 90  # the tiny data has ~20 events a day: four weeks is too few
    for step_name, parameters in {**LOOP, **steps}.items():
        if step_name in config.get("steps", {}) or step_name in ("check_drift",):
            config["steps"].setdefault(step_name, {}).setdefault("parameters", {}).update(parameters)
    if policy:
        config["steps"]["decide_retrain"]["parameters"]["policy"].update(policy)
    if rule:
        config["steps"]["compare_models"]["parameters"]["rule"].update(rule)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(yaml.safe_dump(config))
    return path


def output(client, run, step, name):
    return client.get_pipeline_run(run.id).steps[step].regular_outputs[name].load()


def test_train_drift_retrain_rollback(clean_zenml_client, tmp_path):
    from pipelines.drift import drift_pipeline
    from pipelines.retrain import retrain_pipeline
    from pipelines.rollback import rollback_pipeline
    from pipelines.training import train_pipeline
    from recsys.registry.bundle import read_bundle_meta
    from recsys.registry.mlflow_registry import resolve_alias

    client = clean_zenml_client
    train = tiny_config("train.yaml", tmp_path, {**TINY_TRAINING, "quality_gate": {"thresholds": {}}})
    run = train_pipeline.with_options(config_path=str(train))()
    registration = output(client, run, "register_model", "registration")
    uri, first = registration["tracking_uri"], registration["mlflow_version"]
    window_end = pd.Timestamp(read_bundle_meta(registration["bundle"])["config"]["data_window"]["end"])

    run = drift_pipeline.with_options(config_path=str(loop_config("drift.yaml", tmp_path / "d", {})))()
    verdict = output(client, run, "check_drift", "drift_verdict")
    assert verdict.model_version == first and not verdict.skipped
    assert verdict.window_start == window_end and verdict.signal("outcome_ndcg").reference > 0
    assert verdict.signal("data_drift").detail["columns"]["popularity_bucket"] > 0  # the launched hotels
    report = client.get_pipeline_run(run.id).steps["check_drift"].outputs["drift_report"][0]
    assert report.visualizations and "Drift check" in output(client, run, "check_drift", "drift_report")
    assert "recsys_drift_signal_value" in Path("data/monitoring/loop.prom").read_text()
    from mlflow import MlflowClient

    monitoring = MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name(
        "travel-recommender-monitoring").experiment_id])
    assert "outcome_ndcg" in monitoring[0].data.metrics

    forced = loop_config("retrain_forced.yaml", tmp_path / "f", {},
                         rule={"min_gain": -1.0, "max_coverage_drop": 1.0, "max_popularity_rise": 100.0})
    run = retrain_pipeline.with_options(config_path=str(forced))()
    decision = output(client, run, "decide_retrain", "retrain_decision")
    promotion = output(client, run, "promote_challenger", "promotion")
    assert decision.retrain and decision.forced and promotion["promoted"], promotion
    second = promotion["mlflow_version"]
    assert resolve_alias(uri, "travel-recommender", "production")[0] == second != first
    assert resolve_alias(uri, "travel-recommender", "previous")[0] == first
    assert client.get_model_version("travel-recommender", "production").run_metadata["registration"][
        "mlflow_version"] == second
    checked = output(client, run, "check_drift", "drift_verdict")
    assert checked.window_start == verdict.window_end  # the next week
    meta = read_bundle_meta(promotion["bundle"])
    assert meta["config"]["data_window"]["end"] == checked.window_end.isoformat()  # it learnt the held-out week
    assert meta["config"]["recipe"]["train_retrieval"]["epochs"] == 1

    strict = loop_config("retrain_forced.yaml", tmp_path / "s", {}, rule={"min_gain": 10.0})
    run = retrain_pipeline.with_options(config_path=str(strict))()
    kept = output(client, run, "promote_challenger", "promotion")
    comparison = output(client, run, "compare_models", "champion_vs_challenger")
    assert not kept["promoted"] and "ndcg@10" in kept["reason"] and not comparison.promote
    assert resolve_alias(uri, "travel-recommender", "production")[0] == second

    quiet = loop_config("retrain.yaml", tmp_path / "q", {}, policy={"min_new_events": 50, "cooldown_days": 10})
    run = retrain_pipeline.with_options(config_path=str(quiet))()
    declined = output(client, run, "decide_retrain", "retrain_decision")
    assert not declined.retrain and "cooldown" in declined.reason
    assert output(client, run, "promote_challenger", "promotion")["promoted"] is False
    assert client.get_pipeline_run(run.id).steps["train_challenger"].regular_outputs["challenger"].load() is None

    run = rollback_pipeline.with_options(config_path=str(PROJECT_ROOT / "configs" / "rollback.yaml"))()
    assert output(client, run, "rollback_model", "rollback")["to_version"] == first
    assert resolve_alias(uri, "travel-recommender", "production")[0] == first
    assert client.get_model_version("travel-recommender", "production").run_metadata["registration"][
        "mlflow_version"] == first
