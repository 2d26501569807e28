"""Stack registration in a throw-away ZenML client: recsys-local is idempotent, fast when nothing changed and
follows the data dir; recsys-kubeflow registers from its settings (no cluster is contacted)."""

import time

from zenml.enums import StackComponentType

import stacks
from stacks.local import MLFLOW_COMPONENT, STACK_NAME, mlflow_tracking_uri, register_local_stack


def test_registration_is_idempotent_and_repoints_moved_state(clean_zenml_client, tmp_path):
    client = clean_zenml_client
    assert client.active_stack_model.name == STACK_NAME
    tracker = client.active_stack.experiment_tracker
    assert tracker.flavor == "mlflow" and tracker.get_tracking_uri().startswith("sqlite:///")
    assert client.active_stack.model_registry.flavor == "mlflow"
    stacks_before = {s.id for s in client.list_stacks(size=100).items}

    start = time.perf_counter()
    register_local_stack(tmp_path / "data")  # components exist: only the two data paths change
    register_local_stack(tmp_path / "data")  # nothing changes
    assert time.perf_counter() - start < 10
    assert {s.id for s in client.list_stacks(size=100).items} == stacks_before

    tracker = client.get_stack_component(StackComponentType.EXPERIMENT_TRACKER, MLFLOW_COMPONENT)
    assert tracker.configuration["tracking_uri"] == mlflow_tracking_uri(tmp_path / "data")
    store = client.get_stack_component(StackComponentType.ARTIFACT_STORE, STACK_NAME)
    assert store.configuration["path"] == str((tmp_path / "data" / "zenml_artifacts").resolve())
    assert (tmp_path / "data" / "mlflow").is_dir()

    client.activate_stack("default")
    register_local_stack(tmp_path / "data")
    assert client.active_stack_model.name == STACK_NAME


def test_kubeflow_stack_registers_from_environment(clean_zenml_client, tmp_path, monkeypatch):
    env = {"RECSYS_KUBE_CONTEXT": "ctx", "RECSYS_ARTIFACT_STORE": "gs://bucket/zenml",
           "RECSYS_CONTAINER_REGISTRY": "ghcr.io/me", "RECSYS_MLFLOW_TRACKING_URI": "https://mlflow.example.com",
           "RECSYS_MLFLOW_USERNAME": "me", "RECSYS_MLFLOW_PASSWORD": "pw"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        options = stacks.activate("kubeflow", tmp_path)
        assert options["environment"]["RECSYS_STATE_ROOT"] == "gs://bucket/zenml/recsys-state"
        assert options["settings"]["docker"]["requirements"][-1].startswith("gcsfs==")
        stack = clean_zenml_client.active_stack_model
        flavors = {t.value: [c.flavor_name for c in cs] for t, cs in stack.components.items()}
        assert stack.name == "recsys-kubeflow" and flavors == {
            "orchestrator": ["recsys_kubeflow"], "artifact_store": ["gcp"], "container_registry": ["default"],
            "image_builder": ["local"], "experiment_tracker": ["mlflow"], "model_registry": ["mlflow"]}
        assert stacks.activate("kubeflow", tmp_path) == options  # again: the flavor and stack exist already
        monkeypatch.setenv("RECSYS_STATE_ROOT", "s3://other/state")
        assert stacks.activate("kubeflow", tmp_path)["environment"]["RECSYS_STATE_ROOT"] == "s3://other/state"
    finally:
        clean_zenml_client.activate_stack(STACK_NAME)
