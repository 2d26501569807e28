"""End to end: the deploy and canary pipelines on one tiny trained model, in a throw-away ZenML client with
its own BentoML home. Train (production) -> train_challenger (the same cached steps, registered as
`challenger`) -> deploy it as a canary: bento built, the exported bento served and smoke-tested (parity,
load, all schemathesis phases), recorded on the MLflow and ZenML versions, manifests written, canary alias
moved -> a canary readout that favours it promotes it -> a corrupted bundle fails the smoke test and nothing
about it is recorded, rendered or put on the service. The configs are the real configs/*.yaml with sizes,
the smoke test's durations and the state paths shrunk or moved."""

import copy
import shutil
from pathlib import Path

import pytest
import yaml

from tests.pipelines.test_train_e2e import TINY_TRAINING, tiny_config

PROJECT_ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.e2e, pytest.mark.slow]
NAME = "travel-recommender"
SMOKE = {"ready_timeout_seconds": 240, "known_users": 10, "unknown_users": 2, "load": {"seconds": 1.0},
         "fuzz": {"max_examples": 3}}


@pytest.fixture(scope="module")
def bentoml_home(tmp_path_factory):
    """A BentoML home of this module: the environment for child processes, the stores for this one."""
    from bentoml._internal.bento import BentoStore
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    home = tmp_path_factory.mktemp("bentoml")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BENTOML_HOME", str(home))
        patch.setenv("BENTOML_DO_NOT_TRACK", "true")
        saved = BentoMLContainer.bento_store.get(), BentoMLContainer.model_store.get()
        for sub in ("bentos", "models", "tmp"):
            (home / sub).mkdir(exist_ok=True)
        BentoMLContainer.bento_store.set(BentoStore(str(home / "bentos")))
        BentoMLContainer.model_store.set(ModelStore(str(home / "models")))
        try:
            yield home
        finally:
            BentoMLContainer.bento_store.set(saved[0])
            BentoMLContainer.model_store.set(saved[1])


def deploy_config(directory: Path, name: str = "deploy_canary.yaml", **parameters) -> Path:
    config = copy.deepcopy(yaml.safe_load((PROJECT_ROOT / "configs" / name).read_text()))
    config["parameters"].update(parameters)
    steps = config["steps"]
    steps["smoke_test"]["parameters"]["settings"] = SMOKE
    steps["containerize_bento"]["parameters"]["backend"] = "nerdctl"  # never an image build in the tests
    directory.mkdir(parents=True, exist_ok=True)
    (directory / name).write_text(yaml.safe_dump(config))
    return directory / name


def output(client, run, step, name):
    return client.get_pipeline_run(run.id).steps[step].regular_outputs[name].load()


def write_experiment_log(path: Path, control_version: str, treatment_version: str) -> None:
    """What the service logs during a canary: 300 users a variant, 5 items each; treatment users click an
    item 12% of the time, control users 4% (deterministic pattern)."""
    from recsys.serving.experiments import ExperimentLog

    log = ExperimentLog(path)
    for variant, version, every in (("control", control_version, 25), ("treatment", treatment_version, 8)):
        for u in range(300):
            user, items = f"{variant}-{u}", [f"h{u % 50:04d}", *(f"h{(u + j) % 50:04d}" for j in range(1, 5))]
            log.impressions("canary", variant, user, items, version)
            for j, item in enumerate(items):
                if (u * 5 + j) % every == 0:
                    log.feedback(user, item, "click")


