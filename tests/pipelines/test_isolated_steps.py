"""Each step as if in its own pod: the train pipeline still registers the same model.

On Kubeflow every step runs in a fresh container: another working directory, an empty disk, nothing of the
step before it except ZenML artifacts and the stack's services. Here the tiny train pipeline (the real
configs/train.yaml, shrunk as in test_train_e2e.py) runs on the local orchestrator with every step wrapped
so that it starts in a new empty working directory with the project's data/ emptied of everything but the
stack's own stores (ZenML artifact store, MLflow), and with RECSYS_STATE_ROOT on fsspec's in-memory
filesystem (memory://, standing in for the s3:// / gs:// root a Kubeflow run gets). A step that read a file
another step left on its disk or in its working directory would fail or train something else. The model it
registers must load from the shared location and recommend what the model of a plain run recommends.
"""

import os
import shutil
import uuid
from pathlib import Path

import fsspec
import pandas as pd
import pytest

from recsys.storage import STATE_ROOT_ENV
from tests.pipelines.test_train_e2e import TINY_DATA, TINY_TRAINING, tiny_config

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
STACK_STATE = {"zenml_artifacts", "mlflow"}  # the local stack's artifact store and MLflow: services on a cluster
MODEL = "travel-recommender"


def recommendations(bundle_dir: Path, users) -> pd.DataFrame:
    from recsys.registry.bundle import load_bundle

    recommender, _ = load_bundle(bundle_dir)
    return recommender.recommend_batch(list(users), 10)[["user_id", "rank", "item_id", "score"]]


def online_rows(project: Path, users) -> pd.DataFrame:
    """The users' rows in the online store the run materialized (pulled first where it is shared)."""
    from recsys.features.definitions import FeatureSpec, features_dir
    from recsys.features.online import OnlineFeatures
    from recsys.features.store import pull_state

    repo = project / "feature_repo"
    pull_state(repo)
    return OnlineFeatures(FeatureSpec.read(features_dir(repo)), repo, clock="snapshot", item_ids=[]).user_features(users)


def fresh_pod(project: Path, scratch: Path):
    """Before a step: a new empty working directory, and the project's data/ without any handed-over file."""
    data = project / "data"
    for entry in data.iterdir() if data.is_dir() else []:
        if entry.name not in STACK_STATE:
            shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
    shutil.rmtree(data / "mlflow" / "downloads", ignore_errors=True)
    workdir = scratch / uuid.uuid4().hex[:8]
    workdir.mkdir(parents=True)
    os.chdir(workdir)
    return workdir


def test_train_with_every_step_in_a_fresh_pod_registers_the_same_model(clean_zenml_client, tmp_path, monkeypatch):
    from zenml.orchestrators.step_runner import StepRunner

    from pipelines.training import train_pipeline
    from recsys.data.loader import load_dataset
    from recsys.registry.bundle import read_bundle_meta
    from recsys.storage import Location

    project = Path(clean_zenml_client.root)
    config = tiny_config("train.yaml", tmp_path, {
        **TINY_TRAINING, "quality_gate": {"thresholds": {"min_ndcg@10": 0.001, "must_beat": []}}})
    users = sorted(set(load_dataset("synthetic", TINY_DATA).interactions.user_id))

    # The plain run: every step in the calling process, state under the project's data/.
    monkeypatch.delenv(STATE_ROOT_ENV, raising=False)
    plain = clean_zenml_client.get_pipeline_run(train_pipeline.with_options(config_path=str(config),
                                                                            enable_cache=False)().id)
    plain_registration = plain.steps["register_model"].regular_outputs["registration"].load()
    assert plain_registration["registered"], plain_registration
    expected = recommendations(Path(plain_registration["bundle"]), users)
    expected_online = online_rows(project, users)
    assert expected_online["user_events_30d"].notna().any()

    # The same run, each step in a fresh "pod"; shared state only under the memory:// root.
    root = f"memory://recsys-isolated/{uuid.uuid4().hex}"
    monkeypatch.setenv(STATE_ROOT_ENV, root)
    run_step, pods = StepRunner.run, []

    def in_a_fresh_pod(self, *args, **kwargs):
        pods.append((self.configuration.name, fresh_pod(project, tmp_path / "pods")))
        try:
            return run_step(self, *args, **kwargs)
        finally:
            os.chdir(project)

    monkeypatch.setattr(StepRunner, "run", in_a_fresh_pod)
    isolated = clean_zenml_client.get_pipeline_run(train_pipeline.with_options(config_path=str(config),
                                                                               enable_cache=False)().id)
    assert isolated.status.value == "completed"
    assert {name for name, _ in pods} == set(isolated.steps) and len(pods) == len(isolated.steps)
    assert all(not any(workdir.iterdir()) for _, workdir in pods)  # no step wrote to its working directory

    registration = isolated.steps["register_model"].regular_outputs["registration"].load()
    assert registration["registered"], registration
    version = registration["bundle_version"]
    assert registration["bundle"] == f"{root}/data/bundles/{MODEL}/{version}"
    fs = fsspec.filesystem("memory")
    shared = {path.split(root.split("://", 1)[1], 1)[1] for path in fs.find(root)}
    assert {"/data/features/spec.json", "/data/feast/registry.db", "/data/feast/online_store.db",
            f"/data/bundles/{MODEL}/{version}/bundle.json"} <= shared

    # The shared bundle, pulled into an empty project as a serving pod would, recommends the same.
    fresh_pod(project, tmp_path / "pods")
    os.chdir(project)
    bundle = Location(tmp_path / "reader" / version, registration["bundle"]).pull()
    assert read_bundle_meta(bundle)["version"] == version
    pd.testing.assert_frame_equal(recommendations(bundle, users), expected, check_exact=False, rtol=1e-5)
    fresh_pod(project, tmp_path / "pods")  # and the online store the features steps materialized
    os.chdir(project)
    pd.testing.assert_frame_equal(online_rows(project, users), expected_online)
    fs.rm(root, recursive=True)
