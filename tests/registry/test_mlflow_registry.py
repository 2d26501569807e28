"""recsys.registry.mlflow_registry against a real MLflow sqlite store in a temp dir."""

import os

import pytest

from recsys.registry import mlflow_registry as reg

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"


@pytest.fixture
def tracking_uri(tmp_path):
    return f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"


@pytest.fixture
def bundle(tmp_path):
    path = tmp_path / "bundle"
    (path / "recommender").mkdir(parents=True)
    (path / "recommender" / "weights.npz").write_bytes(b"\x00\x01")
    (path / "bundle.json").write_text('{"version": "v1"}')
    return path


def test_names_and_params_are_made_acceptable_to_mlflow():
    assert reg.metric_key("recommender/ndcg@10") == "recommender/ndcg_at_10"
    assert reg.metric_key("a b+c") == "a b_c"
    assert reg.flatten_params({"steps": {"load_data": {"params": {"n_users": 5}, "x": None}}, "empty": {},
                               "none": [], "zero": 0, "off": False}) == {
        "steps.load_data.params.n_users": "5", "zero": "0", "off": "False"}  # unset values say nothing
    assert len(reg.flatten_params({"long": "x" * 10_000})["long"]) == 6000


def test_log_run_records_everything_and_keeps_artifacts_beside_the_database(tracking_uri, bundle, tmp_path):
    from mlflow import MlflowClient

    params = {f"p{i}": i for i in range(150)}  # more than one MLflow batch
    run_id = reg.log_run(tracking_uri, "travel", params, {"recommender/ndcg@10": 0.12, "note": "text", "n": 3},
                         artifacts_dir=bundle, tags={"gate_passed": True}, run_name="run-1")
    run = MlflowClient(tracking_uri).get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "run-1"
    assert run.data.metrics == {"recommender/ndcg_at_10": 0.12, "n": 3.0}
    assert len(run.data.params) == 150 and run.data.tags["gate_passed"] == "True"
    assert run.info.artifact_uri.startswith((tmp_path / "mlflow" / "artifacts").as_uri())
    assert (tmp_path / "mlflow" / "artifacts").is_dir()


def test_register_alias_rollback_and_download(tracking_uri, bundle, tmp_path):
    first = reg.log_run(tracking_uri, "travel", {}, {}, artifacts_dir=bundle)
    second = reg.log_run(tracking_uri, "travel", {}, {}, artifacts_dir=bundle)
    assert reg.register_bundle(tracking_uri, first, "travel-recommender", alias="production") == "1"
    assert reg.register_bundle(tracking_uri, second, "travel-recommender", alias="production",
                               tags={"bundle_version": "v2"}) == "2"
    assert reg.resolve_alias(tracking_uri, "travel-recommender", "production") == ("2", second)

    reg.set_alias(tracking_uri, "travel-recommender", "production", 1)
    assert reg.resolve_alias(tracking_uri, "travel-recommender", "production") == ("1", first)

    path = reg.download_bundle(tracking_uri, "travel-recommender", "production", tmp_path / "downloads")
    assert path == tmp_path / "downloads" / "travel-recommender" / "1" / "bundle"
    assert (path / "recommender" / "weights.npz").read_bytes() == b"\x00\x01"
    (path / "marker").write_text("kept")  # a second call reuses the download
    assert (reg.download_bundle(tracking_uri, "travel-recommender", "production", tmp_path / "downloads")
            / "marker").exists()


def test_unknown_model_or_alias_raises(tracking_uri, bundle):
    from recsys.errors import ModelNotFound, UserError

    reg.ensure_experiment(tracking_uri, "travel")
    with pytest.raises(ModelNotFound, match="no version of model 'nope' has the alias 'production'"):
        reg.resolve_alias(tracking_uri, "nope", "production")
    reg.register_bundle(tracking_uri, reg.log_run(tracking_uri, "travel", {}, {}, artifacts_dir=bundle), "m")
    with pytest.raises(ModelNotFound) as err:
        reg.resolve_alias(tracking_uri, "m", "production")
    assert isinstance(err.value, (UserError, LookupError))  # run.py prints it plainly, exit 2