def test_deploy_canary_promote_and_a_broken_bundle(clean_zenml_client, bentoml_home, tmp_path):
    from pipelines.canary import canary_pipeline
    from pipelines.deploy import deploy_pipeline
    from pipelines.training import train_pipeline
    from recsys.deploy.manifests import read
    from recsys.registry.mlflow_registry import (log_run, register_bundle, resolve_alias, set_alias,
                                                 version_tags)

    client = clean_zenml_client
    gate = {"quality_gate": {"thresholds": {}}}
    run = train_pipeline.with_options(config_path=str(tiny_config("train.yaml", tmp_path, {**TINY_TRAINING, **gate})))()
    first = output(client, run, "register_model", "registration")
    uri = first["tracking_uri"]
    run = train_pipeline.with_options(config_path=str(tiny_config(
        "train_challenger.yaml", tmp_path / "c", {**TINY_TRAINING, **gate})))()
    second = output(client, run, "register_model", "registration")
    assert second["alias"] == "challenger" and resolve_alias(uri, NAME, "production")[0] == first["mlflow_version"]

    # The challenger as a canary: built, smoke-tested as it ships, recorded, rendered, on the service.
    run = deploy_pipeline.with_options(config_path=str(deploy_config(tmp_path / "d")))()
    report = output(client, run, "smoke_test", "smoke_report")
    assert report["passed"] and report["parity_mismatches"] == 0 and report["parity_users"] == 12
    assert report["load_errors"] == 0 and report["load_requests"] > 0 and report["p99_ms"] <= report["p99_budget_ms"]
    assert report["fuzz_server_errors"] == 0 and report["fuzz_cases"] > 100
    assert "coverage:success" in report["fuzz_phase_status"] and "stateful:success" in report["fuzz_phase_status"]
    deployment = output(client, run, "record_deployment", "deployment")
    tags = version_tags(uri, NAME, second["mlflow_version"])
    assert tags["bento_tag"] == deployment["bento_tag"] == report["bento_tag"]
    assert tags["smoke_fuzz_server_errors"] == "0" and Path(tags["bento_archive"]).is_file()
    zenml_version = client.get_model_version(NAME, deployment["zenml_model_version"])
    assert zenml_version.run_metadata["deployment"]["bento_tag"] == deployment["bento_tag"]
    assert zenml_version.run_metadata["registration"]["mlflow_version"] == second["mlflow_version"]
    manifests = output(client, run, "render_manifests", "manifests")
    objects = {obj["kind"]: obj for obj in read(manifests["directory"])}  # validated as read
    env = objects["ConfigMap"]["data"]
    assert env["RECSYS_TREATMENT_MODEL"] == f"models:/{NAME}@canary" and env["RECSYS_EXPERIMENT"] == "canary"
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].endswith(":" + deployment["bento_version"])
    image = output(client, run, "containerize_bento", "container_image")
    assert not image["built"] and "no container engine" in image["reason"]
    assert output(client, run, "start_canary", "canary")["started"]
    assert resolve_alias(uri, NAME, "canary")[0] == second["mlflow_version"]

    # The readout favours the canary: promoted (production alias, previous, ZenML stage, production bento).
    logs = tmp_path / "logs"
    write_experiment_log(logs / "experiments-1.jsonl", first["bundle_version"], second["bundle_version"])
    config = yaml.safe_load((PROJECT_ROOT / "configs" / "canary.yaml").read_text())
    config["steps"]["read_canary"]["parameters"].update(log_dir=str(logs))
    config["steps"]["read_canary"]["parameters"]["rule"].update(min_trials=1000)
    (tmp_path / "canary.yaml").write_text(yaml.safe_dump(config))
    run = canary_pipeline.with_options(config_path=str(tmp_path / "canary.yaml"))()
    decision = output(client, run, "read_canary", "canary_decision")
    assert decision.action == "promote" and decision.control["trials"] == decision.treatment["trials"] == 1500
    assert decision.treatment["rate"] > decision.control["rate"] and decision.treatment["p_value"] < 0.05
    assert resolve_alias(uri, NAME, "production")[0] == second["mlflow_version"]
    assert resolve_alias(uri, NAME, "previous")[0] == first["mlflow_version"]
    assert client.get_model_version(NAME, "production").id == zenml_version.id
    assert version_tags(uri, NAME, second["mlflow_version"])["canary_decision"] == "promote"
    from mlflow import MlflowClient

    assert MlflowClient(uri).get_registered_model(NAME).tags["production_bento"] == deployment["bento_tag"]

    # A corrupted bundle, registered and deployed as a canary: the smoke test stops the run; nothing is
    # recorded on its version, no manifests, no canary, production unchanged.
    broken = tmp_path / "broken"
    shutil.copytree(first["bundle"], broken)
    (broken / "recommender" / "items.parquet").write_bytes(b"PAR1 not a parquet file")
    version = register_bundle(uri, log_run(uri, NAME, {}, {}, artifacts_dir=broken), NAME,
                              tags={"bundle_version": "broken"})
    set_alias(uri, NAME, "broken", version)
    rendered = set(Path(manifests["directory"]).parent.iterdir())
    with pytest.raises(RuntimeError, match="smoke_test"):
        deploy_pipeline.with_options(config_path=str(deploy_config(tmp_path / "b", reference="broken")))()
    failed = client.list_pipeline_runs(sort_by="desc:created", size=1, hydrate=True).items[0]
    assert failed.status.value == "failed" and failed.steps["smoke_test"].status.value == "failed"
    assert "SmokeTestFailed" in failed.steps["smoke_test"].exception_info.traceback
    assert "does not load" in failed.steps["smoke_test"].exception_info.traceback
    for step in ("record_deployment", "render_manifests", "containerize_bento", "start_canary"):
        assert step not in failed.steps or failed.steps[step].status.value != "completed", step
    assert "bento_tag" not in version_tags(uri, NAME, version)
    assert set(Path(manifests["directory"]).parent.iterdir()) == rendered
    assert resolve_alias(uri, NAME, "canary")[0] == second["mlflow_version"]
    assert resolve_alias(uri, NAME, "production")[0] == second["mlflow_version"]
