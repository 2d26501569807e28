"""stacks.local: registering recsys-local is idempotent, fast when nothing changed, and follows the data dir."""

import time

from zenml.enums import StackComponentType

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
