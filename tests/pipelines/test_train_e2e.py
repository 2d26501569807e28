"""End to end: train_pipeline then batch_inference_pipeline on tiny synthetic data, in a throw-away ZenML
client with the project's local stack (sqlite MLflow, artifacts and bundles under a temp dir).

The run configs are the real configs/train.yaml and configs/batch.yaml with only sizes, epochs and the gate
bar shrunk, so this also proves those files run.
"""

import copy
from pathlib import Path

import pandas as pd
import pytest
import yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TINY_DATA = {"n_users": 150, "n_items": 60, "n_events": 4000, "seed": 7}
TINY_TRAINING = {
    "train_retrieval": {"params": {"epochs": 2, "embedding_dim": 16, "hidden_units": [32], "verbose": 0}},
    "train_ranker": {"params": {"kind": "lightgbm", "num_rounds": 20, "early_stopping": 5}},
    "evaluate": {"k": [5, 10]},
}
K = 5


def tiny_config(name: str, directory: Path, steps: dict) -> Path:
    """configs/<name> with the tiny dataset and the given step parameters merged in; written to directory."""
    config = copy.deepcopy(yaml.safe_load((PROJECT_ROOT / "configs" / name).read_text()))
    config["parameters"]["source_params"] = dict(TINY_DATA)
    for step_name, parameters in steps.items():
        step = config.setdefault("steps", {}).setdefault(step_name, {})
        step.setdefault("parameters", {}).update(parameters)
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text(yaml.safe_dump(config))
    return path


def test_train_registers_then_batch_predicts(clean_zenml_client, tmp_path):
    from pipelines.batch import batch_inference_pipeline
    from pipelines.training import train_pipeline
    from recsys.data.loader import load_dataset
    from recsys.registry.bundle import read_bundle_meta
    from recsys.registry.mlflow_registry import resolve_alias

    train_config = tiny_config("train.yaml", tmp_path, {
        **TINY_TRAINING, "quality_gate": {"thresholds": {"min_ndcg@10": 0.001, "must_beat": []}}})
    run = train_pipeline.with_options(config_path=str(train_config))()
    run = clean_zenml_client.get_pipeline_run(run.id)
    assert run.status.value == "completed"

    registration = run.steps["register_model"].regular_outputs["registration"].load()
    assert registration["registered"], registration
    bundle = Path(registration["bundle"])
    meta = read_bundle_meta(bundle)
    assert meta["version"] == registration["bundle_version"] and (bundle / "recommender").is_dir()
    assert meta["metrics"]["recommender/ndcg@10"] >= 0.001
    assert meta["config"]["steps"]["split_data"]["method"] == "temporal_user"

    version, run_id = resolve_alias(registration["tracking_uri"], "travel-recommender", "production")
    assert (version, run_id) == (registration["mlflow_version"], registration["mlflow_run_id"])
    production = clean_zenml_client.get_model_version("travel-recommender", "production")
    assert production.run_metadata["registration"]["bundle_version"] == registration["bundle_version"]

    # A stricter gate on the same (cached) model registers nothing and leaves the promotion alone.
    strict = tiny_config("train.yaml", tmp_path / "strict",
                         {**TINY_TRAINING, "quality_gate": {"thresholds": {"min_ndcg@10": 0.99}}})
    rerun = clean_zenml_client.get_pipeline_run(train_pipeline.with_options(config_path=str(strict))().id)
    refused = rerun.steps["register_model"].regular_outputs["registration"].load()
    assert refused["registered"] is False and rerun.steps["train_retrieval"].status.value == "cached"
    assert resolve_alias(registration["tracking_uri"], "travel-recommender", "production")[0] == version
    assert clean_zenml_client.get_model_version("travel-recommender", "production").id == production.id
    from mlflow import MlflowClient

    refused_run = MlflowClient(registration["tracking_uri"]).get_run(refused["mlflow_run_id"])
    assert refused_run.data.tags["gate_passed"] == "False" and "recommender/ndcg_at_10" in refused_run.data.metrics
    logged = {a.path for a in MlflowClient(registration["tracking_uri"]).list_artifacts(refused["mlflow_run_id"])}
    assert {"evaluation.csv", "feature_importance.csv"} <= logged

    output = tmp_path / "recommendations.csv"
    batch_config = tiny_config("batch.yaml", tmp_path, {"batch_predict": {"k": K, "output_path": str(output)}})
    batch_inference_pipeline.with_options(config_path=str(batch_config))()

    recs = pd.read_csv(output, dtype={"user_id": str, "item_id": str})
    dataset = load_dataset("synthetic", TINY_DATA)
    users = set(dataset.interactions.user_id) | set(dataset.users.user_id)
    assert set(recs.user_id) == users
    assert (recs.groupby("user_id").size() == K).all()
    assert recs.groupby("user_id")["rank"].apply(lambda ranks: sorted(ranks) == list(range(1, K + 1))).all()
    known = recs.merge(dataset.interactions[["user_id", "item_id"]].drop_duplicates(), on=["user_id", "item_id"])
    assert known.empty, f"{len(known)} recommended items are already known"
    assert set(recs.model_version.astype(str)) == {registration["bundle_version"]}
